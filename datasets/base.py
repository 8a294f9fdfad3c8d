"""What every data set adapter returns, and the split fingerprint recorded with each result."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from harness.errors import DataError, HarnessError
from harness.paths import data_root


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
    """Everything a job needs from a data set for one category.

    `provenance` holds facts worth recording with the result (split file, manifest checksum,
    whether the array cache was used); it never changes the data.
    """

    dataset: str
    category: str
    train: Split
    test: Split
    valid: Split | None = None
    fingerprint: str = ""
    provenance: dict = field(default_factory=dict)


def split_fingerprint(entries: list[tuple]) -> str:
    """Hash of the sorted (split, relative path, label, content hash...) entries: identifies exactly which
    files were used, with which labels, and (through the sha256 of their bytes) what they held."""
    digest = hashlib.sha256()
    for entry in sorted(entries):
        digest.update(("\t".join(map(str, entry)) + "\n").encode())
    return digest.hexdigest()[:16]


class Adapter:
    """Base of all data set adapters: knows a file format, nothing about methods.

    Subclasses set `name`, `description`, `default_profile`, `categories` and implement `load` and
    `fingerprint`. Options are keyword arguments declared with their defaults in `option_defaults`;
    an undeclared option is an error (a misspelt option must not be ignored silently). The root is
    the constructor argument, else `$HARNESS_DATA/<data_folder>` when the class sets `data_folder`.
    """

    name: ClassVar[str] = ""
    default_profile: ClassVar[str] = "paper"
    description: ClassVar[str] = ""
    download_hint: ClassVar[str] = ""
    data_folder: ClassVar[str | None] = None
    option_defaults: ClassVar[dict[str, Any]] = {}
    # Published (training, test) image counts per category, for sweep estimates without the files; {} when unknown
    split_counts: ClassVar[dict[str, tuple[int, int]]] = {}
    # False for data the adapter makes itself or finds without a root folder (generated, downloaded into a
    # cache): no root is then required before jobs start.
    needs_root: ClassVar[bool] = True

    def __init__(self, root: str | Path | None = None, **options: Any) -> None:
        unknown = sorted(set(options) - set(self.option_defaults))
        if unknown:
            valid = ", ".join(sorted(self.option_defaults)) or "none"
            raise HarnessError(
                f"unknown option(s) {', '.join(unknown)} for data set '{self.name}'; valid options: {valid}"
            )
        self.options: dict[str, Any] = {**self.option_defaults, **options}
        if root is None and self.data_folder:
            root = data_root(self.data_folder)
        self.root = str(root) if root is not None else None

    @property
    def categories(self) -> tuple[str, ...]:
        raise NotImplementedError

    def load(self, category: str, image_size: int) -> CategoryData:
        raise NotImplementedError

    def fingerprint(self, category: str) -> str:
        raise NotImplementedError

    # Checks shared by the adapters, so that every bad input gets the same kind of message.

    def check_category(self, category: str) -> None:
        if category not in self.categories:
            raise DataError(f"unknown category '{category}' for {self.name}; valid: {', '.join(self.categories)}")

    def root_dir(self) -> Path:
        """The root folder, which must exist; the error says how to set it and where to download."""
        hint = f" {self.download_hint}" if self.download_hint else ""
        if not self.root:
            where = f" (then {self.name} is read from $HARNESS_DATA/{self.data_folder})" if self.data_folder else ""
            raise DataError(f"no root folder given for {self.name}: pass --root PATH or set HARNESS_DATA{where}.{hint}")
        root = Path(self.root)
        try:
            exists, is_dir = root.exists(), root.is_dir()
        except OSError as error:  # e.g. no permission to look into a parent folder
            raise DataError(f"{root}: cannot look at the data set root folder ({error.strerror or error})") from None
        if exists and not is_dir:
            raise DataError(f"{root}: not a folder; --root must be the {self.name} data set folder.{hint}")
        if not is_dir:
            raise DataError(f"{root}: data set root folder not found for {self.name}.{hint}")
        return root

    def check_root(self) -> None:
        """Check, before any job runs, that the data set is where the root says: the root is a folder,
        and, where the layout is the same for every category, that the layout is there. Cheap: it
        reads no image. Problems of one category are left to that category's job."""
        if self.needs_root or self.root:
            self.root_dir()

    def layout_problem(self, category: str) -> str:
        """What the category's folders or files must be, relative to the root, when they are not there ('' when
        they are). Cheap (folders and names only, no image read); the default expects nothing beyond `check_root`."""
        return ""

    def check_layout(self, categories: Sequence[str]) -> None:
        """Before the weights, any job and any write: the root (`check_root`), then each category's layout
        (`layout_problem`). One DataError for the whole sweep, naming what was expected where."""
        self.check_root()
        problems = {category: self.layout_problem(category) for category in categories}
        missing = [category for category, problem in problems.items() if problem]
        if not missing:
            return
        shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
        how = "; select the categories that are there with --categories" if len(missing) < len(problems) else ""
        count = f"all {len(problems)}" if len(missing) == len(problems) else f"{len(missing)} of {len(problems)}"
        raise DataError(
            f"{self.root}: no {self.name} layout for {count} categories ({shown}): expected "
            f"{problems[missing[0]]} in this folder{how}"
        )


REQUIRED_HOOKS = ("load", "fingerprint", "categories")


def check_adapter_class(name: str, cls: type) -> None:
    """The contract an adapter class must meet to be registered; HarnessError with one line naming the problem."""
    where = f"data set '{name}' ({cls.__module__}.{cls.__qualname__})"
    if not (isinstance(cls, type) and issubclass(cls, Adapter)):
        raise HarnessError(f"{where} is not a subclass of harness.Adapter")
    missing = [hook for hook in REQUIRED_HOOKS if getattr(cls, hook) is getattr(Adapter, hook)]
    if missing:
        raise HarnessError(f"{where} does not implement {', '.join(missing)}")
    if not isinstance(cls.option_defaults, dict):
        raise HarnessError(f"{where}: option_defaults must be a dict of option name -> default")


def empty_training_split(where: str | Path, expected: str) -> DataError:
    """The one message for a category without training images: where the adapter looked and what it expected."""
    return DataError(f"{where}: no training images (empty training split; expected {expected})")


def check_image_size(image_size: int) -> int:
    if isinstance(image_size, bool) or not isinstance(image_size, (int, np.integer)) or image_size < 1:
        raise HarnessError(f"image_size must be a positive integer, got {image_size!r}")
    return int(image_size)
