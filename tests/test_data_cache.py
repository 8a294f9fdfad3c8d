"""The optional on-disk cache of resized arrays (HARNESS_ARRAY_CACHE=1 or the option cache=True)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from image_files import save

import harness.datasets.files as files
from harness.datasets import cache
from harness.datasets.mvtec import MVTecAD

pytestmark = pytest.mark.usefixtures("isolated_data_env")


@pytest.fixture
def root(tmp_path) -> Path:
    folder = tmp_path / "mvtec" / "screw"
    rng = np.random.default_rng(0)
    for i in range(2):
        save(folder / "train" / "good" / f"{i:03d}.png", rng.integers(0, 255, (20, 20), dtype=np.uint8))
    save(folder / "test" / "good" / "000.png", rng.integers(0, 255, (20, 20), dtype=np.uint8))
    save(folder / "test" / "scratch_head" / "000.png", rng.integers(0, 255, (20, 20), dtype=np.uint8))
    mask = np.zeros((20, 20), dtype=np.uint8)
    mask[5:15, 5:15] = 255
    save(folder / "ground_truth" / "scratch_head" / "000_mask.png", mask)
    return tmp_path / "mvtec"


def entries(tmp_path: Path) -> list[Path]:
    return sorted(p for p in (tmp_path / "cache" / "arrays").rglob("*") if p.is_file())


def no_decoding(monkeypatch) -> None:
    monkeypatch.setattr(files, "load_rgb", lambda *a, **k: pytest.fail("decoded although the cache holds the arrays"))


def test_second_load_skips_decoding(root, tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_ARRAY_CACHE", "1")
    first = MVTecAD(root).load("screw", 10)
    assert first.provenance["array_cache"].startswith("written") and len(entries(tmp_path)) == 1
    no_decoding(monkeypatch)
    second = MVTecAD(root).load("screw", 10)
    assert second.provenance["array_cache"].startswith("hit")
    for name in ("train", "test"):
        a, b = getattr(first, name), getattr(second, name)
        assert np.array_equal(a.images, b.images) and np.array_equal(a.labels, b.labels)
        assert a.paths == b.paths and a.defect_types == b.defect_types
        assert (a.masks is None and b.masks is None) or np.array_equal(a.masks, b.masks)
    assert second.test.masks[1].any() and second.fingerprint == first.fingerprint


def test_option_overrides_the_variable_and_sizes_are_separate(root, tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_ARRAY_CACHE", "1")
    assert "array_cache" not in MVTecAD(root, cache=False).load("screw", 10).provenance
    assert entries(tmp_path) == []
    monkeypatch.delenv("HARNESS_ARRAY_CACHE")
    MVTecAD(root, cache=True).load("screw", 10)
    MVTecAD(root, cache=True).load("screw", 12)
    assert len(entries(tmp_path)) == 2


def test_an_edited_file_or_a_damaged_entry_is_not_served(root, tmp_path, monkeypatch):
    MVTecAD(root, cache=True).load("screw", 10)
    image = root / "screw" / "train" / "good" / "000.png"
    save(image, np.full((20, 20), 7, dtype=np.uint8))
    os.utime(image, ns=(1, 1))
    edited = MVTecAD(root, cache=True).load("screw", 10)
    assert edited.provenance["array_cache"].startswith("written") and np.all(edited.train.images[0] == 7)
    for entry in entries(tmp_path):
        entry.write_bytes(b"damaged")
    rebuilt = MVTecAD(root, cache=True).load("screw", 10)
    assert rebuilt.provenance["array_cache"].startswith("written") and np.all(rebuilt.train.images[0] == 7)


def test_a_cached_category_is_memory_mapped_not_copied(root, tmp_path, monkeypatch):
    first = MVTecAD(root, cache=True).load("screw", 10)
    second = MVTecAD(root, cache=True).load("screw", 10)
    assert second.provenance["array_cache"].startswith("hit")
    (entry,) = entries(tmp_path)
    for name in ("train", "test"):
        images = getattr(second, name).images
        assert isinstance(images, np.memmap) and Path(images.filename) == entry  # pages come from the file
        assert np.array_equal(images, getattr(first, name).images)
    assert isinstance(second.test.masks, np.memmap) and np.array_equal(second.test.masks, first.test.masks)
    second.train.images[0] = 0  # copy-on-write: a job may write into its arrays, the entry stays intact
    third = MVTecAD(root, cache=True).load("screw", 10)
    assert np.array_equal(third.train.images, first.train.images)


def test_entries_of_another_format_version_are_not_served(root, tmp_path, monkeypatch):
    MVTecAD(root, cache=True).load("screw", 10)
    monkeypatch.setattr(cache, "VERSION", cache.VERSION + 1)
    again = MVTecAD(root, cache=True).load("screw", 10)
    assert again.provenance["array_cache"].startswith("written") and len(entries(tmp_path)) == 2


def test_a_truncated_entry_is_rebuilt(root, tmp_path):
    MVTecAD(root, cache=True).load("screw", 10)
    (entry,) = entries(tmp_path)
    entry.write_bytes(entry.read_bytes()[: entry.stat().st_size // 2])
    rebuilt = MVTecAD(root, cache=True).load("screw", 10)
    assert rebuilt.provenance["array_cache"].startswith("written") and rebuilt.test.masks[1].any()
