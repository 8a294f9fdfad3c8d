"""Decoding and resizing of images and masks, done once per job in parallel threads.

Every image is decoded at full resolution and resized to (size, size) with PIL's bilinear filter (as
torchvision's Resize does for PIL images), whatever its aspect ratio, so pixels equal the official
RD4AD pipeline's; its mask is resized with the same geometry as a float image and thresholded at
0.5, as RD4AD does, so image and mask stay aligned.

JPEG reduced-scale decoding (PIL's `draft`, DCT scaling) is deliberately not used: it would decode a
1500x1000 VisA image to 256 px about twice as fast, but its pixels differ from the full decode
(up to 4 grey levels, no image identical), and decoding is paid once per category with the array cache.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import numpy as np
from PIL import Image

from harness.errors import DataError

T = TypeVar("T")

# modes whose pixel values are already one number per pixel (class ids, palette indices, 0/255)
_SINGLE_VALUE_MODES = ("1", "L", "P", "I", "F", "I;16", "I;16L", "I;16B", "I;16N")


def _open(path: Path) -> Image.Image:
    try:
        image = Image.open(path)
        image.load()
        return image
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        raise DataError(f"{path}: cannot read image ({error})") from None


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode == "RGB":
        return image  # convert() would copy it
    if image.mode in ("I", "I;16", "I;16L", "I;16B", "I;16N"):
        # 16-bit grayscale: convert("RGB") would clip everything above 255 to white
        wide = np.asarray(image).astype(np.float64)
        image = Image.fromarray(np.clip(np.rint(wide / 257.0), 0, 255).astype(np.uint8))
    return image.convert("RGB")


def load_rgb(path: str | Path, size: int) -> np.ndarray:
    """An image as (size, size, 3) uint8 RGB (grayscale and RGBA converted), resized bilinearly from
    its full-resolution decode (the official pipeline: PIL open, convert("RGB"), Resize)."""
    return resize_rgb(_to_rgb(_open(Path(path))), size)


def resize_rgb(image: Image.Image | np.ndarray, size: int) -> np.ndarray:
    """(size, size, 3) uint8 from an RGB PIL image or an (H, W) / (H, W, 3) uint8 array."""
    if isinstance(image, np.ndarray):
        image = Image.fromarray(np.ascontiguousarray(image))
    if image.mode != "RGB":
        image = image.convert("RGB")
    if image.size != (size, size):
        image = image.resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(image, dtype=np.uint8)


def mask_pixels(image: Image.Image) -> np.ndarray:
    """(H, W) bool: any nonzero value is anomalous, read as one channel whatever the PNG mode.

    Palette images are read by index (VisA stores class ids that way), alpha is ignored (BMAD's
    colour-mapped RGBA masks are opaque everywhere), colour masks are anomalous where any channel is.
    """
    if image.mode in _SINGLE_VALUE_MODES:
        return np.asarray(image) != 0
    if image.mode in ("LA", "PA"):
        return np.asarray(image)[..., 0] != 0
    return np.asarray(np.asarray(image.convert("RGB")).any(axis=-1))


def resize_mask(binary: np.ndarray, size: int) -> np.ndarray:
    """(size, size) bool from an (H, W) bool mask: bilinear on 0/1 floats, thresholded at 0.5."""
    if binary.shape == (size, size):
        return binary.astype(bool, copy=True)
    mask = Image.fromarray(binary.astype(np.float32))
    return np.asarray(mask.resize((size, size), Image.Resampling.BILINEAR)) > 0.5


def load_mask(path: str | Path, size: int, expected_size: tuple[int, int] | None = None) -> np.ndarray:
    """A mask as (size, size) bool: any nonzero pixel is anomalous; resized bilinearly, thresholded at 0.5.

    `expected_size` is the (width, height) of the paired image; a mask of another size is an error.
    """
    image = _open(Path(path))
    if expected_size is not None and image.size != tuple(expected_size):
        raise DataError(
            f"{path}: mask is {image.size[0]}x{image.size[1]} but its image is "
            f"{expected_size[0]}x{expected_size[1]} (a mask must have the size of its image)"
        )
    return resize_mask(mask_pixels(image), size)


def image_size_of(path: str | Path) -> tuple[int, int]:
    """(width, height) of an image file without decoding it."""
    try:
        with Image.open(path) as image:
            return image.size
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (OSError, ValueError) as error:
        raise DataError(f"{path}: cannot read image ({error})") from None


def parallel_map(function: Callable[[T], object], items: Sequence[T], workers: int | None = None) -> list:
    """Apply `function` to every item in threads (PIL releases the GIL while decoding)."""
    workers = workers or min(8, os.cpu_count() or 1)
    if len(items) < 2 or workers == 1:
        return [function(item) for item in items]
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(function, items))
