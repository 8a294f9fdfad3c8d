"""The interface every method implements. Methods know tensors and arrays, nothing about files or the CLI."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from harness.errors import HarnessError


@dataclass
class EpochLog:
    """What a method reports after each training epoch."""

    epoch: int  # 1-based
    epochs: int
    loss: float  # mean training loss of the epoch
    seconds: float


EpochCallback = Callable[[EpochLog], None]


class Method:
    """Base class of every method: construct with the method's settings dataclass, then fit and predict.

    Images are (N, H, W, 3) uint8 RGB arrays as adapters return them; each method does its own
    normalisation. `predict` returns image scores (N,) and anomaly maps (N, H, W) float32 at the
    input resolution.

    The class attributes below are the whole contract between a method and the engine: the engine
    calls no hook and passes no setting that is not declared here (docs/extending.md).
    """

    name: ClassVar[str] = ""
    # The name a run of this method gets in reports ("RD++"); empty: the name it is registered under.
    label: ClassVar[str] = ""
    # The settings dataclass. Every field needs a default; `image_size` (the side the data are decoded at) and
    # `seed` (set per job) are required fields. An optional `validate()` method raises HarnessError on bad values.
    Settings: ClassVar[type] = object
    # Settings that only shape training: a job that evaluates a given checkpoint trains nothing, so
    # they are left out of its configuration, its identity and its record.
    training_settings: ClassVar[frozenset[str]] = frozenset()
    # Settings that change how fast a job runs or what it prints, never its results (device, progress,
    # precision of a cache, batch size of inference...): kept out of job ids, so a sweep resumed on
    # another device finds its finished jobs, and out of the protocol differences reports point out.
    # The backends set `device` and `progress` only where a method declares them here.
    execution_settings: ClassVar[frozenset[str]] = frozenset()
    # Settings added after results were recorded, with the value that reproduces those results: a job
    # leaves such a setting out of its configuration while it has that value, so job ids (and with them
    # the finished jobs of earlier sweeps) stay the same.
    optional_settings: ClassVar[dict[str, Any]] = {}
    # True when the method implements save_checkpoint and load_checkpoint (`run --checkpoint`,
    # `run --save-checkpoints`); False: those flags are refused for it before anything runs.
    checkpoints: ClassVar[bool] = False
    # The profile a run uses when none is given, by the data set's default profile ("paper", "demo",
    # "novelty"): e.g. {"demo": "rdpp-demo"}. A data set default made for another method and not listed
    # here: the run uses the Settings defaults plus the flags.
    default_profiles: ClassVar[dict[str, str]] = {}

    def __init__(self, settings: Any) -> None:
        self.settings = settings

    def fit(self, images: np.ndarray, *, callbacks: Sequence[EpochCallback] = ()) -> list[EpochLog]:
        """Train on normal images; call every callback with an EpochLog after each epoch; return the logs."""
        raise NotImplementedError

    def predict(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Image scores (N,) and anomaly maps (N, H, W), float32, higher = more anomalous."""
        raise NotImplementedError

    def state_dict(self) -> dict:
        """Everything `load_state_dict` needs to predict as this model does."""
        raise NotImplementedError

    def load_state_dict(self, state: dict) -> None:
        raise NotImplementedError

    def save_checkpoint(self, path: str | os.PathLike) -> None:
        """Write the trained model to `path` (only with `checkpoints = True`)."""
        raise NotImplementedError

    def load_checkpoint(self, path: str | os.PathLike) -> None:
        """Load a model written by save_checkpoint (or the method's published format) instead of training."""
        raise NotImplementedError

    def describe(self) -> dict:
        """Facts recorded with every result (weights provenance, comparability to published numbers)."""
        return {}

    def phase_timings(self, images: np.ndarray, *, steps: int, warmup: int = 1) -> dict:
        """Optional, for `bench phases`: the best seconds per phase of a training step and of predict on
        `images` ({"train_s": {phase: s}, "infer_s": {phase: s}, ...}). Methods without it are not benched."""
        raise NotImplementedError


def overrides(cls: type, hook: str) -> bool:
    """True when `cls` implements `hook` itself rather than inheriting the base class's placeholder."""
    return getattr(cls, hook, None) is not getattr(Method, hook, None)


REQUIRED_HOOKS = ("fit", "predict", "state_dict", "load_state_dict")
REQUIRED_SETTINGS = ("image_size", "seed")


def check_method_class(name: str, cls: type) -> None:
    """The contract a method class must meet to be registered; HarnessError with one line naming the problem."""
    where = f"method '{name}' ({cls.__module__}.{cls.__qualname__})"
    if not (isinstance(cls, type) and issubclass(cls, Method)):
        raise HarnessError(f"{where} is not a subclass of harness.Method")
    settings = cls.Settings
    if not (isinstance(settings, type) and dataclasses.is_dataclass(settings)):
        raise HarnessError(f"{where}: Settings must be a dataclass, got {settings!r}")
    fields = {f.name: f for f in dataclasses.fields(settings)}
    no_default = [
        n for n, f in fields.items() if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    if no_default:
        raise HarnessError(f"{where}: every setting needs a default; {', '.join(no_default)} has none")
    missing = [n for n in REQUIRED_SETTINGS if n not in fields]
    if missing:
        raise HarnessError(f"{where}: Settings has no {', '.join(missing)} field (every method needs them)")
    hooks = [hook for hook in REQUIRED_HOOKS if not overrides(cls, hook)]
    if cls.checkpoints:
        hooks += [hook for hook in ("save_checkpoint", "load_checkpoint") if not overrides(cls, hook)]
    if hooks:
        raise HarnessError(f"{where} does not implement {', '.join(hooks)}")
    for attribute in ("training_settings", "execution_settings", "optional_settings"):
        unknown = sorted(set(getattr(cls, attribute)) - set(fields))
        if unknown:
            raise HarnessError(f"{where}: {attribute} names {', '.join(unknown)}, which Settings does not have")


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
