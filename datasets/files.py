"""Adapters whose data are image files: a listing of (image, label, defect, mask) items per split,
checked before anything is decoded, then decoded in parallel threads (or read from the array cache).

A subclass implements `listing(category)`; fingerprint and load follow from it, so the fingerprint
always describes exactly the files that load decodes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
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
from harness.datasets.imageio import image_size_of, load_mask, load_rgb, parallel_map
from harness.errors import DataError
from harness.files import content_hashes

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


@dataclass(frozen=True)
class Item:
    """One image file; `mask` is None for normal images (an all-zero mask is used)."""

    path: Path
    label: int = 0
    defect: str = "good"
    mask: Path | None = None


@dataclass
class Listing:
    """The files of one category. `*_masks` says whether that split has pixel annotation at all."""

    train: list[Item]
    test: list[Item]
    valid: list[Item] | None = None
    test_masks: bool = True
    valid_masks: bool = True
    provenance: dict = field(default_factory=dict)

    def splits(self) -> list[tuple[str, list[Item], bool]]:
        named = [("train", self.train, False), ("test", self.test, self.test_masks)]
        if self.valid:
            named.append(("valid", self.valid, self.valid_masks))
        return named


def folder_entries(folder: Path) -> list[Path]:
    """The entries of `folder`; a folder that cannot be listed (no permission) is a DataError naming it."""
    try:
        return list(folder.iterdir())
    except OSError as error:
        raise DataError(f"{folder}: cannot list the folder ({error.strerror or error})") from None


def images_in(folder: Path) -> list[Path]:
    """Image files directly in `folder`, sorted by name. Hidden entries and entries of other kinds (notes,
    Thumbs.db, folders) are skipped; an entry named like an image that is not a readable file (a folder, a
    broken or looping link) is a DataError naming it: it would otherwise drop out of the data unseen."""
    found = []
    for path in folder_entries(folder):
        if path.suffix.lower() not in IMAGE_SUFFIXES or path.name.startswith("."):
            continue
        if path.is_file():
            found.append(path)
        elif path.is_dir():
            raise DataError(f"{path}: named like an image but a folder (move it out of {folder})")
        else:
            kind = "a broken or looping link" if path.is_symlink() else "not a regular file"
            raise DataError(f"{path}: named like an image but {kind} (remove it, or point it at an image)")
    return sorted(found)


def relative(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def pair_masks(images: Sequence[Path], mask_dir: Path, suffixes: Sequence[str], defect: str) -> list[Item]:
    """Anomalous items with masks found by name (image stem + one of `suffixes`), never by position.

    A missing mask and a mask without an image are both errors naming the file.
    """
    masks = {p.stem: p for p in images_in(mask_dir)} if mask_dir.is_dir() else {}
    items = []
    for image in images:
        mask = next((masks.pop(image.stem + suffix) for suffix in suffixes if image.stem + suffix in masks), None)
        if mask is None:
            expected = " or ".join(f"{image.stem}{suffix}.png" for suffix in suffixes)
            raise DataError(f"{image}: no mask for this anomalous image (expected {expected} in {mask_dir})")
        items.append(Item(image, 1, defect, mask))
    if masks:
        extra = sorted(masks.values())[0]
        raise DataError(f"{extra}: mask without an image (no image of the same name in its test folder)")
    return items


def mvtec_test_items(folder: Path, suffixes: Sequence[str], mask_root: Path | None) -> list[Item]:
    """test/good and test/<defect> of an MVTec-like category; masks from mask_root/<defect>.

    With mask_root None the data set has no pixel annotation and masks are not looked for.
    """
    test_dir = folder / "test"
    if not test_dir.is_dir():
        raise DataError(f"{test_dir}: folder not found (expected test/good and test/<defect> folders)")
    defect_dirs = sorted(p for p in folder_entries(test_dir) if p.is_dir() and not p.name.startswith("."))
    items: list[Item] = []
    for defect_dir in defect_dirs:
        images = images_in(defect_dir)
        if defect_dir.name == "good":
            items += [Item(image) for image in images]
        elif mask_root is None:
            items += [Item(image, 1, defect_dir.name) for image in images]
        else:
            items += pair_masks(images, mask_root / defect_dir.name, suffixes, defect_dir.name)
    if mask_root is not None and mask_root.is_dir():
        defects = {d.name for d in defect_dirs}
        for mask_dir in sorted(p for p in folder_entries(mask_root) if p.is_dir() and not p.name.startswith(".")):
            if mask_dir.name != "good" and mask_dir.name not in defects and images_in(mask_dir):
                raise DataError(f"{mask_dir}: masks for a defect type with no test/{mask_dir.name} folder")
    return items


def decode(items: Sequence[Item], root: Path, size: int, with_masks: bool) -> Split:
    """Decode and resize every item in threads into preallocated uint8 / bool arrays."""
    images = np.empty((len(items), size, size, 3), dtype=np.uint8)
    masks = np.zeros((len(items), size, size), dtype=bool) if with_masks else None

    def one(index: int) -> None:
        item = items[index]
        images[index] = load_rgb(item.path, size)
        if masks is not None and item.mask is not None:
            masks[index] = load_mask(item.mask, size, expected_size=image_size_of(item.path))

    parallel_map(one, range(len(items)))
    return Split(
        images=images,
        labels=np.array([item.label for item in items], dtype=np.int64),
        masks=masks,
        defect_types=[item.defect for item in items],
        paths=[relative(item.path, root) for item in items],
    )


class FileAdapter(Adapter):
    """Base of the adapters that read image files; subclasses implement `listing`."""

    option_defaults = {"cache": None}

    def listing(self, category: str) -> Listing:
        raise NotImplementedError

    def listing_root(self) -> Path:
        """The folder paths are relative to (the data set root)."""
        return self.root_dir()

    def checked_listing(self, category: str) -> Listing:
        where = f"{self.name}/{category}"
        try:
            listing = self.listing(category)
        except OSError as error:  # e.g. a file or folder the user may not read (stat refused)
            raise DataError(f"{error.filename or where}: cannot read ({error.strerror or error})") from None
        if not listing.train:
            raise empty_training_split(where, "normal training images")
        if not listing.test:
            raise DataError(f"{where}: empty test split (no test images found)")
        return listing

    def fingerprint_rows(self, listing: Listing) -> list[tuple[str, str, int, str, str]]:
        """(split, relative path, label, sha256 of the image, sha256 of its mask or '') per item."""
        root = self.listing_root()
        items = [(name, item) for name, split_items, _ in listing.splits() for item in split_items]
        hashes = content_hashes(p for _, item in items for p in (item.path, item.mask) if p is not None)
        return [
            (name, relative(item.path, root), item.label, hashes[item.path], hashes[item.mask] if item.mask else "")
            for name, item in items
        ]

    def fingerprint(self, category: str) -> str:
        return split_fingerprint(self.fingerprint_rows(self.checked_listing(category)))

    def load(self, category: str, image_size: int) -> CategoryData:
        size = check_image_size(image_size)
        listing = self.checked_listing(category)
        root = self.listing_root()
        fingerprint = split_fingerprint(self.fingerprint_rows(listing))
        sources = [
            p for _, items, _ in listing.splits() for item in items for p in (item.path, item.mask) if p is not None
        ]

        def build() -> CategoryData:
            splits = {name: decode(items, root, size, with_masks) for name, items, with_masks in listing.splits()}
            data = CategoryData(self.name, category, splits["train"], splits["test"], splits.get("valid"), fingerprint)
            data.provenance.update(listing.provenance)
            self.check_loaded(data)
            return data

        return cache.load_or_build(self.name, category, size, fingerprint, sources, build, self.options.get("cache"))

    def check_loaded(self, data: CategoryData) -> None:
        """Checks that need decoded pixels; the default checks nothing."""
