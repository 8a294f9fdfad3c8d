"""Decoding and resizing of images and masks, done once per job in parallel threads."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Sequence, TypeVar

import numpy as np
from PIL import Image

from harness.errors import DataError

T = TypeVar("T")


def _open(path: Path) -> Image.Image:
    try:
        image = Image.open(path)
        image.load()
        return image
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except OSError as error:
        raise DataError(f"{path}: cannot read image ({error})") from None


def load_rgb(path: str | Path, size: int) -> np.ndarray:
    """An image as (size, size, 3) uint8 RGB, resized bilinearly as torchvision's Resize does for PIL."""
    image = _open(Path(path))
    if image.format == "JPEG":
        image.draft("RGB", (size, size))  # decode at reduced scale; the final resize still sets the size
    image = image.convert("RGB")
    if image.size != (size, size):
        image = image.resize((size, size), Image.BILINEAR)
    return np.asarray(image, dtype=np.uint8)


def load_mask(path: str | Path, size: int, expected_size: tuple[int, int] | None = None) -> np.ndarray:
    """A mask as (size, size) bool: any nonzero pixel is anomalous; resized bilinearly, thresholded at 0.5.

    `expected_size` is the (width, height) of the paired image; a mask of another size is an error.
    """
    image = _open(Path(path))
    if expected_size is not None and image.size != tuple(expected_size):
        raise DataError(f"{path}: mask is {image.size[0]}x{image.size[1]}, its image is {expected_size[0]}x{expected_size[1]}")
    binary = (np.asarray(image.convert("L") if image.mode not in ("L", "1", "P", "I", "I;16") else image) != 0)
    if binary.ndim == 3:
        binary = binary.any(axis=-1)
    mask = Image.fromarray(binary.astype(np.float32))
    if mask.size != (size, size):
        mask = mask.resize((size, size), Image.BILINEAR)
    return np.asarray(mask) > 0.5


def image_size_of(path: str | Path) -> tuple[int, int]:
    """(width, height) of an image file without decoding it."""
    with Image.open(path) as image:
        return image.size


def parallel_map(function: Callable[[str], T], items: Sequence, workers: int | None = None) -> list[T]:
    """Apply `function` to every item in threads (PIL releases the GIL while decoding)."""
    workers = workers or min(8, os.cpu_count() or 1)
    if len(items) < 2 or workers == 1:
        return [function(item) for item in items]
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(function, items))
