"""The conformance kit (harness.testing) over every built-in method and data set, taken from the registries, and
the kit's own refusals of classes that break the contract."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from test_data_bmad import make_bmad
from test_data_brats import make_brats
from test_data_mvtec import make_category as make_mvtec_category
from test_data_oneclass import make_cifar, make_idx
from visa_fixtures import make_visa

import harness
from harness import datasets, methods
from harness.registry import BUILTIN
from harness.testing import ConformanceError, check_dataset, check_method

from sweep_fixtures import make_dataset

pytestmark = pytest.mark.usefixtures("one_torch_thread", "isolated_data_env")

# The smallest model each built-in method can build, for settings it has (a method without one ignores it).
TINY = {
    "image_size": 32,
    "epochs": 1,
    "batch_size": 4,
    "backbone": "resnet18",
    "weights": "none",
    "device": "cpu",
    "progress": False,
}


def builtin(registry) -> list[str]:
    return [name for name in registry.names() if registry.origin(name).kind == BUILTIN]


@pytest.mark.parametrize("name", builtin(methods.REGISTRY))
def test_every_builtin_method_conforms(name):
    cls = methods.get(name)
    fields = {f.name for f in dataclasses.fields(cls.Settings)}
    passed = check_method(cls, **{k: v for k, v in TINY.items() if k in fields})
    assert "spawned worker" in passed and "same seed, same bits" in passed
    assert ("checkpoint round trip" in passed) == cls.checkpoints


# A tiny copy of each built-in format: (root, category to load, options). Without one the adapter is skipped.
def _examples(base: Path) -> dict:
    return {
        "synthetic": lambda: (None, "disc", {}),
        "folder": lambda: (make_dataset(base / "folder"), "amber", {}),
        "mvtec": lambda: (make_mvtec_category(base / "mvtec", "bottle").parent, "bottle", {}),
        "visa": lambda: (make_visa(base / "visa", {"candle": (3, 2, 2)}), "candle", {}),
        "brats": lambda: (make_brats(base / "brats"), None, {}),
        "brats_bmad": lambda: (make_bmad(base / "bmad"), None, {}),
        "cifar10": lambda: (make_cifar(base / "cifar"), "airplane", {}),
        "mnist": lambda: (make_idx(base / "mnist", compress=True), None, {}),
        "fashion_mnist": lambda: (make_idx(base / "fashion", compress=False), None, {}),
    }


@pytest.mark.parametrize("name", builtin(datasets.REGISTRY))
def test_every_builtin_dataset_conforms(name, tmp_path):
    example = _examples(tmp_path).get(name)
    if example is None:
        pytest.skip(f"no tiny copy of the {name} format in this test")
    root, category, options = example()
    passed = check_dataset(datasets.get(name), root, category=category, **options)
    assert "load: splits, labels, masks, fingerprint, same bits" in passed and "spawned worker" in passed


class _Base(harness.Method):
    @dataclasses.dataclass
    class Settings:
        image_size: int = 32
        seed: int = 0

    def fit(self, images, *, callbacks=()):
        if not len(images) or self.settings.image_size < 1:
            raise ValueError("no images or a bad size")
        self.mean = images.mean(axis=0).astype(np.float32)
        return []

    def predict(self, images):
        maps = np.abs(images - self.mean).mean(axis=-1).astype(np.float32)
        return maps.max(axis=(1, 2)), maps

    def state_dict(self):
        return {"mean": self.mean}

    def load_state_dict(self, state):
        self.mean = state["mean"]


class _Float64Scores(_Base):
    def predict(self, images):
        scores, maps = super().predict(images)
        return scores.astype(np.float64), maps


class _Random(_Base):
    def fit(self, images, *, callbacks=()):
        super().fit(images)
        self.mean = self.mean + np.random.default_rng().random(self.mean.shape, dtype=np.float32)
        return []


class _ForgetsState(_Base):
    def load_state_dict(self, state):
        self.mean = np.zeros_like(state["mean"])


class _NoCheckpoint(_Base):
    checkpoints = True


@pytest.mark.parametrize(
    "cls, message",
    [
        (_Float64Scores, r"predict: scores must be \(8,\) float32, got \(8,\) float64"),
        (_Random, r"same seed, same bits"),
        (_ForgetsState, r"state_dict round trip"),
        (_NoCheckpoint, r"does not implement save_checkpoint, load_checkpoint"),
    ],
)
def test_the_kit_names_the_broken_part(cls, message):
    with pytest.raises(ConformanceError, match=message):
        check_method(cls, spawn=False)
    assert check_method(_Base, spawn=False)[-1] == "empty training set refused"
