"""Sweep estimates: the published per-category counts and the arithmetic, without measuring anything."""

import pytest

from harness import datasets
from harness.bench.estimate import estimate_sweep, format_estimate, split_counts
from harness.bench.model_speed import format_model_table
from harness.errors import HarnessError


def test_published_counts_match_the_data_set_totals():
    mvtec, source = split_counts("mvtec")
    assert source == "published counts" and tuple(mvtec) == datasets.get("mvtec")().categories
    assert sum(n for n, _ in mvtec.values()) == 3629 and sum(n for _, n in mvtec.values()) == 1725
    assert mvtec["hazelnut"] == (391, 110)
    visa, _ = split_counts("visa")
    assert tuple(visa) == datasets.get("visa")().categories
    assert sum(n for n, _ in visa.values()) == 8659 and sum(n for _, n in visa.values()) == 962 + 1200
    with pytest.raises(HarnessError, match="pass --root"):
        split_counts("mnist")


def test_counts_from_the_files_under_root():
    from harness.datasets.synthetic import COUNTS, default_synthetic_root, ensure_generated

    root = ensure_generated(default_synthetic_root())
    counts, source = split_counts("synthetic", str(root))
    assert source.startswith("counted under") and counts["disc"] == (COUNTS["train"], 48)


def test_estimate_is_epochs_times_images_over_the_rate():
    train = {"uncached": {"images_per_s": 2.0}, "cached": {"images_per_s": 4.0, "teacher_images_per_s": 10.0}}
    counts = {"a": (100, 20), "b": (50, 10)}
    cached = estimate_sweep(
        counts, epochs=10, seeds=2, cache_used=True, train=train, infer={"images_per_s": 5.0}, data=None
    )
    a = cached["categories"]["a"]
    assert a["train_s"] == 2 * 10 * 100 / 4.0 and a["cache_s"] == 2 * 100 / 10.0 and a["infer_s"] == 2 * 20 / 5.0
    assert a["total_s"] == a["train_s"] + a["cache_s"] + a["infer_s"]
    assert cached["totals"]["total_s"] == pytest.approx(sum(c["total_s"] for c in cached["categories"].values()))
    assert cached["not_included"] == ["data loading"]
    plain = estimate_sweep(
        counts, epochs=10, seeds=1, cache_used=False, train=train, infer=None, data={"images_per_s": 100.0}
    )
    assert plain["categories"]["b"] == {"train_s": 250.0, "load_s": 0.6, "total_s": 250.6}
    text = format_estimate(plain, "sweep estimate: test")
    assert "teacher on the fly" in text and "longest category: a" in text and "inference" in text.splitlines()[-1]


def test_model_table_names_both_training_paths_and_the_ratio():
    run = {"images_per_s": 8.0, "step_s": 2.0, "peak_rss_mib": 900.0, "rss_scope": "phase", "finite_losses": True}
    cached = run | {"images_per_s": 10.0, "teacher_images_per_s": 40.0, "cache_build_s": 0.5, "cache_mib": 3.0}
    setup = {
        "backbone": "resnet18",
        "image_size": 128,
        "batch_size": 16,
        "device": "cpu",
        "precision": "fp32",
        "compiled": False,
        "torch_threads": 1,
    }
    text = format_model_table(
        setup,
        {"uncached": run, "cached": cached, "cache_speedup": 1.25},
        {"images_per_s": 30.0, "seconds": 1.0, "steps": 2, "peak_rss_mib": 800.0},
    )
    for expected in (
        "rd resnet18 128 px, batch 16",
        "8.00 img/s",
        "10.00 img/s",
        "x1.250",
        "40.00 img/s",
        "30.00 img/s",
    ):
        assert expected in text
