"""The interface every method implements. Methods know tensors and arrays, nothing about files or the CLI."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Sequence

import numpy as np


@dataclass
class EpochLog:
    """What a method reports after each training epoch."""

    epoch: int  # 1-based
    epochs: int
    loss: float  # mean training loss of the epoch
    seconds: float


EpochCallback = Callable[[EpochLog], None]


class Method:
    """Base class: construct with the method's settings dataclass, then fit and predict.

    Images are (N, H, W, 3) uint8 RGB arrays as adapters return them; each method does its own
    normalisation. `predict` returns image scores (N,) and anomaly maps (N, H, W) float32 at the
    input resolution.
    """

    name: ClassVar[str] = ""
    Settings: ClassVar[type] = object
    # Settings that only shape training: a job that evaluates a given checkpoint trains nothing, so
    # they are left out of its configuration, its identity and its record.
    training_settings: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, settings: Any) -> None:
        self.settings = settings

    def fit(self, images: np.ndarray, *, callbacks: Sequence[EpochCallback] = ()) -> list[EpochLog]:
        raise NotImplementedError

    def predict(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def state_dict(self) -> dict:
        raise NotImplementedError

    def load_state_dict(self, state: dict) -> None:
        raise NotImplementedError

    def describe(self) -> dict:
        """Facts recorded with every result (weights provenance, comparability to published numbers)."""
        return {}
