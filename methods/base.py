"""The interface every method implements. Methods know tensors and arrays, nothing about files or the CLI."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

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
    # Settings added after results were recorded, with the value that reproduces those results: a job
    # leaves such a setting out of its configuration while it has that value, so job ids (and with them
    # the finished jobs of earlier sweeps) stay the same.
    optional_settings: ClassVar[dict[str, Any]] = {}

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

    def load_checkpoint(self, path: str | os.PathLike) -> None:
        """Load trained weights from a checkpoint in the method's official format, instead of training."""
        raise NotImplementedError

    def describe(self) -> dict:
        """Facts recorded with every result (weights provenance, comparability to published numbers)."""
        return {}


class ConcatenatedImages:
    """Several (N_i, H, W, 3) uint8 arrays seen as one (sum N_i, H, W, 3) array without copying them:
    the training images of several categories (the unified protocol), each possibly memory-mapped
    from the array cache. Supports what training needs: len, shape, dtype, ndim, integer-array and
    slice indexing (which return ordinary arrays)."""

    def __init__(self, parts: Sequence[np.ndarray]) -> None:
        parts = [part for part in parts if len(part)]
        if not parts:
            raise ValueError("no images to concatenate")
        shapes = {part.shape[1:] for part in parts}
        dtypes = {part.dtype for part in parts}
        if len(shapes) > 1 or len(dtypes) > 1:
            raise ValueError(f"images of different shapes or types cannot be trained on together: {shapes} {dtypes}")
        self.parts = list(parts)
        self.offsets = np.cumsum([0] + [len(part) for part in parts])
        self.shape = (int(self.offsets[-1]), *parts[0].shape[1:])
        self.dtype = parts[0].dtype
        self.ndim = len(self.shape)

    def __len__(self) -> int:
        return self.shape[0]

    @property
    def nbytes(self) -> int:
        return sum(part.nbytes for part in self.parts)

    def __getitem__(self, index) -> np.ndarray:
        if isinstance(index, slice):
            index = np.arange(*index.indices(len(self)))
        index = np.asarray(index)
        if index.ndim != 1 or not np.issubdtype(index.dtype, np.integer):
            raise TypeError("ConcatenatedImages takes a slice or a 1-D array of integer indices")
        index = np.where(index < 0, index + len(self), index)
        if len(index) and (index.min() < 0 or index.max() >= len(self)):
            raise IndexError(f"index out of range for {len(self)} images")
        which = np.searchsorted(self.offsets, index, side="right") - 1
        out = np.empty((len(index), *self.shape[1:]), dtype=self.dtype)
        for position, (part, local) in enumerate(zip(which, index - self.offsets[which], strict=False)):
            out[position] = self.parts[part][local]
        return out
