"""BraTS brain MRI (tumour = anomaly) from the raw NIfTI volumes, as 2D FLAIR slices.

Subjects are found under the root in any of the published namings:
    BraTS2021: <root>/BraTS2021_<id>/BraTS2021_<id>_{flair,seg}.nii.gz
    BraTS2020: <root>/BraTS20_Training_<id>/BraTS20_Training_<id>_{flair,seg}.nii[.gz]
    BraTS2018: <root>/{HGG,LGG}/Brats18_<...>/Brats18_<...>_{flair,seg}.nii.gz
Protocol (as BMAD): FLAIR only, axial slices 60..99 read with medpy.io.load, whose arrays are
(x, y, z): slice k is volume[:, :, k]. A slice is normal iff its seg slice has no tumour; its mask
is seg > 0 (whole tumour). Each slice is min-max scaled to [0, 1] on its own, stored as uint8 and
replicated to 3 channels.

BMAD's own split depends on Python's hash seed, so it cannot be reproduced; this adapter splits
SUBJECTS deterministically instead: subjects are ordered by sha256("<seed>:<subject>") and the first
`test_fraction` of them are the test subjects, the next `valid_fraction` the validation subjects,
the rest the training subjects. Training uses the normal slices of the training subjects only;
validation and test use all slices of their subjects. The split is saved as a manifest CSV in
<cache>/brats/ next to a .sha256 file with its checksum, keyed on the files' sizes and modification
times (a changed volume gets a new manifest); the slices of each subject are cached as npz, so the
volumes are read once.
"""

from __future__ import annotations

import csv
import hashlib
import io
import threading
import zipfile
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness.datasets import cache
from harness.datasets.base import (
    Adapter,
    CategoryData,
    Split,
    check_image_size,
    empty_training_split,
    split_fingerprint,
)
from harness.datasets.imageio import parallel_map, resize_mask, resize_rgb
from harness.datasets.nifti import check_complete
from harness.errors import DataError, HarnessError
from harness.files import atomic_write, content_hashes, file_stamp
from harness.paths import cache_dir

SLICES = range(60, 100)
VERSION = 1  # of the slice extraction and manifest format
MANIFEST_COLUMNS = ["split", "subject", "slice", "label", "flair", "seg"]
_READ_LOCK = threading.Lock()


@dataclass(frozen=True)
class Subject:
    id: str  # flair path relative to the root without the _flair suffix: unique
    flair: Path
    seg: Path


def _strip(name: str, suffix: str) -> str | None:
    return name[: -len(suffix)] if name.endswith(suffix) else None


def find_subjects(root: Path) -> list[Subject]:
    subjects = []
    flairs = sorted({*root.rglob("*_flair.nii.gz"), *root.rglob("*_flair.nii")})
    for flair in flairs:
        if any(part.startswith(".") for part in flair.relative_to(root).parts):
            continue
        base = _strip(flair.name, "_flair.nii.gz") or _strip(flair.name, "_flair.nii")
        assert base is not None  # the glob matched one of the two suffixes
        seg = next(
            (
                flair.parent / f"{base}_seg{ext}"
                for ext in (".nii.gz", ".nii")
                if (flair.parent / f"{base}_seg{ext}").is_file()
            ),
            None,
        )
        if seg is None:
            # BraTS2020 subject 355 ships its segmentation under another name
            others = [
                p
                for p in flair.parent.iterdir()
                if "seg" in p.name.lower() and p.name.lower().endswith((".nii", ".nii.gz"))
            ]
            if len(others) != 1:
                raise DataError(
                    f"{flair.parent}: no segmentation {base}_seg.nii.gz next to {flair.name} "
                    "(validation and test subjects have no labels: point --root at the training data)"
                )
            seg = others[0]
        subjects.append(Subject((flair.parent / base).relative_to(root).as_posix(), flair, seg))
    return subjects


def _read_volume(path: Path) -> np.ndarray:
    from medpy.io import load as medpy_load  # imported here: only this adapter needs medpy

    check_complete(path)  # the reader would return a truncated file's missing voxels as zeros
    try:
        with _READ_LOCK:  # one volume at a time: ITK's readers are not documented as thread-safe
            volume, _ = medpy_load(str(path))
    except Exception as error:  # medpy and its backends raise many types for unreadable files
        raise DataError(f"{path}: cannot read NIfTI volume ({type(error).__name__}: {error})") from None
    return np.asarray(volume)


def subject_slices(subject: Subject) -> tuple[np.ndarray, np.ndarray]:
    """(40, X, Y) uint8 min-max scaled FLAIR slices and (40, X, Y) bool tumour masks, cached as npz."""
    path = (
        cache_dir()
        / "brats"
        / "slices"
        / f"{file_stamp([subject.flair, subject.seg], salt=f'{VERSION} {SLICES.start}:{SLICES.stop}')}.npz"
    )
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as stored:
                return stored["images"], stored["masks"]
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
            pass  # a damaged entry is rebuilt
    flair, seg = _read_volume(subject.flair), _read_volume(subject.seg)
    if flair.shape != seg.shape:
        raise DataError(
            f"{subject.flair} has shape {flair.shape} but {subject.seg} has shape {seg.shape}: "
            "FLAIR and segmentation must be co-registered volumes of the same shape"
        )
    if flair.ndim != 3 or flair.shape[2] < SLICES.stop:
        raise DataError(
            f"{subject.flair}: shape {flair.shape}, expected a 3D volume (x, y, z) "
            f"with at least {SLICES.stop} axial slices"
        )
    slices = flair[:, :, SLICES.start : SLICES.stop].astype(np.float32).transpose(2, 0, 1)
    masks = (seg[:, :, SLICES.start : SLICES.stop] > 0).transpose(2, 0, 1)
    low = slices.min(axis=(1, 2), keepdims=True)
    span = slices.max(axis=(1, 2), keepdims=True) - low
    scaled = np.divide(slices - low, span, out=np.zeros_like(slices), where=span > 0)
    images = np.rint(scaled * 255).astype(np.uint8)
    masks = np.ascontiguousarray(masks)
    atomic_write(path, lambda file: np.savez_compressed(file, images=images, masks=masks))
    return images, masks


class BraTS(Adapter):
    name = "brats"
    description = "BraTS 2018/2020/2021 FLAIR slices 60..99 from NIfTI volumes, seeded subject-level split"
    default_profile = "paper"
    data_folder = "brats"
    option_defaults = {"cache": None, "seed": 0, "valid_fraction": 0.05, "test_fraction": 0.1}
    download_hint = (
        "Register for and download the BraTS training data (BraTS 2021: "
        "https://www.synapse.org/brats2021 ; BraTS 2020/2018: https://www.med.upenn.edu/cbica/brats/), "
        "extract it and point --root at the folder that holds the subject folders."
    )

    def __init__(self, root: str | Path | None = None, **options) -> None:
        super().__init__(root, **options)
        valid, test, seed = self.options["valid_fraction"], self.options["test_fraction"], self.options["seed"]
        if not (isinstance(seed, int) and 0 <= valid < 1 and 0 < test < 1 and valid + test < 1):
            raise HarnessError(
                f"brats options need an integer seed and 0 <= valid_fraction, 0 < test_fraction, "
                f"valid_fraction + test_fraction < 1; got seed={seed!r}, valid_fraction={valid}, test_fraction={test}"
            )

    @property
    def categories(self) -> tuple[str, ...]:
        return ("brain",)

    def subjects(self) -> list[Subject]:
        root = self.root_dir()
        subjects = find_subjects(root)
        if len(subjects) < 3:
            raise DataError(
                f"{root}: found {len(subjects)} BraTS subjects (*_flair.nii.gz with *_seg.nii.gz); "
                f"the subject-level train/validation/test split needs at least 3. {self.download_hint}"
            )
        return subjects

    def check_root(self) -> None:
        self.subjects()

    def assign(self, subjects: list[Subject]) -> dict[str, str]:
        """subject id -> train / valid / test, by the seeded hash order (independent of library versions)."""
        seed = self.options["seed"]
        order = sorted(s.id for s in subjects)
        order.sort(key=lambda sid: hashlib.sha256(f"{seed}:{sid}".encode()).hexdigest())
        n = len(order)
        n_test = max(1, round(self.options["test_fraction"] * n))
        n_valid = max(1, round(self.options["valid_fraction"] * n)) if self.options["valid_fraction"] > 0 else 0
        if n - n_test - n_valid < 1:
            raise DataError(
                f"{self.root}: {n} subjects are too few for a test and validation split plus training subjects"
            )
        return {
            sid: "test" if i < n_test else "valid" if i < n_test + n_valid else "train" for i, sid in enumerate(order)
        }

    def manifest(self) -> tuple[Path, list[dict[str, str]], str]:
        """(manifest path, rows, sha256); built once (reading every volume once), then read back and verified.

        The manifest is keyed on the split's parameters, the subjects' files and each file's size and
        modification time: when a volume changes (a corrected segmentation), its slices' labels may
        change, so the manifest is rebuilt and the stale one removed.
        """
        root = self.root_dir()
        subjects = self.subjects()
        params = {k: self.options[k] for k in ("seed", "valid_fraction", "test_fraction")}
        key_text = "\n".join(
            [str(root.resolve()), str(VERSION), repr(sorted(params.items()))]
            + [f"{s.id}\t{s.flair.relative_to(root)}\t{s.seg.relative_to(root)}" for s in subjects]
        )
        key = hashlib.sha256(key_text.encode()).hexdigest()[:16]
        stamp = file_stamp([p for s in subjects for p in (s.flair, s.seg)])[:16]
        prefix = f"manifest-seed{self.options['seed']}-{key}-"
        path = cache_dir() / "brats" / f"{prefix}{stamp}.csv"
        checksum_path = path.with_name(path.name + ".sha256")
        if path.is_file() and checksum_path.is_file():
            content = path.read_bytes()
            digest = hashlib.sha256(content).hexdigest()
            if checksum_path.read_text().split()[:1] != [digest]:
                raise DataError(
                    f"{path}: its sha256 does not match {checksum_path}: the manifest was edited or damaged; "
                    "delete both files to rebuild the split"
                )
            return path, list(csv.DictReader(io.StringIO(content.decode()))), digest
        splits = self.assign(subjects)
        labels = parallel_map(lambda s: subject_slices(s)[1].any(axis=(1, 2)), subjects)
        rows = []
        for subject, tumour in zip(subjects, labels, strict=False):
            split = splits[subject.id]
            for offset, k in enumerate(SLICES):
                if split == "train" and tumour[offset]:
                    continue  # training uses normal slices only
                rows.append(
                    {
                        "split": split,
                        "subject": subject.id,
                        "slice": str(k),
                        "label": str(int(tumour[offset])),
                        "flair": subject.flair.relative_to(root).as_posix(),
                        "seg": subject.seg.relative_to(root).as_posix(),
                    }
                )
        text = io.StringIO()
        writer = csv.DictWriter(text, MANIFEST_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        content = text.getvalue().encode()
        digest = hashlib.sha256(content).hexdigest()
        atomic_write(path, lambda file: file.write(content))
        atomic_write(checksum_path, lambda file: file.write(f"{digest}  {path.name}\n".encode()))
        for stale in path.parent.glob(f"{prefix}*.csv*"):  # the same split of files that have changed since
            if stale.name not in (path.name, checksum_path.name):
                stale.unlink(missing_ok=True)
        return path, rows, digest

    def _rows(self, rows: list[dict[str, str]]) -> list[tuple[str, str, int, str, str]]:
        """(split, slice, label, sha256 of the FLAIR volume, sha256 of the segmentation) per manifest row."""
        root = self.root_dir()
        hashes = content_hashes(root / r[column] for r in rows for column in ("flair", "seg"))
        return [
            (
                r["split"],
                f"{r['flair']}#z{int(r['slice']):03d}",
                int(r["label"]),
                hashes[root / r["flair"]],
                hashes[root / r["seg"]],
            )
            for r in rows
        ]

    def fingerprint(self, category: str) -> str:
        self.check_category(category)
        return split_fingerprint(self._rows(self.manifest()[1]))

    def load(self, category: str, image_size: int) -> CategoryData:
        self.check_category(category)
        size = check_image_size(image_size)
        path, rows, digest = self.manifest()
        fingerprint = split_fingerprint(self._rows(rows))
        root = self.root_dir()
        subjects = {s.id: s for s in self.subjects()}
        sources = [p for s in subjects.values() for p in (s.flair, s.seg)]

        def build() -> CategoryData:
            by_split: dict[str, list[dict[str, str]]] = defaultdict(list)
            for row in rows:
                by_split[row["split"]].append(row)
            needed = sorted({row["subject"] for row in rows})
            slices = dict(zip(needed, parallel_map(lambda sid: subject_slices(subjects[sid]), needed), strict=False))
            splits = {name: self._split(part, slices, size) for name, part in by_split.items()}
            if "train" not in splits:
                raise empty_training_split(root, "tumour-free slices 60..99 in the training subjects")
            data = CategoryData(self.name, category, splits["train"], splits["test"], splits.get("valid"), fingerprint)
            data.provenance.update(
                {"manifest": str(path), "manifest_sha256": digest, "split_seed": self.options["seed"]}
            )
            return data

        return cache.load_or_build(self.name, category, size, fingerprint, sources, build, self.options.get("cache"))

    @staticmethod
    def _split(rows: list[dict[str, str]], slices: dict, size: int) -> Split:
        images = np.empty((len(rows), size, size, 3), dtype=np.uint8)
        masks = np.empty((len(rows), size, size), dtype=bool)

        def one(index: int) -> None:
            row = rows[index]
            volume_images, volume_masks = slices[row["subject"]]
            offset = int(row["slice"]) - SLICES.start
            images[index] = resize_rgb(volume_images[offset], size)
            masks[index] = resize_mask(volume_masks[offset], size)

        parallel_map(one, range(len(rows)))
        labels = np.array([int(r["label"]) for r in rows], dtype=np.int64)
        return Split(
            images,
            labels,
            masks,
            ["good" if not label else "tumour" for label in labels],
            [f"{r['flair']}#z{int(r['slice']):03d}" for r in rows],
        )
