"""Data set adapters, by name: the built-ins below, the `rd_harness.datasets` entry points of installed packages,
and classes registered with `harness.register_dataset`. A new built-in is one module plus one line in `BUILTIN`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.datasets.base import Adapter, CategoryData, Split, check_adapter_class, split_fingerprint
from harness.registry import Registry

# name -> "module:Class", imported on first use so that one broken optional reader cannot break the CLI
BUILTIN: dict[str, str] = {
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
ENTRY_POINT_GROUP = "rd_harness.datasets"

REGISTRY: Registry[Adapter] = Registry("data set", ENTRY_POINT_GROUP, BUILTIN, check_adapter_class)


def names() -> list[str]:
    return REGISTRY.names()


def get(name: str) -> type[Adapter]:
    """The adapter class registered under `name` (HarnessError, one line, when it is unknown or broken)."""
    return REGISTRY.get(name)


def register(name: str, cls: type[Adapter]) -> None:
    """Make `cls` available as data set `name` in this process."""
    REGISTRY.register(name, cls)


def create(name: str, root: str | Path | None = None, **options: Any) -> Adapter:
    """An adapter instance reading `root` (or the data set's default location), with its options."""
    return get(name)(root, **options)


__all__ = [
    "Adapter",
    "CategoryData",
    "Split",
    "split_fingerprint",
    "names",
    "get",
    "register",
    "create",
    "REGISTRY",
    "BUILTIN",
]
