"""Conformance kit for methods and data set adapters: what the engine relies on, checked on tiny data.

    from harness.testing import check_method, check_dataset
    check_method(MyMethod, image_size=32, epochs=1)      # settings keep it small
    check_dataset(MyAdapter, "path/to/a/tiny/copy")

Each raises ConformanceError (an AssertionError, so test runners show it as a failure) with one line naming
the check that failed, and returns the names of the checks that passed.
"""

from __future__ import annotations

import dataclasses
import importlib
import multiprocessing
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from harness.datasets.base import Adapter, CategoryData, check_adapter_class
from harness.errors import HarnessError
from harness.methods.base import EpochLog, Method, check_method_class


class ConformanceError(AssertionError):
    """A class breaks the contract the engine relies on; the message names the check."""


def _fail(cls: type, check: str, why: str) -> ConformanceError:
    return ConformanceError(f"{cls.__module__}.{cls.__qualname__}: {check}: {why}")


def tiny_images(size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(training images, test images, test labels, test masks): smooth normal images and, among the test
    images, four with a bright square (the anomaly, marked in the masks)."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0, 1, size, dtype=np.float32)
    base = (np.add.outer(ramp, ramp)[..., None] * np.array([90, 120, 150], dtype=np.float32)).astype(np.float32)

    def normal(n: int) -> np.ndarray:
        noise = rng.normal(0, 6, (n, size, size, 3)).astype(np.float32)
        return np.clip(base + 40 + noise, 0, 255).astype(np.uint8)

    train = normal(8)
    test = normal(8)
    labels = np.array([0] * 4 + [1] * 4, dtype=np.int64)
    masks = np.zeros((8, size, size), dtype=bool)
    side = max(2, size // 4)
    for i in range(4, 8):
        y, x = rng.integers(0, size - side, 2)
        test[i, y : y + side, x : x + side] = 250
        masks[i, y : y + side, x : x + side] = True
    return train, test, labels, masks


def _class_path(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def _import_class(path: str) -> type:
    module, _, name = path.partition(":")
    found: Any = importlib.import_module(module)
    for part in name.split("."):
        found = getattr(found, part)
    return found


def _fit_predict_in_child(
    path: str, settings: dict, train: np.ndarray, test: np.ndarray, threads: int | None
) -> np.ndarray:
    """What a spawned worker does: import the class by name, build, fit, predict; the scores. With the
    parent's torch thread count: another count sums in another order, and training amplifies the last bits."""
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    cls: Any = _import_class(path)
    method = cls(cls.Settings(**settings))
    method.fit(train)
    return np.asarray(method.predict(test)[0])


def _load_in_child(path: str, root: str | None, options: dict, category: str) -> str:
    cls = _import_class(path)
    return str(cls(root, **options).load(category, 32).fingerprint)


def _in_spawned_process(function: Any, *args: Any) -> Any:
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(function, args)


def _predictions(cls: type, method: Method, test: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    result = method.predict(test)
    if not (isinstance(result, tuple) and len(result) == 2):
        raise _fail(cls, "predict", f"must return (scores, maps), got {type(result).__name__}")
    scores, maps = (np.asarray(part) for part in result)
    n = len(test)
    if scores.shape != (n,) or scores.dtype != np.float32:
        raise _fail(cls, "predict", f"scores must be ({n},) float32, got {scores.shape} {scores.dtype}")
    if maps.shape != (n, size, size) or maps.dtype != np.float32:
        raise _fail(cls, "predict", f"maps must be ({n}, {size}, {size}) float32, got {maps.shape} {maps.dtype}")
    if not (np.isfinite(scores).all() and np.isfinite(maps).all()):
        raise _fail(cls, "predict", "scores and maps must be finite")
    return scores, maps


def check_method(cls: type[Method], *, spawn: bool = True, **settings: Any) -> list[str]:
    """Check a Method class on tiny generated images with `settings` (keep them small: image_size=32,
    epochs=1). `spawn=False` leaves out the check in a spawned process (a class defined in __main__)."""
    passed = []
    name = cls.__dict__.get("name") or cls.__name__
    try:
        check_method_class(str(name), cls)
    except HarnessError as error:
        raise ConformanceError(str(error)) from None
    passed.append("contract")

    try:
        resolved = cls.Settings(**settings)
    except TypeError as error:
        raise _fail(cls, "settings", str(error)) from None
    values = dataclasses.asdict(resolved)
    size = int(values["image_size"])
    train, test, _, _ = tiny_images(size)

    method = cls(resolved)
    logs: list[EpochLog] = []
    history = method.fit(train, callbacks=[logs.append])
    if not isinstance(history, list) or not all(isinstance(entry, EpochLog) for entry in history):
        raise _fail(cls, "fit", "must return a list of EpochLog")
    if [entry.epoch for entry in logs] != [entry.epoch for entry in history]:
        raise _fail(cls, "fit", "must call every callback once per epoch with that epoch's EpochLog")
    scores, maps = _predictions(cls, method, test, size)
    passed.append("fit and predict: shapes and dtypes")

    again = cls(cls.Settings(**values))
    again.fit(train)
    scores2, maps2 = _predictions(cls, again, test, size)
    if not (np.array_equal(scores, scores2) and np.array_equal(maps, maps2)):
        raise _fail(cls, "same seed, same bits", "two models fitted with the same settings predict differently")
    passed.append("same seed, same bits")

    restored = cls(cls.Settings(**values))
    restored.load_state_dict(method.state_dict())
    if not np.array_equal(_predictions(cls, restored, test, size)[0], scores):
        raise _fail(cls, "state_dict round trip", "a model loaded from state_dict() predicts differently")
    passed.append("state_dict round trip")

    if cls.checkpoints:
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "model.ckpt"
            method.save_checkpoint(path)
            loaded = cls(cls.Settings(**values))
            loaded.load_checkpoint(path)
            if not np.array_equal(_predictions(cls, loaded, test, size)[0], scores):
                raise _fail(cls, "checkpoint round trip", "a model loaded from its checkpoint predicts differently")
        passed.append("checkpoint round trip")

    try:
        cls(cls.Settings(**(values | {"image_size": -1}))).fit(train)
    except Exception:  # any clear refusal will do; what must not happen is a model built silently
        passed.append("bad settings refused")
    else:
        raise _fail(cls, "bad settings", "image_size=-1 was accepted")

    try:
        cls(cls.Settings(**values)).fit(train[:0])
    except Exception:
        passed.append("empty training set refused")
    else:
        raise _fail(cls, "bad data", "fitting on no images was accepted")

    if spawn:
        if cls.__module__ == "__main__":
            raise _fail(cls, "spawned worker", "a class defined in __main__ cannot be imported by other processes")
        torch = sys.modules.get("torch")  # a method without torch leaves the child's threads alone
        threads = torch.get_num_threads() if torch is not None else None
        child = _in_spawned_process(_fit_predict_in_child, _class_path(cls), values, train, test, threads)
        if not np.allclose(child, scores, rtol=1e-5, atol=1e-6):
            raise _fail(cls, "spawned worker", "a spawned process predicts differently from this one")
        passed.append("spawned worker")
    return passed


def _check_split(cls: type, where: str, data: CategoryData, size: int) -> None:
    for split_name, split in (("train", data.train), ("test", data.test)):
        images = split.images
        if images.dtype != np.uint8 or images.shape[1:] != (size, size, 3):
            raise _fail(cls, where, f"{split_name} images must be (N, {size}, {size}, 3) uint8, got {images.shape}")
        if not len(images):
            raise _fail(cls, where, f"the {split_name} split is empty")
    if (data.train.labels != 0).any():
        raise _fail(cls, where, "training images must all be normal (label 0)")
    if set(np.unique(data.test.labels)) != {0, 1}:
        raise _fail(cls, where, "the test split needs normal and anomalous images")
    if data.test.masks is not None and (data.test.masks[data.test.labels == 0]).any():
        raise _fail(cls, where, "a normal test image has anomalous pixels in its mask")


def check_dataset(
    cls: type[Adapter], root: str | Path | None, *, category: str | None = None, spawn: bool = True, **options: Any
) -> list[str]:
    """Check an Adapter class on a (tiny) copy of its format at `root`, with its `options`, loading `category`
    (default: its first)."""
    passed = []
    name = cls.__dict__.get("name") or cls.__name__
    try:
        check_adapter_class(str(name), cls)
    except HarnessError as error:
        raise ConformanceError(str(error)) from None
    passed.append("contract")

    adapter: Adapter = cls(str(root) if root is not None else None, **options)
    adapter.check_root()
    categories = adapter.categories
    if not categories or not all(isinstance(c, str) and c for c in categories):
        raise _fail(cls, "categories", f"must be a non-empty tuple of names, got {categories!r}")
    passed.append("root and categories")

    category = category or categories[0]
    data = adapter.load(category, 32)
    if not isinstance(data, CategoryData) or data.category != category:
        raise _fail(cls, "load", f"must return the CategoryData of {category!r}")
    _check_split(cls, "load", data, 32)
    fingerprint = adapter.fingerprint(category)
    if not fingerprint or fingerprint != data.fingerprint:
        raise _fail(cls, "fingerprint", "fingerprint(category) must be non-empty and equal the loaded data's")
    twice = cls(adapter.root, **options).load(category, 32)
    if not (
        np.array_equal(twice.train.images, data.train.images) and np.array_equal(twice.test.images, data.test.images)
    ):
        raise _fail(cls, "load", "loading the same category twice gives different images")
    passed.append("load: splits, labels, masks, fingerprint, same bits")

    try:
        adapter.load("no-such-category", 32)
    except HarnessError as error:
        if "\n" in str(error):
            raise _fail(cls, "unknown category", "the error must be one line") from None
    else:
        raise _fail(cls, "unknown category", "loading a category that does not exist was accepted")
    passed.append("unknown category refused")

    if cls.needs_root:
        with tempfile.TemporaryDirectory() as folder:
            try:
                cls(str(Path(folder) / "missing"), **options).check_root()
            except HarnessError:
                passed.append("missing root refused")
            else:
                raise _fail(cls, "missing root", "check_root accepted a root that does not exist")

    if spawn:
        if cls.__module__ == "__main__":
            raise _fail(cls, "spawned worker", "a class defined in __main__ cannot be imported by other processes")
        seen = _in_spawned_process(_load_in_child, _class_path(cls), adapter.root, options, category)
        if seen != data.fingerprint:
            raise _fail(cls, "spawned worker", "a spawned process loads other data")
        passed.append("spawned worker")
    return passed


__all__ = ["ConformanceError", "check_dataset", "check_method", "tiny_images"]
