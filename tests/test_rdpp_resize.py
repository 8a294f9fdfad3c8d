"""How far the harness's image resize is from the official RD++ loader's (docs/rdpp.md states the size).

The official loader resizes float images in [0, 1] with OpenCV's INTER_LINEAR: half-pixel centres
(source = (destination + 0.5) * scale - 0.5), edges replicated, no antialiasing, no rounding. The
harness decodes with PIL's bilinear filter (antialiased when shrinking) to uint8, as RD's official
loader does. `linear_resize` below is that OpenCV path, checked against a per-pixel evaluation of its
definition (and against OpenCV itself when it is installed).
"""

import numpy as np
import pytest

from harness.datasets.imageio import resize_rgb


def linear_resize(image: np.ndarray, size: int) -> np.ndarray:
    """(size, size, C) float64 from (H, W, C) float: separable linear interpolation, half-pixel centres."""

    def axis(n_in: int, n_out: int):
        source = np.maximum((np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5, 0.0)
        low = np.floor(source).astype(int)
        weight = source - low
        return np.minimum(low, n_in - 1), np.minimum(low + 1, n_in - 1), weight

    y0, y1, wy = axis(image.shape[0], size)
    x0, x1, wx = axis(image.shape[1], size)
    image = image.astype(np.float64)
    rows = image[y0] * (1 - wy)[:, None, None] + image[y1] * wy[:, None, None]
    return rows[:, x0] * (1 - wx)[None, :, None] + rows[:, x1] * wx[None, :, None]


def by_definition(image: np.ndarray, size: int) -> np.ndarray:
    """Each output pixel on its own: its centre mapped back, the four neighbours weighted by distance."""
    h, w, c = image.shape
    out = np.zeros((size, size, c))
    for i in range(size):
        for j in range(size):
            y = min(max((i + 0.5) * h / size - 0.5, 0.0), h - 1)
            x = min(max((j + 0.5) * w / size - 0.5, 0.0), w - 1)
            top, left = int(y), int(x)
            bottom, right = min(top + 1, h - 1), min(left + 1, w - 1)
            dy, dx = y - top, x - left
            out[i, j] = (
                image[top, left] * (1 - dy) * (1 - dx)
                + image[top, right] * (1 - dy) * dx
                + image[bottom, left] * dy * (1 - dx)
                + image[bottom, right] * dy * dx
            )
    return out


@pytest.mark.parametrize(("h", "w", "size"), [(7, 5, 3), (5, 9, 4), (3, 4, 8), (10, 10, 10)])
def test_linear_resize_is_its_definition(h, w, size):
    image = np.random.default_rng([h, w, size]).random((h, w, 3))
    assert np.allclose(linear_resize(image, size), by_definition(image, size), atol=1e-12)


def test_half_pixel_centres_by_hand():
    # 4 -> 2: each output pixel sits between source pixels 0,1 and 2,3: their means; no antialiasing beyond that
    row = np.array([0.0, 1.0, 0.0, 1.0])[None, :, None].repeat(4, axis=0)
    assert np.allclose(linear_resize(row, 2)[0, :, 0], [0.5, 0.5])
    # 2 -> 4: source centres at output 0.5 and 2.5; the outer quarter replicates the edge
    two = np.array([0.0, 1.0])[None, :, None].repeat(2, axis=0)
    assert np.allclose(linear_resize(two, 4)[0, :, 0], [0.0, 0.25, 0.75, 1.0])


def test_matches_opencv_when_installed():
    cv2 = pytest.importorskip("cv2")
    image = np.random.default_rng(3).random((97, 131, 3)).astype(np.float32)
    for size in (32, 64, 256):
        official = cv2.resize(image, (size, size), interpolation=cv2.INTER_LINEAR)
        assert np.abs(linear_resize(image, size) - official).max() < 1e-6


def content(kind: str, h: int, w: int) -> np.ndarray:
    """uint8 RGB images from smooth to pixel noise (the measurement docs/rdpp.md states): random grey levels
    in square blocks of 8, 3 or 1 px (sharp edges), or a smooth sine."""
    rng = np.random.default_rng(0)
    if kind == "smooth":
        x = np.mgrid[0:h, 0:w][1] / w
        return np.rint(255 * np.stack([0.5 + 0.4 * np.sin(3 * x + c) for c in range(3)], -1)).astype(np.uint8)
    cell = {"8 px texture": 8, "3 px texture": 3, "pixel noise": 1}[kind]
    coarse = rng.integers(0, 256, (-(-h // cell), -(-w // cell), 3), dtype=np.uint8)
    return coarse.repeat(cell, axis=0).repeat(cell, axis=1)[:h, :w]


@pytest.mark.parametrize(
    ("kind", "h", "w", "low", "high"),
    [
        ("smooth", 700, 700, 0.0, 0.001),
        ("8 px texture", 1024, 1024, 0.04, 0.10),
        ("3 px texture", 1000, 1024, 0.09, 0.17),
        ("pixel noise", 900, 800, 0.10, 0.20),
    ],
)
def test_measured_difference_to_the_official_resize(kind, h, w, low, high):
    """Mean |Δ| in [0, 1] units at 256 px between the harness's decode and the official float resize."""
    image = content(kind, h, w)
    ours = resize_rgb(image, 256) / 255.0
    official = linear_resize(image.astype(np.float32) / 255.0, 256)
    assert low <= np.abs(ours - official).mean() <= high
