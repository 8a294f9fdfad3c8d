"""What every data set adapter returns, and the split fingerprint recorded with each result."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np


@dataclass
class Split:
    """Images of one split, decoded and resized once, held as uint8.

    images:       (N, H, W, 3) uint8 RGB
    labels:       (N,) int64, 0 normal, 1 anomalous
    masks:        (N, H, W) bool, or None when the data set has no pixel annotation (CIFAR-10)
    defect_types: per image, "good" for normal images
    paths:        per image, path relative to the data set root (unique within the split)
    """

    images: np.ndarray
    labels: np.ndarray
    masks: np.ndarray | None = None
    defect_types: list[str] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        n = len(self.images)
        if self.images.ndim != 4 or self.images.shape[-1] != 3 or self.images.dtype != np.uint8:
            raise ValueError(f"images must be (N, H, W, 3) uint8, got {self.images.shape} {self.images.dtype}")
        self.labels = np.asarray(self.labels, dtype=np.int64)
        if len(self.labels) != n:
            raise ValueError(f"{len(self.labels)} labels for {n} images")
        if self.masks is not None and self.masks.shape != self.images.shape[:3]:
            raise ValueError(f"masks {self.masks.shape} do not match images {self.images.shape[:3]}")
        if not self.defect_types:
            self.defect_types = ["good" if label == 0 else "anomaly" for label in self.labels]
        if len(self.defect_types) != n or (self.paths and len(self.paths) != n):
            raise ValueError("defect_types and paths must have one entry per image")

    def __len__(self) -> int:
        return len(self.images)


@dataclass
class CategoryData:
    """Everything a job needs from a data set for one category."""

    dataset: str
    category: str
    train: Split
    test: Split
    valid: Split | None = None
    fingerprint: str = ""


def split_fingerprint(entries: list[tuple[str, str, int]]) -> str:
    """Hash of the sorted (split, relative path, label) triples: identifies exactly which files were used."""
    digest = hashlib.sha256()
    for split, path, label in sorted(entries):
        digest.update(f"{split}\t{path}\t{label}\n".encode())
    return digest.hexdigest()[:16]


class Adapter:
    """Base of all data set adapters: knows a file format, nothing about methods.

    Subclasses set `name`, `categories`, `default_profile` and implement `load` and `fingerprint`.
    """

    name: ClassVar[str] = ""
    default_profile: ClassVar[str] = "paper"
    description: ClassVar[str] = ""

    def __init__(self, root: str | None = None) -> None:
        self.root = root

    @property
    def categories(self) -> tuple[str, ...]:
        raise NotImplementedError

    def load(self, category: str, image_size: int) -> CategoryData:
        raise NotImplementedError

    def fingerprint(self, category: str) -> str:
        raise NotImplementedError
