"""Simplex-noise pseudo-anomalies of RD++ (Tien et al., CVPR 2023), as its official data loader makes them.

Official: `MVTecDataset_train.__getitem__` in tientrandinh/Revisiting-Reverse-Distillation,
dataset/dataset.py, with the OpenSimplex code in dataset/noise.py (a copy of the `opensimplex`
package, which reproduces it exactly: same permutation from the seed, same gradients). For each
training image (256 x 256, values in [0, 1] before normalisation):

- a rectangle of h x w pixels, h and w drawn uniformly from 10..31 (`randint(10, 256 // 8)`), at a
  top-left corner drawn from 1..255-h and 1..255-w (`randint(1, 256 - h)`);
- inside it, 0.2 x fractal OpenSimplex noise of shape (3, h, w): six octaves, persistence 0.6, the
  first at frequency 1/32 per pixel (then 1/16, 1/8, ...), evaluated at the integer coordinates
  (channel, row, column) / frequency, starting from 0 in every axis;
- added to the image (no clipping), which is then normalised with the ImageNet statistics.

The noise object is seeded once per data set (a random 64-bit seed), and every image evaluates it
from coordinate 0, so the noise of an h x w patch is always the top-left h x w crop of one fixed
field: it is computed once here, (3, 31, 31) at 256 px, and cropped. Other image sizes scale the
side range and the frequency with the image (the official code always works at 256 px).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

OCTAVES = 6
PERSISTENCE = 0.6
AMPLITUDE = 0.2
REFERENCE_SIZE = 256  # the official code's image size; the constants below are at this size
SIDE_LOW, SIDE_HIGH = 10, REFERENCE_SIZE // 8  # numpy randint(10, 32): sides 10..31
FREQUENCY = 32.0  # pixels per noise unit of the first octave


def fractal_noise(
    seed: int,
    shape: tuple[int, int, int],
    frequency: float = FREQUENCY,
    octaves: int = OCTAVES,
    persistence: float = PERSISTENCE,
) -> np.ndarray:
    """OpenSimplex fractal noise of `shape` (channels, rows, columns), float64, as the official
    `rand_3d_octaves(shape, octaves, persistence, frequency)`."""
    import opensimplex

    generator = opensimplex.OpenSimplex(seed)
    z, y, x = (np.arange(0, n, dtype=np.float64) for n in shape)
    noise = np.zeros(shape)
    amplitude = 1.0
    for _ in range(octaves):
        noise += amplitude * generator.noise3array(x / frequency, y / frequency, z / frequency)
        frequency /= 2
        amplitude *= persistence
    return noise


class PseudoAnomalies:
    """Draws the noise rectangles of one training run and adds them to batches of images in [0, 1].

    `rng` drives everything (the noise seed, then per image h, w, top, left in the official order),
    so a training run's pseudo-anomalies follow from its seed.
    """

    def __init__(self, height: int, width: int, rng: np.random.Generator) -> None:
        self.height, self.width, self.rng = height, width, rng
        self.rows = self._side_range(height)
        self.columns = self._side_range(width)
        scale = height / REFERENCE_SIZE
        seed = int(rng.integers(-10_000_000_000, 10_000_000_000))  # the official newSeed() range
        field = fractal_noise(seed, (3, self.rows[1] - 1, self.columns[1] - 1), FREQUENCY * scale)
        self.field = torch.from_numpy(AMPLITUDE * field).float()
        self.seed = seed

    @staticmethod
    def _side_range(size: int) -> tuple[int, int]:
        """[low, high) of a rectangle side for an image side of `size` (10..31 at 256 px)."""
        scale = size / REFERENCE_SIZE
        low = max(1, int(SIDE_LOW * scale + 0.5))
        high = max(low + 1, min(size - 1, SIDE_HIGH * size // REFERENCE_SIZE))
        return low, high

    def draw(self, n: int) -> list[tuple[int, int, int, int]]:
        """(top, left, h, w) of n rectangles, drawn as the official loader does, image by image."""
        boxes = []
        for _ in range(n):
            h = int(self.rng.integers(*self.rows))
            w = int(self.rng.integers(*self.columns))
            top = int(self.rng.integers(1, self.height - h))
            left = int(self.rng.integers(1, self.width - w))
            boxes.append((top, left, h, w))
        return boxes

    def apply(self, images: Tensor, boxes: list[tuple[int, int, int, int]]) -> Tensor:
        """A copy of `images` (N, 3, H, W), values in [0, 1], with the noise added in each box."""
        if images.shape[0] != len(boxes) or tuple(images.shape[2:]) != (self.height, self.width):
            raise ValueError(f"expected {len(boxes)} images of {self.height}x{self.width}, got {tuple(images.shape)}")
        noised = images.clone()
        field = self.field.to(device=images.device, dtype=images.dtype)
        for i, (top, left, h, w) in enumerate(boxes):
            noised[i, :, top : top + h, left : left + w] += field[:, :h, :w]
        return noised
