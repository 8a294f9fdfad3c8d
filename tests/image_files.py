"""Writing fixture images for the adapter tests."""

from pathlib import Path

import numpy as np
from PIL import Image


def save(path: Path, array: np.ndarray, mode: str | None = None) -> None:
    """Write `array` as an image file at `path` (folders created), converted to PIL `mode` when given."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(array)
    (image.convert(mode) if mode else image).save(path)
