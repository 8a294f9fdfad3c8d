"""CIFAR-10 one-class novelty detection, read from the python pickle batches.

<root>/cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta} (or those files directly in
<root>). Each batch is a Python-2 pickle of a dict: data (N x 3072 uint8: 1024 red, 1024 green,
1024 blue values, row-major 32x32) and labels (0..9). Keys may be str or bytes depending on how the
file was written; both are accepted. torchvision's reader is not used because it md5-checks the
files. Unpickling is restricted to numpy arrays, so a file cannot run code.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from harness.datasets.oneclass import ClassArrays, OneClassAdapter
from harness.errors import DataError

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))


class _ArraysOnly(pickle.Unpickler):
    """An unpickler that builds only what the CIFAR batches contain: dicts, lists, numpy arrays."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} (only numpy arrays are expected)")
        if module.startswith("numpy.core") and hasattr(np, "_core"):
            module = "numpy._core" + module[len("numpy.core") :]  # numpy 2 renamed the module
        return super().find_class(module, name)


def _text(value) -> str:
    return value.decode("latin1") if isinstance(value, bytes) else str(value)


def read_pickle(path: Path) -> dict[str, object]:
    """A CIFAR pickle as a dict with str keys, whether it was written with str or bytes keys."""
    try:
        with open(path, "rb") as file:
            content = _ArraysOnly(file, encoding="latin1").load()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found (expected the CIFAR-10 python batches)") from None
    except (OSError, EOFError, pickle.UnpicklingError, ValueError, TypeError, AttributeError, ImportError) as error:
        raise DataError(f"{path}: cannot read CIFAR-10 pickle ({error})") from None
    if not isinstance(content, dict):
        raise DataError(f"{path}: expected a pickled dict, found {type(content).__name__}")
    return {_text(key): value for key, value in content.items()}


def read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(N, 32, 32, 3) uint8 images and (N,) labels of one batch file."""
    batch = read_pickle(path)
    if "data" not in batch or "labels" not in batch:
        raise DataError(f"{path}: expected keys data and labels, found {', '.join(sorted(batch))}")
    data, labels = np.asarray(batch["data"]), np.asarray(batch["labels"])
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise DataError(f"{path}: data is {data.dtype} {data.shape}, expected uint8 N x 3072")
    if len(data) == 0:
        raise DataError(f"{path}: the batch holds no images")
    if (
        labels.shape != (len(data),)
        or not np.issubdtype(labels.dtype, np.integer)
        or labels.min() < 0
        or labels.max() > 9
    ):
        raise DataError(f"{path}: labels must be {len(data)} integers in 0..9")
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels.astype(np.int64)


class CIFAR10(OneClassAdapter):
    name = "cifar10"
    description = "CIFAR-10 one-class novelty detection (10 classes, full 10,000-image test set, no masks)"
    default_profile = "novelty"
    data_folder = "cifar10"
    class_names = CIFAR10_CLASSES
    split_counts = {name: (5000, 10000) for name in CIFAR10_CLASSES}  # per class: its training images; all test images
    download_hint = (
        "Fetch it with `python -m harness data fetch cifar10 [--root PATH]`, or download "
        "'CIFAR-10 python version' (cifar-10-python.tar.gz) from "
        "https://www.cs.toronto.edu/~kriz/cifar.html, extract it and point --root at the folder "
        "that holds cifar-10-batches-py/."
    )

    def batch_dir(self) -> Path:
        root = self.root_dir()
        for folder in (root / "cifar-10-batches-py", root):
            if (folder / "test_batch").is_file() or (folder / "data_batch_1").is_file():
                return folder
        raise DataError(
            f"{root}: no CIFAR-10 batches (expected {root / 'cifar-10-batches-py' / 'data_batch_1'}). "
            f"{self.download_hint}"
        )

    def check_root(self) -> None:
        self.batch_dir()

    def read_arrays(self) -> ClassArrays:
        folder = self.batch_dir()
        root = self.root_dir()
        meta = folder / "batches.meta"
        if meta.is_file():
            label_names = read_pickle(meta).get("label_names", ())
            names = tuple(_text(n) for n in label_names) if isinstance(label_names, list | tuple) else ()
            if names != CIFAR10_CLASSES:
                raise DataError(
                    f"{meta}: label_names are {', '.join(names)}; "
                    f"expected the CIFAR-10 classes {', '.join(CIFAR10_CLASSES)}"
                )
        parts = {}
        for name in TRAIN_BATCHES + ("test_batch",):
            if not (folder / name).is_file():
                raise DataError(f"{folder / name}: file not found (CIFAR-10 needs data_batch_1..5 and test_batch)")
            parts[name] = read_batch(folder / name)

        def ids(names: tuple[str, ...]) -> list[str]:
            prefix = "" if folder == root else folder.relative_to(root).as_posix() + "/"
            return [f"{prefix}{n}#{i}" for n in names for i in range(len(parts[n][1]))]

        return ClassArrays(
            train_images=np.concatenate([parts[n][0] for n in TRAIN_BATCHES]),
            train_labels=np.concatenate([parts[n][1] for n in TRAIN_BATCHES]),
            train_ids=ids(TRAIN_BATCHES),
            test_images=parts["test_batch"][0],
            test_labels=parts["test_batch"][1],
            test_ids=ids(("test_batch",)),
            sources=[folder / n for n in parts],
        )
