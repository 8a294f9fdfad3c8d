"""The `manifest` data set format: one folder per category, each with a manifest.csv listing its images.

ROOT/<category>/manifest.csv      columns: file,split,label[,mask]
                                  split: train | test; label: 0 normal, 1 anomalous;
                                  file and mask: paths relative to the category folder
ROOT/<category>/<the files it names>
"""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import numpy as np
from PIL import Image

import harness
from harness.errors import DataError

MANIFEST = "manifest.csv"


class ManifestDataset(harness.Adapter):
    """Images listed in a manifest.csv per category (file, split, label, optional mask)."""

    name = "manifest"
    description = "Images listed per category in ROOT/<category>/manifest.csv (file,split,label[,mask])"

    @property
    def categories(self) -> tuple[str, ...]:
        root = self.root_dir()
        return tuple(sorted(folder.name for folder in root.iterdir() if (folder / MANIFEST).is_file()))

    def check_root(self) -> None:
        if not self.categories:
            raise DataError(f"{self.root}: no category folder with a {MANIFEST} (expected ROOT/<category>/{MANIFEST})")

    def _rows(self, category: str) -> list[dict]:
        self.check_category(category)
        path = self.root_dir() / category / MANIFEST
        with open(path, newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
        for number, row in enumerate(rows, start=2):
            if row.get("split") not in ("train", "test") or row.get("label") not in ("0", "1") or not row.get("file"):
                raise DataError(f"{path}:{number}: expected file,split (train|test),label (0|1)[,mask]")
        return rows

    def _read(self, path: Path, size: int, mode: str) -> np.ndarray:
        try:
            with Image.open(path) as image:
                resample = Image.NEAREST if mode == "L" else Image.BILINEAR
                return np.asarray(image.convert(mode).resize((size, size), resample))
        except OSError as error:
            raise DataError(f"{path}: cannot read the image ({error})") from None

    def load(self, category: str, image_size: int) -> harness.CategoryData:
        folder = self.root_dir() / category
        splits = {}
        for split in ("train", "test"):
            rows = [row for row in self._rows(category) if row["split"] == split]
            if not rows:
                raise DataError(f"{folder / MANIFEST}: no {split} images")
            images = np.stack([self._read(folder / row["file"], image_size, "RGB") for row in rows])
            labels = np.array([int(row["label"]) for row in rows])
            masks = None
            if split == "test" and all("mask" in row for row in rows):
                masks = np.stack(
                    [
                        self._read(folder / row["mask"], image_size, "L") > 0
                        if row["mask"]
                        else np.zeros((image_size, image_size), dtype=bool)
                        for row in rows
                    ]
                )
            splits[split] = harness.Split(images, labels, masks, paths=[row["file"] for row in rows])
        return harness.CategoryData(
            self.name, category, splits["train"], splits["test"], fingerprint=self.fingerprint(category)
        )

    def fingerprint(self, category: str) -> str:
        """sha256 over the manifest and the bytes of every file it names."""
        folder = self.root_dir() / category
        digest = hashlib.sha256((folder / MANIFEST).read_bytes())
        for row in self._rows(category):
            for name in (row["file"], row.get("mask") or ""):
                if name:
                    try:
                        digest.update((folder / name).read_bytes())
                    except OSError as error:
                        raise DataError(f"{folder / name}: cannot read ({error.strerror or error})") from None
        return digest.hexdigest()[:16]
