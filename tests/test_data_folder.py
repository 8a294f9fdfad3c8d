"""The `folder` adapter: any MVTec-like data set of the user's own."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from image_files import save

from harness.datasets import create
from harness.datasets.folder import FolderDataset
from harness.errors import DataError

pytestmark = pytest.mark.usefixtures("isolated_data_env")


def make(folder: Path, masks: str | None = "_mask", suffix: str = ".png") -> Path:
    """train/good (2), test/good (1), test/dent (2); masks named <stem><masks>.png, or none."""
    image = np.full((10, 14, 3), 30, dtype=np.uint8)
    for name in ("a", "b"):
        save(folder / "train" / "good" / f"{name}{suffix}", image)
    save(folder / "test" / "good" / f"c{suffix}", image)
    for name, cols in (("d", slice(0, 7)), ("e", slice(7, 14))):
        defect = image.copy()
        defect[:, cols] = 240
        save(folder / "test" / "dent" / f"{name}{suffix}", defect)
        if masks is not None:
            mask = np.zeros((10, 14), dtype=np.uint8)
            mask[:, cols] = 255
            save(folder / "ground_truth" / "dent" / f"{name}{masks}.png", mask)
    return folder


def test_categories_are_the_subfolders_with_train_good(tmp_path):
    make(tmp_path / "data" / "widgets")
    make(tmp_path / "data" / "gears", masks=None)
    (tmp_path / "data" / "notes").mkdir()
    adapter = create("folder", str(tmp_path / "data"))
    assert adapter.categories == ("gears", "widgets")
    assert adapter.default_profile == "paper"


def test_root_with_train_good_is_one_category_named_after_it(tmp_path):
    root = make(tmp_path / "my_parts", masks="", suffix=".jpg")
    adapter = FolderDataset(root)
    assert adapter.categories == ("my_parts",)
    data = adapter.load("my_parts", 8)
    assert data.train.paths == ["train/good/a.jpg", "train/good/b.jpg"]
    assert data.test.labels.tolist() == [1, 1, 0]
    # masks named like their image (no _mask suffix) are paired too: left half, then right half
    assert data.test.masks[0][:, :4].all() and not data.test.masks[0][:, 4:].any()
    assert data.test.masks[1][:, 4:].all() and not data.test.masks[1][:, :4].any()


def test_without_ground_truth_there_are_no_masks(tmp_path):
    make(tmp_path / "data" / "gears", masks=None)
    data = FolderDataset(tmp_path / "data").load("gears", 8)
    assert data.test.masks is None
    assert data.test.labels.tolist() == [1, 1, 0] and data.test.defect_types == ["dent", "dent", "good"]


def test_with_ground_truth_every_anomalous_image_needs_its_mask(tmp_path):
    folder = make(tmp_path / "data" / "widgets")
    (folder / "ground_truth" / "dent" / "e_mask.png").unlink()
    with pytest.raises(DataError, match=r"test/dent/e\.png: no mask"):
        FolderDataset(tmp_path / "data").load("widgets", 8)


def test_empty_root_and_unknown_category(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"empty: no category folders found"):
        _ = FolderDataset(tmp_path / "empty").categories
    make(tmp_path / "data" / "widgets")
    with pytest.raises(DataError, match=r"unknown category 'gizmos'.*valid: widgets"):
        FolderDataset(tmp_path / "data").load("gizmos", 8)
    with pytest.raises(DataError, match=r"--root"):
        _ = FolderDataset().categories
