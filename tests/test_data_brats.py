"""BraTS adapter on tiny NIfTI volumes in the 2018, 2020 and 2021 namings (x, y, z = 16, 12, 100)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest
from medpy.io import save as medpy_save

import harness.datasets.brats as brats
from harness.datasets.brats import BraTS, find_subjects, subject_slices
from harness.errors import DataError

X, Y, Z = 16, 12, 100  # x != y, so a transposed slice has another shape
TUMOUR_SLICES = range(70, 80)  # 10 anomalous slices among 60..99 per subject
SUBJECTS = {
    "BraTS2021_00000/BraTS2021_00000": ".nii.gz",
    "BraTS2021_00001/BraTS2021_00001": ".nii.gz",
    "BraTS20_Training_001/BraTS20_Training_001": ".nii",
    "HGG/Brats18_2013_0_1/Brats18_2013_0_1": ".nii.gz",
    "LGG/Brats18_2013_1_1/Brats18_2013_1_1": ".nii.gz",
}


pytestmark = pytest.mark.usefixtures("isolated_data_env")


def flair_volume(offset: int) -> np.ndarray:
    x, y, z = np.meshgrid(np.arange(X), np.arange(Y), np.arange(Z), indexing="ij")
    return (offset + 10.0 * x + y + 3.0 * z).astype(np.float32)


def seg_volume() -> np.ndarray:
    seg = np.zeros((X, Y, Z), dtype=np.uint8)
    for k in TUMOUR_SLICES:
        seg[0:2, :, k], seg[2, :, k], seg[3, :, k] = 1, 2, 4  # labels {1, 2, 4} in the first 4 x rows
    seg[0:4, :, 50] = 4  # a tumour outside slices 60..99 changes nothing
    return seg


def make_brats(root: Path) -> Path:
    for number, (stem, ext) in enumerate(SUBJECTS.items()):
        path = root / stem
        path.parent.mkdir(parents=True, exist_ok=True)
        medpy_save(flair_volume(100 * number), f"{path}_flair{ext}")
        medpy_save(seg_volume(), f"{path}_seg{ext}")
    medpy_save(np.zeros((2, 2, 2), dtype=np.float32), f"{root / 'BraTS2021_00000' / 'BraTS2021_00000'}_t1.nii.gz")
    return root


@pytest.fixture
def root(tmp_path) -> Path:
    return make_brats(tmp_path / "brats")


def test_subjects_in_all_three_namings(root):
    subjects = find_subjects(root)
    assert sorted(s.id for s in subjects) == sorted(SUBJECTS)
    assert all(s.flair.name.endswith(("_flair.nii.gz", "_flair.nii")) and "_seg." in s.seg.name for s in subjects)


def test_slices_are_axial_xy_min_max_scaled_with_whole_tumour_masks(root):
    subject = next(s for s in find_subjects(root) if s.id.startswith("HGG"))
    images, masks = subject_slices(subject)
    assert images.shape == (40, X, Y) and images.dtype == np.uint8 and masks.shape == (40, X, Y)
    assert all(image.min() == 0 and image.max() == 255 for image in images)
    k = 65
    expected = np.rint((flair_volume(0)[:, :, k] - flair_volume(0)[:, :, k].min()) / (10 * (X - 1) + Y - 1) * 255)
    assert np.array_equal(images[k - 60], expected.astype(np.uint8))
    assert [bool(m.any()) for m in masks] == [k in TUMOUR_SLICES for k in range(60, 100)]
    assert masks[75 - 60][:4].all() and not masks[75 - 60][4:].any()


def test_load_splits_subjects_and_labels_slices(root):
    data = BraTS(root).load("brain", 8)
    assert (len(data.train), len(data.valid), len(data.test)) == (3 * 30, 40, 40)
    assert data.train.labels.sum() == 0 and data.valid.labels.sum() == 10 and data.test.labels.sum() == 10
    subjects = {
        name: {p.rsplit("/", 1)[0] for p in split.paths}
        for name, split in (("train", data.train), ("valid", data.valid), ("test", data.test))
    }
    assert len(subjects["train"]) == 3 and len(subjects["valid"]) == 1 and len(subjects["test"]) == 1
    assert not (
        subjects["train"] & subjects["valid"]
        or subjects["train"] & subjects["test"]
        or subjects["valid"] & subjects["test"]
    )
    assert data.test.images.shape == (40, 8, 8, 3) and data.test.masks.shape == (40, 8, 8)
    anomalous = data.test.labels == 1
    # axis order: the tumour is in the first 4 of 16 x rows, i.e. the first 2 of 8 image rows
    assert data.test.masks[anomalous][:, :2].all() and not data.test.masks[anomalous][:, 2:].any()
    assert not data.test.masks[~anomalous].any()
    assert data.test.defect_types[int(np.flatnonzero(anomalous)[0])] == "tumour"
    assert data.test.paths[0].endswith("_flair.nii.gz#z060") or data.test.paths[0].endswith("_flair.nii#z060")


def test_manifest_is_saved_with_its_checksum_and_the_split_is_deterministic(root, tmp_path):
    adapter = BraTS(root)
    path, rows, digest = adapter.manifest()
    assert path.parent == tmp_path / "cache" / "brats" and path.suffix == ".csv"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest
    assert path.with_name(path.name + ".sha256").read_text().split()[0] == digest
    assert path.read_text().splitlines()[0] == "split,subject,slice,label,flair,seg"
    assert BraTS(root).fingerprint("brain") == adapter.fingerprint("brain") == adapter.load("brain", 8).fingerprint
    assignments = [tuple(sorted(BraTS(root, seed=seed).assign(find_subjects(root)).items())) for seed in range(8)]
    assert len(set(assignments)) > 1  # the seed matters
    assert assignments[3] == tuple(sorted(BraTS(root, seed=3).assign(find_subjects(root)).items()))


def test_volumes_are_read_once(root, monkeypatch):
    calls = []
    read = brats._read_volume
    monkeypatch.setattr(brats, "_read_volume", lambda path: calls.append(path) or read(path))
    BraTS(root).load("brain", 8)
    assert len(calls) == 2 * len(SUBJECTS)
    monkeypatch.setattr(brats, "_read_volume", lambda path: pytest.fail(f"volume read again: {path}"))
    assert len(BraTS(root).load("brain", 16).test) == 40


def test_edited_manifest_is_refused(root):
    path, _, _ = BraTS(root).manifest()
    path.write_text(path.read_text().replace(",1,", ",0,", 1))
    with pytest.raises(DataError, match=rf"{path.name}: its sha256 does not match"):
        BraTS(root).load("brain", 8)


def test_flair_seg_shape_mismatch_names_both_files(root):
    stem = root / "BraTS2021_00001" / "BraTS2021_00001"
    medpy_save(np.zeros((X, Y, Z - 1), dtype=np.uint8), f"{stem}_seg.nii.gz")
    with pytest.raises(
        DataError,
        match=r"BraTS2021_00001_flair\.nii\.gz has shape \(16, 12, 100\) "
        r"but .*BraTS2021_00001_seg\.nii\.gz has shape \(16, 12, 99\)",
    ):
        BraTS(root).load("brain", 8)


def test_bad_subjects_and_roots(root, tmp_path):
    (root / "BraTS20_Training_001" / "BraTS20_Training_001_seg.nii").unlink()
    with pytest.raises(DataError, match=r"BraTS20_Training_001: no segmentation"):
        BraTS(root).fingerprint("brain")
    (root / "BraTS20_Training_001" / "BraTS20_Training_001_flair.nii").write_bytes(b"garbage")
    (root / "BraTS20_Training_001" / "BraTS20_Training_001_seg.nii").write_bytes(b"garbage")
    with pytest.raises(DataError, match=r"BraTS20_Training_001_(flair|seg)\.nii: cannot read NIfTI volume"):
        BraTS(root).fingerprint("brain")
    few = make_brats(tmp_path / "few")
    for stem in list(SUBJECTS)[2:]:
        for path in (few / stem).parent.iterdir():
            path.unlink()
    with pytest.raises(DataError, match=r"few: found 2 BraTS subjects"):
        BraTS(few).fingerprint("brain")
    with pytest.raises(DataError, match=r"--root.*HARNESS_DATA.*brats"):
        BraTS().fingerprint("brain")


def _cut(path: Path, keep: float) -> None:
    """Keep the first `keep` fraction of the file's bytes, as an interrupted download or copy does."""
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


@pytest.mark.parametrize(
    "name, damage",
    [
        ("BraTS2021_00001/BraTS2021_00001_seg.nii.gz", "cut"),  # the gzip stream ends early
        ("BraTS2021_00001/BraTS2021_00001_flair.nii.gz", "cut"),
        ("BraTS2021_00001/BraTS2021_00001_seg.nii.gz", "short"),  # a complete gzip stream of too few voxels
        ("BraTS20_Training_001/BraTS20_Training_001_flair.nii", "cut"),  # uncompressed, too few bytes
    ],
)
def test_truncated_volume_is_an_error_naming_the_file(root, name, damage):
    import gzip

    path = root / name
    if damage == "cut":
        _cut(path, 0.6)
    else:
        path.write_bytes(gzip.compress(gzip.decompress(path.read_bytes())[:-500]))
    with pytest.raises(DataError, match=rf"{path.name}: .*truncated"):
        BraTS(root).load("brain", 8)


def test_truncated_volume_is_not_read_as_zeros(root):
    """The reader underneath fills missing voxels with zeros; the adapter must refuse such a file instead."""
    subject = next(s for s in find_subjects(root) if s.id.startswith("BraTS2021_00000"))
    _cut(subject.flair, 0.5)
    with pytest.raises(DataError, match=r"BraTS2021_00000_flair\.nii\.gz: .*truncated"):
        subject_slices(subject)
    assert not list((root.parent / "cache").rglob("*.npz"))  # nothing cached from the damaged volume


def test_manifest_is_rebuilt_when_a_volume_changes(root):
    adapter = BraTS(root)
    _, rows, _ = adapter.manifest()
    before = adapter.load("brain", 8)
    subject = next(r["subject"] for r in rows if r["split"] == "train")
    seg_path = root / next(r["seg"] for r in rows if r["subject"] == subject)
    seg = seg_volume()
    seg[0:4, :, 60:70] = 1  # ten more tumour slices in a training subject
    medpy_save(seg, str(seg_path))
    stat = seg_path.stat()
    os.utime(seg_path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # a later modification time, whatever the clock

    _, new_rows, _ = BraTS(root).manifest()
    train = [r for r in new_rows if r["split"] == "train" and r["subject"] == subject]
    assert [int(r["slice"]) for r in train] == [k for k in range(60, 100) if k not in range(60, 80)]
    after = BraTS(root).load("brain", 8)
    assert not after.train.masks.any()  # no tumour among the training slices
    assert len(after.train) == len(before.train) - 10
    assert after.fingerprint != before.fingerprint
    assert len(list((root.parent / "cache" / "brats").glob("manifest-*.csv"))) == 1  # the stale one is gone
