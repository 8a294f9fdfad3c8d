"""Tiny images for method tests: normal textures that a random-weight teacher can learn in a few epochs."""

from __future__ import annotations

import numpy as np


def stripes(n: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """(n, size, size, 3) uint8: sinusoidal stripes of random orientation, frequency and phase, plus mild noise."""
    yy, xx = np.mgrid[0:size, 0:size]
    images = []
    for _ in range(n):
        f, theta, phase = rng.uniform(0.3, 0.5), rng.uniform(0, np.pi), rng.uniform(0, 2 * np.pi)
        v = 0.5 + 0.25 * np.sin(f * (np.cos(theta) * xx + np.sin(theta) * yy) + phase)
        image = np.stack([v * 0.9, v * 0.7, v * 0.5], -1) + rng.normal(0, 0.03, (size, size, 3))
        images.append(np.clip(image * 255, 0, 255).astype(np.uint8))
    return np.stack(images)


def stripes_with_squares(
    n_train: int, n_test: int, n_anomalous: int, size: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Normal training stripes, and test stripes whose first `n_anomalous` images get a bright 16 px square
    at a random place: anomalies a briefly trained model separates."""
    train, test = stripes(n_train, size, rng), stripes(n_test, size, rng)
    for i in range(n_anomalous):
        y, x = rng.integers(8, size - 24, 2)
        test[i, y : y + 16, x : x + 16] = 255
    return train, test
