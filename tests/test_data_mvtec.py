"""MVTec AD adapter on a tiny fixture in the real layout (names, _mask suffixes, a grayscale category)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pytest
from image_files import save

from harness.datasets import create
from harness.datasets.mvtec import MVTecAD
from harness.errors import DataError, HarnessError

SIDE = 24  # fixture images are SIDE x SIDE; loaded at 12 px, so one fixture pixel pair = one output pixel
SIZE = 12
# anomalous image <stem> has a bright block at these rows/cols (fixture pixels); its mask marks the same block
BLOCKS = {"000": (slice(0, 8), slice(0, 8)), "001": (slice(16, 24), slice(8, 24))}


pytestmark = pytest.mark.usefixtures("isolated_data_env")


def make_category(root: Path, category: str, gray: bool = False, defect: str = "broken_large") -> Path:
    folder = root / category
    rng = np.random.default_rng(len(category))
    shape = (SIDE, SIDE) if gray else (SIDE, SIDE, 3)
    for i in range(3):
        save(folder / "train" / "good" / f"{i:03d}.png", rng.integers(0, 60, shape, dtype=np.uint8))
    save(folder / "test" / "good" / "000.png", rng.integers(0, 60, shape, dtype=np.uint8))
    for stem, block in BLOCKS.items():
        image = np.full(shape, 20, dtype=np.uint8)
        image[block] = 250
        save(folder / "test" / defect / f"{stem}.png", image)
        mask = np.zeros((SIDE, SIDE), dtype=np.uint8)
        mask[block] = 255
        save(folder / "ground_truth" / defect / f"{stem}_mask.png", mask)
    return folder


@pytest.fixture
def mvtec(tmp_path) -> Path:
    root = tmp_path / "mvtec"
    make_category(root, "bottle")
    make_category(root, "grid", gray=True, defect="bent")
    return root


def test_load_counts_labels_paths(mvtec):
    data = MVTecAD(mvtec).load("bottle", SIZE)
    assert data.dataset == "mvtec" and data.category == "bottle"
    assert data.train.images.shape == (3, SIZE, SIZE, 3) and data.train.images.dtype == np.uint8
    assert data.train.masks is None and data.train.labels.tolist() == [0, 0, 0]
    assert data.train.paths == [f"bottle/train/good/{i:03d}.png" for i in range(3)]
    assert data.test.paths == [
        "bottle/test/broken_large/000.png",
        "bottle/test/broken_large/001.png",
        "bottle/test/good/000.png",
    ]
    assert data.test.labels.tolist() == [1, 1, 0]
    assert data.test.defect_types == ["broken_large", "broken_large", "good"]
    assert data.test.masks.dtype == bool and data.test.masks.shape == (3, SIZE, SIZE)
    assert not data.test.masks[2].any()
    assert data.fingerprint == MVTecAD(mvtec).fingerprint("bottle")


def test_masks_are_paired_by_name_and_aligned(mvtec):
    data = MVTecAD(mvtec).load("bottle", SIZE)
    for index, stem in enumerate(BLOCKS):
        rows, cols = BLOCKS[stem]
        expected = np.zeros((SIZE, SIZE), dtype=bool)
        expected[rows.start // 2 : rows.stop // 2, cols.start // 2 : cols.stop // 2] = True
        assert np.array_equal(data.test.masks[index], expected), stem
        bright = data.test.images[index].mean(axis=-1) > 135
        assert np.array_equal(bright, expected), stem


def test_grayscale_category_is_converted_to_rgb(mvtec):
    data = MVTecAD(mvtec).load("grid", SIZE)
    images = data.test.images
    assert images.shape[-1] == 3
    assert np.array_equal(images[..., 0], images[..., 1]) and np.array_equal(images[..., 1], images[..., 2])
    assert data.test.defect_types[:2] == ["bent", "bent"]


def test_fingerprint_tracks_the_file_list(mvtec):
    before = MVTecAD(mvtec).fingerprint("bottle")
    assert before == MVTecAD(mvtec).fingerprint("bottle")
    save(mvtec / "bottle" / "train" / "good" / "003.png", np.zeros((SIDE, SIDE, 3), dtype=np.uint8))
    assert MVTecAD(mvtec).fingerprint("bottle") != before


def test_categories_need_no_disk_and_root_comes_from_harness_data(monkeypatch, tmp_path):
    categories = MVTecAD().categories  # no root, no HARNESS_DATA: still known
    assert len(categories) == 15 and categories[:3] == ("bottle", "cable", "capsule") and "zipper" in categories
    monkeypatch.setenv("HARNESS_DATA", str(tmp_path / "data"))
    assert Path(MVTecAD().root) == tmp_path / "data" / "mvtec"
    assert Path(create("mvtec", str(tmp_path / "elsewhere")).root) == tmp_path / "elsewhere"


def test_unknown_option_is_rejected():
    with pytest.raises(HarnessError, match="spilt"):
        MVTecAD(None, spilt="1cls")


# every bad input: a DataError whose message names the file or folder


def test_missing_mask_names_the_image(mvtec):
    (mvtec / "bottle" / "ground_truth" / "broken_large" / "001_mask.png").unlink()
    with pytest.raises(DataError, match=r"test/broken_large/001\.png.*no mask"):
        MVTecAD(mvtec).load("bottle", SIZE)


def test_extra_mask_names_the_mask(mvtec):
    save(mvtec / "bottle" / "ground_truth" / "broken_large" / "002_mask.png", np.zeros((SIDE, SIDE), dtype=np.uint8))
    with pytest.raises(DataError, match=r"002_mask\.png: mask without an image"):
        MVTecAD(mvtec).fingerprint("bottle")


def test_masks_of_a_defect_without_test_images_are_extra(mvtec):
    save(mvtec / "bottle" / "ground_truth" / "scratch" / "000_mask.png", np.zeros((SIDE, SIDE), dtype=np.uint8))
    with pytest.raises(DataError, match=r"ground_truth/scratch"):
        MVTecAD(mvtec).fingerprint("bottle")


def test_mask_size_differing_from_its_image(mvtec):
    save(
        mvtec / "bottle" / "ground_truth" / "broken_large" / "000_mask.png", np.zeros((SIDE, SIDE + 2), dtype=np.uint8)
    )
    with pytest.raises(DataError, match=r"000_mask\.png: mask is 26x24 but its image is 24x24"):
        MVTecAD(mvtec).load("bottle", SIZE)


def test_unreadable_image(mvtec):
    (mvtec / "bottle" / "train" / "good" / "001.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match=r"train/good/001\.png: cannot read image"):
        MVTecAD(mvtec).load("bottle", SIZE)


UNREADABLE = [
    "bottle/train/good",
    "bottle/test",
    "bottle/test/broken_large",
    "bottle/ground_truth",
    "bottle/ground_truth/broken_large",
]


@pytest.mark.parametrize("relative", UNREADABLE)
def test_unreadable_folder_is_a_data_error_naming_it(mvtec, relative):
    folder = mvtec / relative
    folder.chmod(0)
    try:
        if os.access(folder, os.R_OK):
            pytest.skip("chmod 000 does not stop this user (root) from reading: see the simulated variant below")
        # the folder, or a path in it that cannot be looked at for want of permission on the folder
        with pytest.raises(
            DataError,
            match=rf"^{re.escape(str(folder))}(/[\w.]+)?: cannot (list the folder|read) \(Permission denied\)",
        ):
            MVTecAD(mvtec).load("bottle", SIZE)
    finally:
        folder.chmod(0o755)


@pytest.mark.parametrize("relative", UNREADABLE)
def test_unreadable_folder_simulated(mvtec, relative, monkeypatch):
    """The same as a user without permission sees it, also when the tests run as root."""
    folder = mvtec / relative
    listing = Path.iterdir

    def iterdir(path):
        if path == folder:
            raise PermissionError(13, "Permission denied", str(path))
        return listing(path)

    monkeypatch.setattr(Path, "iterdir", iterdir)
    with pytest.raises(DataError, match=rf"^{re.escape(str(folder))}: cannot list the folder \(Permission denied\)"):
        MVTecAD(mvtec).load("bottle", SIZE)


def test_empty_training_split(mvtec):
    for path in (mvtec / "bottle" / "train" / "good").iterdir():
        path.unlink()
    with pytest.raises(DataError, match=r"bottle/train/good: no training images"):
        MVTecAD(mvtec).load("bottle", SIZE)


def test_unknown_category_lists_the_valid_ones(mvtec):
    with pytest.raises(DataError, match=r"unknown category 'bottles'.*bottle, cable, capsule"):
        MVTecAD(mvtec).load("bottles", SIZE)


def test_missing_root_gives_a_download_hint(tmp_path):
    with pytest.raises(DataError, match=r"--root.*HARNESS_DATA.*mvtec\.com"):
        MVTecAD().load("bottle", SIZE)
    with pytest.raises(DataError, match=rf"{tmp_path / 'nowhere'}.*not found.*mvtec\.com"):
        MVTecAD(tmp_path / "nowhere").load("bottle", SIZE)


def test_missing_category_folder_points_at_the_nested_root(tmp_path, mvtec):
    outer = tmp_path / "download"
    make_category(outer / "mvtec_anomaly_detection", "cable")
    with pytest.raises(
        DataError, match=r"download/cable: category folder not found.*point --root at .*mvtec_anomaly_detection"
    ):
        MVTecAD(outer).load("cable", SIZE)
    with pytest.raises(DataError, match=r"mvtec/cable: category folder not found"):
        MVTecAD(mvtec).load("cable", SIZE)


def test_pairing_is_by_name_not_by_sorted_position(tmp_path):
    # sorted images: a.png, a_b.png; sorted masks: a_b_mask.png, a_mask.png -- positions disagree
    root = tmp_path / "mvtec"
    make_category(root, "screw", gray=True)
    for stem, rows in (("a", slice(0, 6)), ("a_b", slice(18, 24))):
        image = np.full((SIDE, SIDE), 20, dtype=np.uint8)
        image[rows] = 250
        save(root / "screw" / "test" / "thread_side" / f"{stem}.png", image)
        mask = np.zeros((SIDE, SIDE), dtype=np.uint8)
        mask[rows] = 255
        save(root / "screw" / "ground_truth" / "thread_side" / f"{stem}_mask.png", mask)
    data = MVTecAD(root).load("screw", SIZE)
    for index in (i for i, d in enumerate(data.test.defect_types) if d == "thread_side"):
        bright = data.test.images[index].mean(axis=-1) > 135
        assert bright.any() and np.array_equal(bright, data.test.masks[index]), data.test.paths[index]
