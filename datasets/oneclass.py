"""One-class novelty detection on a classification data set (CIFAR-10, MNIST, Fashion-MNIST).

One class is normal: the training split is that class's training images, the test split is the
WHOLE test set with the other classes as anomalies (the protocol of the RD4AD paper's novelty
experiments). There are no masks, so pixel metrics do not apply.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness.datasets import cache
from harness.datasets.base import Adapter, CategoryData, Split, check_image_size, split_fingerprint
from harness.datasets.imageio import parallel_map, resize_rgb
from harness.files import content_hashes


@dataclass
class ClassArrays:
    """A classification data set in memory: uint8 images (N, H, W) or (N, H, W, 3), int labels."""

    train_images: np.ndarray
    train_labels: np.ndarray
    train_ids: list[str]  # per image, "<file relative to the root>#<index>"
    test_images: np.ndarray
    test_labels: np.ndarray
    test_ids: list[str]
    sources: list[Path]


def _resized(images: np.ndarray, size: int) -> np.ndarray:
    if images.ndim == 3:
        images = np.repeat(images[..., None], 3, axis=-1)  # grayscale -> RGB
    if images.shape[1:3] == (size, size):
        return np.ascontiguousarray(images, dtype=np.uint8)
    out = np.empty((len(images), size, size, 3), dtype=np.uint8)

    def one(index: int) -> None:
        out[index] = resize_rgb(images[index], size)

    parallel_map(one, range(len(images)))
    return out


class OneClassAdapter(Adapter):
    """Subclasses set `class_names` and implement `read_arrays` (parsing the raw files once)."""

    default_profile = "novelty"
    option_defaults = {"cache": None}
    class_names: tuple[str, ...] = ()

    def __init__(self, root: str | Path | None = None, **options) -> None:
        super().__init__(root, **options)
        self._arrays: ClassArrays | None = None

    @property
    def categories(self) -> tuple[str, ...]:
        return self.class_names

    def read_arrays(self) -> ClassArrays:
        raise NotImplementedError

    def arrays(self) -> ClassArrays:
        if self._arrays is None:  # the files are parsed once per adapter, then shared by all ten classes
            self._arrays = self.read_arrays()
        return self._arrays

    def _selection(self, category: str) -> tuple[ClassArrays, np.ndarray, np.ndarray]:
        self.check_category(category)
        arrays = self.arrays()
        normal = self.class_names.index(category)
        return arrays, np.flatnonzero(arrays.train_labels == normal), (arrays.test_labels != normal).astype(np.int64)

    def _rows(self, arrays: ClassArrays, train_index: np.ndarray, test_labels: np.ndarray) -> list[tuple]:
        rows = [("train", arrays.train_ids[i], 0) for i in train_index]
        rows += [
            ("test", identifier, int(label)) for identifier, label in zip(arrays.test_ids, test_labels, strict=False)
        ]
        # the images' bytes: the sha256 of the files they were parsed from
        return rows + [("source", path.name, 0, sha) for path, sha in content_hashes(arrays.sources).items()]

    def fingerprint(self, category: str) -> str:
        return split_fingerprint(self._rows(*self._selection(category)))

    def load(self, category: str, image_size: int) -> CategoryData:
        size = check_image_size(image_size)
        arrays, train_index, test_labels = self._selection(category)
        fingerprint = split_fingerprint(self._rows(arrays, train_index, test_labels))

        def build() -> CategoryData:
            train = Split(
                images=_resized(arrays.train_images[train_index], size),
                labels=np.zeros(len(train_index), dtype=np.int64),
                masks=None,
                defect_types=["good"] * len(train_index),
                paths=[arrays.train_ids[i] for i in train_index],
            )
            test = Split(
                images=_resized(arrays.test_images, size),
                labels=test_labels,
                masks=None,
                defect_types=[
                    "good" if not anomalous else self.class_names[c]
                    for c, anomalous in zip(arrays.test_labels, test_labels, strict=False)
                ],
                paths=list(arrays.test_ids),
            )
            data = CategoryData(self.name, category, train, test, fingerprint=fingerprint)
            data.provenance["protocol"] = f"one-class: train on '{category}' training images, test on the full test set"
            return data

        return cache.load_or_build(
            self.name, category, size, fingerprint, arrays.sources, build, self.options.get("cache")
        )
