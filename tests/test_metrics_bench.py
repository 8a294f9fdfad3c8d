"""harness.bench.metric_speed.bench_metrics on a tiny synthetic set.

The full-size run is `python -m harness bench metrics`.
"""

import numpy as np

from harness.bench.metric_speed import bench_metrics, format_bench_metrics, synthetic_test_set


def test_synthetic_test_set_looks_like_a_test_set():
    maps, masks = synthetic_test_set(n_images=30, size=48, seed=1)
    assert maps.shape == masks.shape == (30, 48, 48)
    assert maps.dtype == np.float32 and masks.dtype == bool
    anomalous = masks.any(axis=(1, 2))
    assert 10 <= anomalous.sum() <= 28 and 0.005 < masks.mean() < 0.2
    assert maps[masks].mean() > maps[~masks].mean()  # scores correlate with the masks


def test_bench_metrics_reports_the_figures_and_a_table():
    result = bench_metrics(n_images=8, size=32, seed=0, repeats=1)
    for key in ("argsort_s", "metrics_s", "ratio", "pro_rd4ad_s", "ratio_target"):
        assert key in result
    assert result["pixels"] == 8 * 32 * 32
    assert result["ratio"] == result["metrics_s"] / result["argsort_s"]
    assert set(result["values"]) == {"image_auroc", "pixel_auroc", "au_pro", "pro_rd4ad"}
    table = format_bench_metrics(result)
    assert "np.argsort" in table and "pro_rd4ad" in table and "ratio" in table
    # a measurement, not a test: no verdict however slow (this tiny set is far from the budget either way)
    assert "passed" not in result and not {"PASS", "FAIL", "pass", "fail"} & set(table.replace("(", " ").split())
