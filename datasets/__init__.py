"""Data set adapters, by name. A new adapter is one new module plus one line in `_ADAPTERS`."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from harness.datasets.base import Adapter, CategoryData, Split, split_fingerprint
from harness.errors import HarnessError

# name -> "module:Class", imported on first use so that one broken optional reader cannot break the CLI
_ADAPTERS: dict[str, str] = {
    "synthetic": "harness.datasets.synthetic:SyntheticAdapter",
    "mvtec": "harness.datasets.mvtec:MVTecAD",
    "visa": "harness.datasets.visa:VisA",
    "brats": "harness.datasets.brats:BraTS",
    "brats_bmad": "harness.datasets.bmad:BraTSBMAD",
    "cifar10": "harness.datasets.cifar:CIFAR10",
    "mnist": "harness.datasets.mnist:MNIST",
    "fashion_mnist": "harness.datasets.mnist:FashionMNIST",
    "folder": "harness.datasets.folder:FolderDataset",
}


def names() -> list[str]:
    return sorted(_ADAPTERS)


def get(name: str) -> type[Adapter]:
    """The adapter class registered under `name`."""
    if name not in _ADAPTERS:
        raise HarnessError(f"unknown data set '{name}'; known data sets: {', '.join(names())}")
    module_name, class_name = _ADAPTERS[name].split(":")
    return getattr(importlib.import_module(module_name), class_name)


def create(name: str, root: str | Path | None = None, **options: Any) -> Adapter:
    """An adapter instance reading `root` (or the data set's default location), with its options."""
    return get(name)(root, **options)


__all__ = ["Adapter", "CategoryData", "Split", "split_fingerprint", "names", "get", "create"]
