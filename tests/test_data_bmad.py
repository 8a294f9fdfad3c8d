"""BMAD's pre-sliced BraTS2021 PNGs (Brain/...), colour-mapped RGBA images and masks, both mask folder names."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from harness.datasets import create
from harness.datasets.bmad import BraTSBMAD
from harness.errors import DataError

SIDE = 24
TUMOUR = (253, 231, 36, 255)  # a colour-map colour, as BMAD writes masks


pytestmark = pytest.mark.usefixtures("isolated_data_env")


def rgba(path: Path, tumour_rows: slice | None = None, value: int = 90) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    array = np.zeros((SIDE, SIDE, 4), dtype=np.uint8)
    array[..., :3], array[..., 3] = value, 255
    if tumour_rows is not None:
        array[tumour_rows] = TUMOUR
    Image.fromarray(array, "RGBA").save(path)


def mask(path: Path, tumour_rows: slice) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    array = np.zeros((SIDE, SIDE, 4), dtype=np.uint8)
    array[..., 3] = 255  # opaque black background
    array[tumour_rows] = TUMOUR
    Image.fromarray(array, "RGBA").save(path)


def make_bmad(root: Path, train_img_level: bool = True) -> Path:
    brain = root / "Brain"
    train = brain / "train" / "good" / ("img" if train_img_level else "")
    for i in range(3):
        rgba(train / f"0000{i}_60.png", value=60 + i)
    for split, mask_folder in (("valid", "label"), ("test", "anomaly_mask")):
        rgba(brain / split / "good" / "img" / "00010_61.png")
        for name, rows in (("00011_70.png", slice(0, 6)), ("00012_71.png", slice(12, 24))):
            rgba(brain / split / "Ungood" / "img" / name, rows)
            mask(brain / split / "Ungood" / mask_folder / name, rows)
    return root


@pytest.mark.parametrize("train_img_level", [True, False])
def test_layout_counts_and_masks(tmp_path, train_img_level):
    root = make_bmad(tmp_path / "bmad", train_img_level)
    data = create("brats_bmad", str(root)).load("brain", 12)
    assert len(data.train) == 3 and data.train.labels.sum() == 0
    assert data.valid is not None and data.valid.labels.tolist() == [0, 1, 1]
    assert data.test.labels.tolist() == [0, 1, 1] and data.test.defect_types == ["good", "tumour", "tumour"]
    assert data.test.paths[1] == "Brain/test/Ungood/img/00011_70.png"
    for split in (data.valid, data.test):  # both mask folder spellings, RGBA colour-mapped, binarised > 0
        assert not split.masks[0].any()
        assert split.masks[1][:3].all() and not split.masks[1][3:].any()
        assert split.masks[2][6:].all() and not split.masks[2][:6].any()
    assert data.train.images.shape == (3, 12, 12, 3) and data.train.images[0, 0, 0].tolist() == [60, 60, 60]


def test_root_may_be_the_brain_folder(tmp_path):
    root = make_bmad(tmp_path / "bmad")
    assert BraTSBMAD(root / "Brain").fingerprint("brain") != ""
    assert BraTSBMAD(root / "Brain").load("brain", 12).test.paths[0] == "test/good/img/00010_61.png"


def test_missing_mask_and_non_black_background(tmp_path):
    root = make_bmad(tmp_path / "bmad")
    (root / "Brain" / "test" / "Ungood" / "anomaly_mask" / "00012_71.png").unlink()
    with pytest.raises(DataError, match=r"Ungood/img/00012_71\.png: no mask"):
        BraTSBMAD(root).load("brain", 12)
    mask(root / "Brain" / "test" / "Ungood" / "anomaly_mask" / "00012_71.png", slice(0, SIDE))
    with pytest.raises(DataError, match=r"00012_71\.png: its mask is tumour everywhere"):
        BraTSBMAD(root).load("brain", 12)


def test_wrong_root(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"empty: no BMAD Brain layout.*DorisBao/BMAD"):
        BraTSBMAD(tmp_path / "empty").load("brain", 12)
