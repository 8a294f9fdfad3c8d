"""MNIST and Fashion-MNIST one-class novelty detection, read from the raw IDX files.

Files (gzip-compressed or not, in <root>, <root>/raw or torchvision's <root>/<MNIST|FashionMNIST>/raw):
train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte
(the spelling train-images.idx3-ubyte of some mirrors is accepted too). IDX: two zero bytes, a type
byte (0x08 = unsigned byte), the number of dimensions, one big-endian uint32 per dimension, then
the values; images are 28x28 grayscale, converted to RGB.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from harness.datasets.oneclass import ClassArrays, OneClassAdapter
from harness.errors import DataError

IMAGES_MAGIC = 0x00000803  # unsigned byte, 3 dimensions
LABELS_MAGIC = 0x00000801  # unsigned byte, 1 dimension
FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


def read_idx(path: Path, magic: int) -> np.ndarray:
    """The array stored in an IDX file (gzip or not); a wrong magic number or size names the file."""
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as error:
        raise DataError(f"{path}: cannot read IDX file ({error})") from None
    if len(raw) < 4 or int.from_bytes(raw[:4], "big") != magic:
        found = f"0x{int.from_bytes(raw[:4], 'big'):08x}" if len(raw) >= 4 else "a file too short"
        raise DataError(f"{path}: not an IDX file of the expected kind (magic number {found}, expected 0x{magic:08x})")
    ndim = raw[3]
    header = 4 + 4 * ndim
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    if len(raw) != header + int(np.prod(shape)):
        raise DataError(f"{path}: {len(raw) - header} data bytes for shape {shape} (truncated or corrupt file)")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


class _IDXOneClass(OneClassAdapter):
    torchvision_folder = ""

    def _find(self, stem: str) -> Path:
        root = self.root_dir()
        folders = (root, root / "raw", root / self.torchvision_folder / "raw")
        dotted = stem.replace("-idx", ".idx")
        for folder in folders:
            for name in (stem, stem + ".gz", dotted, dotted + ".gz"):
                if (folder / name).is_file():
                    return folder / name
        raise DataError(
            f"{root}: {stem}[.gz] not found (looked in {', '.join(str(f) for f in folders)}). {self.download_hint}"
        )

    def check_root(self) -> None:
        for stem in FILES.values():
            self._find(stem)

    def read_arrays(self) -> ClassArrays:
        root = self.root_dir()
        paths = {key: self._find(stem) for key, stem in FILES.items()}
        arrays = {
            key: read_idx(path, LABELS_MAGIC if key.endswith("labels") else IMAGES_MAGIC) for key, path in paths.items()
        }
        for part in ("train", "test"):
            images, labels = arrays[f"{part}_images"], arrays[f"{part}_labels"]
            if len(images) != len(labels):
                raise DataError(
                    f"{paths[f'{part}_images']}: {len(images)} images "
                    f"but {paths[f'{part}_labels']} has {len(labels)} labels"
                )
            if len(labels) and labels.max() >= len(self.class_names):
                raise DataError(
                    f"{paths[f'{part}_labels']}: label {labels.max()} out of range 0..{len(self.class_names) - 1}"
                )

        def ids(key: str) -> list[str]:
            name = paths[key].relative_to(root).as_posix()
            return [f"{name}#{i}" for i in range(len(arrays[key]))]

        return ClassArrays(
            train_images=arrays["train_images"],
            train_labels=arrays["train_labels"].astype(np.int64),
            train_ids=ids("train_images"),
            test_images=arrays["test_images"],
            test_labels=arrays["test_labels"].astype(np.int64),
            test_ids=ids("test_images"),
            sources=list(paths.values()),
        )


class MNIST(_IDXOneClass):
    name = "mnist"
    default_profile = "novelty"
    description = "MNIST one-class novelty detection (digits 0-9, full 10,000-image test set, no masks)"
    data_folder = "mnist"
    torchvision_folder = "MNIST"
    class_names = tuple(str(digit) for digit in range(10))
    download_hint = (
        "Fetch them with `python -m harness data fetch mnist [--root PATH]`, or download the four IDX "
        "files (train-images-idx3-ubyte.gz, ...) from the MNIST page "
        "http://yann.lecun.com/exdb/mnist/ (or a mirror) and point --root at their folder."
    )


class FashionMNIST(_IDXOneClass):
    name = "fashion_mnist"
    default_profile = "novelty"
    description = "Fashion-MNIST one-class novelty detection (10 classes, full 10,000-image test set, no masks)"
    data_folder = "fashion_mnist"
    torchvision_folder = "FashionMNIST"
    class_names = (
        "tshirt_top",
        "trouser",
        "pullover",
        "dress",
        "coat",
        "sandal",
        "shirt",
        "sneaker",
        "bag",
        "ankle_boot",
    )
    download_hint = (
        "Fetch them with `python -m harness data fetch fashion_mnist [--root PATH]`, or download the "
        "four IDX files (train-images-idx3-ubyte.gz, ...) from "
        "https://github.com/zalandoresearch/fashion-mnist and point --root at their folder."
    )
