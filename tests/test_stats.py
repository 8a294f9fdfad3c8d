"""Intervals and tests of harness.stats against their definitions: DeLong's structural components by
brute force, bootstrap resamples by recomputing the exact metric on the resampled images, rank tests
against scipy, and hand-derived paired cases."""

import json
import math
import warnings

import numpy as np
import pytest
from scipy import stats as scipy_stats

from harness.metrics import MetricWarning, evaluate, image_auroc, pro_rd4ad
from harness.stats import delong
from harness.stats.bootstrap import PixelTable, Rd4adTable, expand, stratified_multiplicities
from harness.stats.paired import NEMENYI_Q05, bootstrap_p_value, friedman, holm, paired_bootstrap, wilcoxon_categories
from harness.stats.seeds import seed_interval

# ---- DeLong ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("tied", [False, True])
def test_fast_delong_equals_the_quadratic_definition(tied):
    rng = np.random.default_rng(3 + tied)
    labels = rng.random(70) < 0.4
    scores = rng.integers(0, 5, (3, 70)).astype(float) if tied else rng.normal(size=(3, 70)) + labels
    fast, slow = delong.components(scores, labels), delong.components_reference(scores, labels)
    np.testing.assert_allclose(fast.aucs, slow.aucs, rtol=0, atol=1e-12)
    np.testing.assert_allclose(fast.v10, slow.v10, rtol=0, atol=1e-12)
    np.testing.assert_allclose(fast.v01, slow.v01, rtol=0, atol=1e-12)
    np.testing.assert_allclose(fast.covariance, slow.covariance, rtol=0, atol=1e-12)
    assert fast.aucs[0] == pytest.approx(image_auroc(scores[0], labels), abs=1e-12)


def test_midranks_are_scipys_average_ranks():
    values = np.array([3.0, 1.0, 3.0, 2.0, 3.0, 1.0])
    np.testing.assert_array_equal(delong.midranks(values), scipy_stats.rankdata(values))


def test_paired_delong_by_hand():
    """One positive, two negatives. a: 3 vs (1, 2), AUC 1; b: 1.5 vs (1, 2), AUC 1/2. V01_a = (1, 1),
    V01_b = (1, 0): S01 = [[0, 0], [0, 1/2]], over n = 2 -> var(diff) = 1/4, z = 1, p = 2 (1 - Phi(1))."""
    labels = np.array([True, False, False])
    found = delong.paired_auc_test([3.0, 1.0, 2.0], [1.5, 1.0, 2.0], labels)
    assert found.difference == 0.5
    assert found.variance == pytest.approx(0.25, abs=1e-15)
    assert found.p_value == pytest.approx(2 * (1 - scipy_stats.norm.cdf(1.0)), abs=1e-12)
    assert (found.low, found.high) == pytest.approx((0.5 - 1.959963984540054 * 0.5, 0.5 + 1.959963984540054 * 0.5))


def test_delong_interval_on_the_logit_scale_stays_inside_0_1():
    rng = np.random.default_rng(0)
    labels = np.arange(40) < 10
    scores = rng.normal(size=40) + 1.5 * labels
    found = delong.auc_interval(scores, labels)
    assert 0 < found.low < found.auc < found.high < 1
    logit = math.log(found.auc / (1 - found.auc))
    half = 1.959963984540054 * math.sqrt(found.variance) / (found.auc * (1 - found.auc))
    assert found.high == pytest.approx(1 / (1 + math.exp(-(logit + half))), abs=1e-12)
    perfect = delong.auc_interval([0.9, 0.8, 0.1, 0.2], [1, 1, 0, 0])
    assert (perfect.low, perfect.high, perfect.variance) == (1.0, 1.0, 0.0)


# ---- the bootstrap: every resample is the exact metric of the resampled images ------------------------


def _test_set(n=14, size=12, seed=1, levels=None):
    rng = np.random.default_rng(seed)
    masks = np.zeros((n, size, size), bool)
    labels = np.zeros(n, bool)
    for i in range(n):
        if i % 3 != 0:
            labels[i] = True
            y, x = rng.integers(0, size - 4, 2)
            masks[i, y : y + rng.integers(2, 5), x : x + rng.integers(2, 5)] = True
            masks[i, rng.integers(0, size), rng.integers(0, size)] = True  # a second, one-pixel region
    noise = rng.integers(0, levels, masks.shape) if levels else rng.normal(size=masks.shape)
    maps = (noise + 2.5 * masks).astype(np.float32)
    return maps, masks, labels


PIXEL_METRICS = ("pixel_auroc", "au_pro", "pixel_ap", "pixel_f1_max")


@pytest.mark.parametrize(
    ("levels", "checkpoints", "fpr_limit", "dtype"),
    [(None, 512, 0.3, np.float32), (6, 4, 0.3, np.float32), (6, 1, 0.05, np.float64), (None, 3, 1.0, np.float32)],
)
def test_each_resample_equals_the_exact_metric_of_the_resampled_images(levels, checkpoints, fpr_limit, dtype):
    maps, masks, labels = _test_set(levels=levels)
    maps = maps.astype(dtype)
    table = PixelTable(maps, masks, fpr_limit=fpr_limit, checkpoints=checkpoints, curves=True)
    for w in stratified_multiplicities(labels, 25, seed=11):
        index = expand(w)  # an image drawn twice is in the test set twice
        exact = evaluate(
            labels[index].astype(float), labels[index], maps[index], masks[index], PIXEL_METRICS, fpr_limit=fpr_limit
        )
        for name in PIXEL_METRICS:
            assert getattr(table, name)(w) == pytest.approx(exact[name].value, abs=1e-12, rel=0), name
    everything = np.ones(len(labels), dtype=np.int64)
    exact = evaluate(labels.astype(float), labels, maps, masks, PIXEL_METRICS, fpr_limit=fpr_limit)
    assert table.au_pro(everything) == pytest.approx(exact["au_pro"].value, abs=1e-12)
    assert table.pixel_auroc(everything) == exact["pixel_auroc"].value  # integers, one rounding: the same bits


def test_rd4ad_pro_of_a_resample_is_the_metric_of_the_resampled_images():
    maps, masks, labels = _test_set()
    table = Rd4adTable(maps, masks, labels)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MetricWarning)
        for w in stratified_multiplicities(labels, 10, seed=2):
            index = expand(w)
            assert table.value(w) == pytest.approx(pro_rd4ad(maps[index], masks[index], labels[index]), abs=1e-12)


def test_resamples_are_stratified_and_fixed_by_the_seed():
    labels = np.array([0, 0, 0, 1, 1])
    draws = stratified_multiplicities(labels, 200, seed=7)
    assert (draws[:, :3].sum(axis=1) == 3).all() and (draws[:, 3:].sum(axis=1) == 2).all()
    np.testing.assert_array_equal(draws, stratified_multiplicities(labels, 200, seed=7))
    assert not np.array_equal(draws, stratified_multiplicities(labels, 200, seed=8))
    # numpy's PCG64 stream is the same on every platform: these are the first resamples of seed 7 with B = 200
    assert draws[:3].tolist() == [[0, 1, 2, 1, 1], [0, 1, 2, 2, 0], [2, 0, 1, 0, 2]]


# ---- tests of differences ----------------------------------------------------------------------------


def test_bootstrap_p_value_and_interval_by_hand():
    assert bootstrap_p_value(np.array([1.0, 2.0, 3.0])) == 0.5  # 2 (1 + 0) / (1 + 3)
    assert bootstrap_p_value(np.array([-1.0, 1.0, 2.0, 3.0])) == 0.8  # 2 (1 + 1) / 5
    found = paired_bootstrap(0.9, 0.8, np.linspace(0.85, 0.95, 101), np.full(101, 0.8), "paired")
    assert found.difference == pytest.approx(0.1)
    assert (found.low, found.high) == pytest.approx((0.05 + 0.1 * 0.025, 0.05 + 0.1 * 0.975))
    assert found.excludes_zero


def test_holm_by_hand():
    # sorted 0.01, 0.03, 0.04 -> 3 x 0.01, max(0.03, 2 x 0.03), max(0.06, 1 x 0.04)
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])


def test_friedman_and_wilcoxon_agree_with_scipy():
    rng = np.random.default_rng(5)
    values = rng.random((12, 4)) + np.array([0.3, 0.2, 0.0, 0.1])
    result = friedman(["a", "b", "c", "d"], values)
    reference = scipy_stats.friedmanchisquare(*values.T)
    assert result.statistic == pytest.approx(reference.statistic, abs=1e-12)
    assert result.p_value == pytest.approx(reference.pvalue, abs=1e-12)
    ranks = np.mean([scipy_stats.rankdata(-row) for row in values], axis=0)
    np.testing.assert_allclose(result.mean_ranks, ranks)
    assert result.critical_difference == pytest.approx(NEMENYI_Q05[4] * math.sqrt(4 * 5 / (6 * 12)))
    raw = {(i, j): p for i, j, p, _ in result.pairs}
    z = (ranks[0] - ranks[2]) / math.sqrt(4 * 5 / (6 * 12))
    assert raw[0, 2] == pytest.approx(2 * scipy_stats.norm.sf(abs(z)))
    assert [a for *_, a in result.pairs] == pytest.approx(holm([p for *_, p, _ in result.pairs]))
    a, b = values[:, 0], values[:, 2]
    assert wilcoxon_categories(list(a), list(b)).p_value == pytest.approx(scipy_stats.wilcoxon(a - b).pvalue)
    tie = friedman(["a", "b", "c"], np.ones((3, 3)))
    assert (tie.statistic, tie.p_value) == (0.0, 1.0)


def test_seed_interval_is_students_t():
    values = [0.91, 0.93, 0.95, 0.92]
    found = seed_interval(values)
    low, high = scipy_stats.t.interval(0.95, 3, loc=np.mean(values), scale=scipy_stats.sem(values))
    assert (found.low, found.high) == pytest.approx((low, high), abs=1e-12)
    assert math.isnan(seed_interval([0.9]).low)


# ---- the compare command on tiny runs -----------------------------------------------------------------


def _runs(tmp_path, seeds_per_run):
    from report_fixtures import plot_run

    runs = []
    for k, seeds in enumerate(seeds_per_run):
        folder = tmp_path / f"make{k}"
        folder.mkdir()
        runs.append(plot_run(folder, seeds=seeds, images_on_disk=False).rename(tmp_path / f"run{k}"))
    return runs


def test_compare_two_runs_end_to_end(tmp_path, capsys):
    from harness.cli import main
    from harness.stats.intervals import Options, RunIntervals, paired_difference

    a, b = _runs(tmp_path, [(0,), (1,)])
    assert main(["compare", str(a), str(b), "--resamples", "50", "--out", str(tmp_path / "cmp")]) == 0
    out = capsys.readouterr().out
    assert "paired DeLong" in out and "paired stratified image bootstrap" in out and "Wilcoxon" in out
    rows = (tmp_path / "cmp" / "compare.csv").read_text().splitlines()
    assert rows[0] == "vs,metric,category,difference,ci_low,ci_high,p_value,ci_method"
    assert len(rows) == 1 + 3 * 3  # 3 metrics x (2 categories + mean)
    # a run against itself: every paired difference is exactly 0 (the same resampled images on both sides)
    run = RunIntervals(a, Options(resamples=30))
    for metric in ("pixel_auroc", "au_pro", "image_auroc"):
        found = paired_difference(run, run, "mean", metric)
        assert (found.difference, found.low, found.high) == (0.0, 0.0, 0.0)


def test_compare_three_runs_writes_the_critical_difference_figure(tmp_path, capsys):
    from harness.cli import main

    runs = _runs(tmp_path, [(0,), (1,), (2, 3)])
    assert main(["compare", *map(str, runs), "--resamples", "20", "--metrics", "au_pro"]) == 0
    out = capsys.readouterr().out
    assert "Friedman chi2" in out and "Holm-adjusted" in out
    assert (runs[0] / "compare" / "cd-au_pro.png").stat().st_size > 1000
    assert (runs[0] / "compare" / "cd-au_pro.pdf").is_file()


def test_compare_refuses_runs_on_different_images(tmp_path, capsys):
    from harness.cli import main

    a, b = _runs(tmp_path, [(0,), (1,)])
    record_path = next((b / "jobs").glob("weave-*/record.json"))
    record = json.loads(record_path.read_text())
    record["data"]["fingerprint"] = "another"
    record_path.write_text(json.dumps(record))
    assert main(["compare", str(a), str(b)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not tested on the same images" in err[0] and "fingerprints differ" in err[0]


def test_the_bootstrap_bench_reports_paired_differences_of_the_tables():
    from harness.bench.bootstrap_speed import bench_bootstrap, format_bench_bootstrap, paired_bootstrap_seconds
    from harness.bench.metric_speed import synthetic_test_set

    result = bench_bootstrap(n_images=8, size=32, resamples=20)
    assert set(result["threads"]) == {1, 2} and all(t["seconds"] > 0 for t in result["threads"].values())
    assert "20 resamples of P-AUROC and AU-PRO" in format_bench_bootstrap(result)
    maps, masks = synthetic_test_set(8, 32, seed=0)
    _, _, one = paired_bootstrap_seconds(maps, maps[::-1].copy(), masks, 20, threads=1)
    _, _, two = paired_bootstrap_seconds(maps, maps[::-1].copy(), masks, 20, threads=2)
    np.testing.assert_array_equal(one, two)  # the same resamples whatever the number of threads


def test_critical_difference_cliques_join_runs_no_test_separates():
    from harness.stats.cd import cliques
    from harness.stats.paired import Friedman

    # a-b and b-c not significant, a-c significant: two overlapping groups {a, b} and {b, c}
    result = Friedman(
        ["a", "b", "c"], [1.0, 2.0, 3.0], 6.0, 0.05, 10, 1.0, [(0, 1, 0.4, 0.5), (0, 2, 0.001, 0.003), (1, 2, 0.4, 0.5)]
    )
    assert cliques(result) == [(0, 1), (1, 2)]
    apart = Friedman(["a", "b"], [1.0, 2.0], 6.0, 0.05, 10, 1.0, [(0, 1, 0.001, 0.001)])
    assert cliques(apart) == []
