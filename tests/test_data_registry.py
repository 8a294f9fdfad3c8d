"""The adapter registry: names, default profiles, default roots, options."""

from __future__ import annotations

from pathlib import Path

import pytest

import harness.datasets as datasets
from harness.errors import HarnessError

# Facts about some built-in data sets; every registered adapter is checked from the registry itself.
PROFILES = {
    "mvtec": "paper",
    "visa": "paper",
    "brats": "paper",
    "brats_bmad": "paper",
    "folder": "paper",
    "cifar10": "novelty",
    "mnist": "novelty",
    "fashion_mnist": "novelty",
}
FIXED = {"mvtec": 15, "visa": 12, "brats": 1, "brats_bmad": 1, "cifar10": 10, "mnist": 10, "fashion_mnist": 10}


pytestmark = pytest.mark.usefixtures("isolated_data_env")


def test_every_adapter_is_registered_with_its_profile():
    from harness.sweep import profiles

    assert set(PROFILES) | {"synthetic"} <= set(datasets.names())
    for name in datasets.names():
        adapter = datasets.get(name)
        assert adapter.name == name and adapter.default_profile in profiles.PROFILES and adapter.description
    for name, profile in PROFILES.items():
        assert datasets.get(name).default_profile == profile


@pytest.mark.parametrize("name", sorted(FIXED))
def test_fixed_categories_need_no_disk(name):
    assert len(datasets.create(name).categories) == FIXED[name]


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_default_root_is_under_harness_data(name, tmp_path, monkeypatch):
    assert datasets.create(name).root is None
    monkeypatch.setenv("HARNESS_DATA", str(tmp_path))
    assert Path(datasets.create(name).root) == tmp_path / name
    assert Path(datasets.create(name, str(tmp_path / "x")).root) == tmp_path / "x"


def test_options_pass_through_and_unknown_ones_fail():
    assert datasets.create("visa", None, split="2cls_fewshot").split == "2cls_fewshot"
    assert datasets.create("brats", None, seed=7).options["seed"] == 7
    with pytest.raises(HarnessError, match=r"unknown option\(s\) seed for data set 'mvtec'; valid options: cache"):
        datasets.create("mvtec", None, seed=7)
    with pytest.raises(HarnessError, match=r"unknown data set 'mvtec_ad'"):
        datasets.get("mvtec_ad")
