"""VisA adapter: the raw download read through a CRLF split CSV, the converted layout, the real split files."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from harness.datasets import create
from harness.datasets.visa import VISA_CATEGORIES, VisA, check_category_rows, read_split_csv
from harness.errors import DataError, HarnessError

REAL_SPLITS = Path(__file__).resolve().parent / "fixtures" / "visa_split_csv"  # the published files, see its README.md
W, H = 36, 24  # non-square, like the real ~1.5K x 1K images
SIZE = 12


pytestmark = pytest.mark.usefixtures("isolated_data_env")


def jpeg(path: Path, value: int, block: tuple[slice, slice] | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    array = np.full((H, W, 3), value, dtype=np.uint8)
    if block is not None:
        array[block] = 250
    Image.fromarray(array).save(path, quality=95)


def class_id_mask(path: Path, mode: str) -> None:
    """Left third class 1, right third class 2, middle background: the raw VisA encoding."""
    ids = np.zeros((H, W), dtype=np.uint8)
    ids[:, : W // 3] = 1
    ids[:, 2 * W // 3 :] = 2
    path.parent.mkdir(parents=True, exist_ok=True)
    if mode == "P":
        image = Image.frombytes("P", (W, H), ids.tobytes())
        image.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0] + [0] * (256 * 3 - 9))
    else:
        image = Image.fromarray(ids)
    assert image.mode == mode
    image.save(path)


def write_csv(path: Path, rows: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(("\r\n".join(["object,split,label,image,mask", *rows]) + "\r\n").encode())


def make_raw(root: Path) -> Path:
    """candle: Normal/000..003 (3 train, 1 test), Anomaly/000 (L mask) and 001 (P mask): names collide."""
    images = root / "candle" / "Data" / "Images"
    for i in range(4):
        jpeg(images / "Normal" / f"{i:03d}.JPG", 40 + i)
    stripes = (slice(None), slice(0, W // 3))
    jpeg(images / "Anomaly" / "000.JPG", 20, stripes)
    jpeg(images / "Anomaly" / "001.JPG", 20, stripes)
    class_id_mask(root / "candle" / "Data" / "Masks" / "Anomaly" / "000.png", "L")
    class_id_mask(root / "candle" / "Data" / "Masks" / "Anomaly" / "001.png", "P")
    rows = [f"candle,train,normal,candle/Data/Images/Normal/{i:03d}.JPG," for i in (2, 0, 1)]
    rows += ["candle,test,normal,candle/Data/Images/Normal/003.JPG,"]
    rows += [
        f"candle,test,anomaly,candle/Data/Images/Anomaly/{i:03d}.JPG,candle/Data/Masks/Anomaly/{i:03d}.png"
        for i in (0, 1)
    ]
    write_csv(root / "split_csv" / "1cls.csv", rows)
    anno = root / "candle" / "image_anno.csv"
    anno.write_text(
        'image,label,mask\ncandle/Data/Images/Anomaly/000.JPG,"wax missing,spot",candle/Data/Masks/Anomaly/000.png\n'
    )
    return root


def test_raw_layout_through_the_split_csv(tmp_path):
    data = VisA(make_raw(tmp_path / "visa")).load("candle", SIZE)
    assert data.train.paths == [f"candle/Data/Images/Normal/{i:03d}.JPG" for i in (2, 0, 1)]
    assert data.test.paths == [
        "candle/Data/Images/Normal/003.JPG",
        "candle/Data/Images/Anomaly/000.JPG",
        "candle/Data/Images/Anomaly/001.JPG",
    ]
    assert data.test.labels.tolist() == [0, 1, 1]
    assert data.test.defect_types == ["good", "wax missing,spot", "anomaly"]
    assert data.test.images.shape == (3, SIZE, SIZE, 3)
    assert data.provenance["split_file"].endswith("split_csv/1cls.csv")


def test_class_id_masks_are_binarised_with_nonzero_in_any_png_mode(tmp_path):
    data = VisA(make_raw(tmp_path / "visa")).load("candle", SIZE)
    expected = np.zeros((SIZE, SIZE), dtype=bool)
    expected[:, :4] = True  # class 1 (left third)
    expected[:, 8:] = True  # class 2 (right third)
    assert not data.test.masks[0].any()
    assert np.array_equal(data.test.masks[1], expected)  # mode L
    assert np.array_equal(data.test.masks[2], expected)  # mode P, read by palette index
    # the non-square image is resized with the same geometry as its mask: the bright stripe is the left third
    bright = data.test.images[1].mean(axis=-1) > 135
    assert np.array_equal(bright, expected & (np.arange(SIZE) < 4)[None, :])


def test_anomalous_training_rows_of_2cls_splits_are_left_out(tmp_path):
    root = make_raw(tmp_path / "visa")
    rows = [
        "candle,train,normal,candle/Data/Images/Normal/000.JPG,",
        "candle,train,anomaly,candle/Data/Images/Anomaly/000.JPG,candle/Data/Masks/Anomaly/000.png",
        "candle,test,normal,candle/Data/Images/Normal/001.JPG,",
        "candle,test,anomaly,candle/Data/Images/Anomaly/001.JPG,candle/Data/Masks/Anomaly/001.png",
    ]
    write_csv(root / "split_csv" / "2cls_highshot.csv", rows)
    data = create("visa", str(root), split="2cls_highshot").load("candle", SIZE)
    assert data.train.paths == ["candle/Data/Images/Normal/000.JPG"] and data.train.labels.tolist() == [0]
    assert data.test.labels.tolist() == [0, 1]
    assert data.provenance["excluded_anomalous_train_images"] == 1
    assert data.fingerprint != VisA(root).fingerprint("candle")
    with pytest.raises(HarnessError, match="2cls_lowshot"):
        VisA(root, split="2cls_lowshot")


def test_row_pointing_to_a_missing_file_names_the_row_and_the_csv(tmp_path):
    root = make_raw(tmp_path / "visa")
    (root / "candle" / "Data" / "Images" / "Normal" / "001.JPG").unlink()
    with pytest.raises(
        DataError, match=r"split_csv/1cls\.csv line 4: image candle/Data/Images/Normal/001\.JPG not found"
    ):
        VisA(root).fingerprint("candle")
    make_raw(root)
    (root / "candle" / "Data" / "Masks" / "Anomaly" / "001.png").unlink()
    with pytest.raises(DataError, match=r"1cls\.csv line 7: mask candle/Data/Masks/Anomaly/001\.png not found"):
        VisA(root).load("candle", SIZE)


def test_missing_split_csv_and_bad_rows(tmp_path):
    root = make_raw(tmp_path / "visa")
    with pytest.raises(DataError, match=r"split_csv/2cls_fewshot\.csv: split file not found"):
        VisA(root, split="2cls_fewshot").load("candle", SIZE)
    write_csv(root / "split_csv" / "1cls.csv", ["candle,validation,normal,candle/Data/Images/Normal/000.JPG,"])
    with pytest.raises(DataError, match=r"1cls\.csv line 2: split is 'validation'"):
        VisA(root).load("candle", SIZE)


@pytest.mark.parametrize(
    "split, label, missing",
    [
        ("train", "normal", "normal training"),
        ("test", "normal", "normal test"),
        ("test", "anomaly", "anomalous test"),
    ],
)
def test_split_file_lacking_rows_of_a_category_names_the_file_and_category(tmp_path, split, label, missing):
    root = make_raw(tmp_path / "visa")
    path = root / "split_csv" / "1cls.csv"
    lines = path.read_bytes().decode().split("\r\n")
    kept = [line for line in lines if not line.startswith(f"candle,{split},{label},")]
    assert len(kept) < len(lines)
    path.write_bytes("\r\n".join(kept).encode())
    with pytest.raises(DataError, match=rf"split_csv/1cls\.csv: category 'candle' has no {missing} rows"):
        VisA(root).load("candle", SIZE)


def test_split_file_without_a_category_names_the_file_and_category(tmp_path):
    root = make_raw(tmp_path / "visa")
    with pytest.raises(DataError, match=r"split_csv/1cls\.csv: no rows for category 'pcb1'"):
        VisA(root).load("pcb1", SIZE)


def test_mask_size_differing_from_its_image(tmp_path):
    root = make_raw(tmp_path / "visa")
    Image.fromarray(np.zeros((H, H), dtype=np.uint8)).save(root / "candle" / "Data" / "Masks" / "Anomaly" / "000.png")
    with pytest.raises(DataError, match=r"Anomaly/000\.png: mask is 24x24 but its image is 36x24"):
        VisA(root).load("candle", SIZE)


@pytest.mark.parametrize("level", ["visa_pytorch/1cls", "visa_pytorch"])
def test_converted_layout(tmp_path, level):
    folder = tmp_path / "visa" / level / "pcb1"
    jpeg(folder / "train" / "good" / "0000.JPG", 40)
    jpeg(folder / "train" / "good" / "0001.JPG", 41)
    jpeg(folder / "test" / "good" / "0002.JPG", 42)
    jpeg(folder / "test" / "bad" / "000.JPG", 20, (slice(None), slice(0, W // 3)))
    mask = np.zeros((H, W, 3), dtype=np.uint8)
    mask[:, : W // 3] = 255  # 0/255, 3-channel, same stem as the image
    (folder / "ground_truth" / "bad").mkdir(parents=True)
    Image.fromarray(mask).save(folder / "ground_truth" / "bad" / "000.png")
    data = VisA(tmp_path / "visa").load("pcb1", SIZE)
    assert data.train.paths == [f"{level}/pcb1/train/good/0000.JPG", f"{level}/pcb1/train/good/0001.JPG"]
    assert data.test.labels.tolist() == [1, 0] and data.test.defect_types == ["bad", "good"]
    assert data.test.masks[0][:, :4].all() and not data.test.masks[0][:, 4:].any()
    (folder / "ground_truth" / "bad" / "000.png").unlink()
    with pytest.raises(DataError, match=r"test/bad/000\.JPG: no mask"):
        VisA(tmp_path / "visa").load("pcb1", SIZE)


def test_neither_layout_is_an_error_with_a_hint(tmp_path):
    (tmp_path / "visa").mkdir()
    with pytest.raises(DataError, match=r"no VisA data for 'pcb1'.*split_csv/1cls\.csv.*VisA_20220922"):
        VisA(tmp_path / "visa").load("pcb1", SIZE)
    with pytest.raises(DataError, match=r"unknown category 'pcb5'.*candle, capsules"):
        VisA(tmp_path / "visa").load("pcb5", SIZE)


def test_real_1cls_split_file_gives_the_published_counts():
    rows = read_split_csv(REAL_SPLITS / "1cls.csv")
    counts = Counter((r.object, r.split, r.label) for r in rows)
    expected = {
        "candle": (900, 100, 100),
        "capsules": (542, 60, 100),
        "cashew": (450, 50, 100),
        "chewinggum": (453, 50, 100),
        "fryum": (450, 50, 100),
        "macaroni1": (900, 100, 100),
        "macaroni2": (900, 100, 100),
        "pcb1": (904, 100, 100),
        "pcb2": (901, 100, 100),
        "pcb3": (905, 101, 100),
        "pcb4": (904, 101, 100),
        "pipe_fryum": (450, 50, 100),
    }
    assert tuple(sorted(expected)) == tuple(sorted(VISA_CATEGORIES))
    for category, (train, test_normal, test_anomaly) in expected.items():
        assert counts[(category, "train", "normal")] == train, category
        assert counts[(category, "test", "normal")] == test_normal, category
        assert counts[(category, "test", "anomaly")] == test_anomaly, category
    assert sum(counts.values()) == 8659 + 962 + 1200 and counts.keys() <= {
        (c, s, label) for c in expected for s in ("train", "test") for label in ("normal", "anomaly")
    }
    anomalous = [r for r in rows if r.label == "anomaly"]
    assert all(r.image.endswith(".JPG") and r.mask.endswith(".png") for r in anomalous)
    assert all(r.mask == "" and "\r" not in r.image for r in rows if r.label == "normal")


@pytest.mark.parametrize("split", ["1cls", "2cls_highshot", "2cls_fewshot"])
def test_real_split_files_list_every_kind_of_row_for_every_category(split):
    path = REAL_SPLITS / f"{split}.csv"
    rows = read_split_csv(path)
    for category in VISA_CATEGORIES:
        check_category_rows(path, category, [r for r in rows if r.object == category])
