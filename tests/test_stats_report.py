"""report --ci, report --ci --vs RUN and check's interval mode, end to end on tiny runs with predictions."""

import csv
import json
import math

import numpy as np
import pytest

from harness.cli import main
from harness.metrics import evaluate
from harness.store import RunStore, pack_predictions


def _run(folder, dataset, categories, *, masks=True, seeds=(0,), shift=0.0):
    """A finished run with predictions.npz per job: 8 test images of 16x16 per category."""
    from report_fixtures import write_record

    store = RunStore(folder)
    for c, category in enumerate(categories):
        labels = np.arange(8) >= 4
        truth = np.zeros((8, 16, 16), bool)
        for i in np.flatnonzero(labels):
            truth[i, 3 + i : 8 + i, 4:9] = True
        for seed in seeds:
            rng = np.random.default_rng([c, seed, int(100 * shift)])
            maps = (rng.random(truth.shape) + (0.6 - shift) * truth).astype(np.float32)
            scores = maps.max(axis=(1, 2)) + 0.3 * rng.random(8).astype(np.float32)
            names = ("image_auroc", "pixel_auroc", "au_pro")
            values = evaluate(scores, labels, maps, truth if masks else None, names)
            record = write_record(
                folder,
                category,
                seed,
                {n: (None if math.isnan(v.value) else v.value) for n, v in values.items()},
                dataset=dataset,
                reasons={n: v.reason for n, v in values.items()},
            )
            paths = [f"{category}/test/{i:03d}.png" for i in range(8)]
            predictions = pack_predictions(scores, labels, maps, truth if masks else None, paths, ["x"] * 8)
            store.write_result(record["job_id"], record, predictions)
    return folder


@pytest.mark.parametrize(
    ("dataset", "categories", "masks"),
    [("mvtec", ["bottle", "cable"], True), ("visa", ["candle", "pcb1"], True), ("cifar10", ["airplane"], False)],
)
def test_report_ci_on_each_layout(tmp_path, capsys, dataset, categories, masks):
    run = _run(tmp_path / "run", dataset, categories, masks=masks, seeds=(0, 1))
    out = tmp_path / "out"
    code = main(["report", str(run), "--ci", "--resamples", "40", "--format", "md,csv,latex,html", "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "[low, high]: 95% interval over test images" in printed
    assert "I-AUROC: DeLong, logit 95%" in printed and ("B=40, seed 0" in printed) == masks
    rows = list(csv.DictReader((out / "report.csv").open()))
    for row in rows:
        if row["metric"] == "image_auroc" or masks:
            assert float(row["ci_low"]) <= float(row["value"]) + 1e-12 <= float(row["ci_high"]) + 2e-12, row
            assert row["ci_method"]
        else:  # image-level data set: pixel intervals are not applicable
            assert row["ci_low"] == "" and row["ci_method"].startswith("not applicable")
    assert "95\\% interval over test images" in (out / "report.tex").read_text()
    assert "[" in (out / "report.html").read_text()


def test_latex_prints_the_interval_as_a_siunitx_uncertainty(tmp_path, capsys):
    run = _run(tmp_path / "run", "mvtec", ["bottle"])
    out = tmp_path / "out"
    assert main(["report", str(run), "--ci", "--resamples", "30", "--format", "latex,csv", "--layout", "wide"]) == 0
    assert (
        main(["report", str(run), "--ci", "--resamples", "30", "--format", "latex,csv", "--out", str(out), "--std"])
        == 0
    )
    tex = (out / "report.tex").read_text()
    rows = {(r["category"], r["metric"]): r for r in csv.DictReader((out / "report.csv").open())}
    row = rows["bottle", "au_pro"]
    value, low, high = (100 * float(row[k]) for k in ("value", "ci_low", "ci_high"))
    assert f"{value:.1f} \\pm {max(value - low, high - value):.1f}" in tex
    assert "the larger half of the 95\\% interval" in tex


def test_report_vs_run_marks_differences_that_the_paired_test_finds(tmp_path, capsys):
    a = _run(tmp_path / "a", "mvtec", ["bottle", "cable"])
    b = _run(tmp_path / "b", "mvtec", ["bottle", "cable"], shift=0.5)  # much weaker maps on the same images
    out = tmp_path / "out"
    assert main(["report", str(a), "--vs", str(b), "--ci", "--resamples", "60", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "‡" in printed and "paired DeLong" in printed
    rows = list(csv.DictReader((out / "report.csv").open()))
    paired = [r for r in rows if r["side"] == "B" and r["metric"] == "pixel_auroc"]
    assert paired and all(r["difference_test"].startswith("paired stratified image bootstrap") for r in paired)
    assert all(float(r["difference_ci_low"]) > 0 for r in paired)  # A is better by far: the interval excludes 0


def test_report_ci_over_seeds_and_a_published_reference(tmp_path, capsys):
    from report_fixtures import golden_run

    run = golden_run(tmp_path / "golden")  # records only, no predictions: intervals over seeds still work
    assert main(["report", str(run), "--ci", "--ci-over", "seeds", "--vs", "rd4ad_paper", "--format", "csv"]) == 0
    printed = capsys.readouterr().out
    assert "t over 2 seeds" in printed
    assert "published numbers without predictions, so no interval" in printed
    assert main(["report", str(run), "--ci"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "need the stored predictions" in err[0]


def test_check_interval_mode(tmp_path, capsys):
    run = _run(tmp_path / "run", "mvtec", ["bottle"])
    baseline = tmp_path / "baseline.json"
    baseline.write_text(json.dumps({"tolerance": {"mode": "interval", "resamples": 50, "atol": 0.0}}))
    assert main(["check", str(run), "--baseline", str(baseline), "--update"]) == 0
    entry = json.loads(baseline.read_text())["values"]["bottle"]["au_pro"]
    assert entry["ci_low"] < entry["mean"] < entry["ci_high"] and "bootstrap" in entry["ci_method"]
    assert main(["check", str(run), "--baseline", str(baseline)]) == 0
    record_path = next((run / "jobs").glob("bottle-*/record.json"))
    record = json.loads(record_path.read_text())
    for value, expected in ((entry["ci_low"] + 1e-9, 0), (entry["ci_low"] - 1e-6, 1)):
        record["metrics"]["au_pro"]["value"] = value  # just inside, then just outside the baseline's interval
        record_path.write_text(json.dumps(record))
        capsys.readouterr()
        assert main(["check", str(run), "--baseline", str(baseline)]) == expected
    assert "drift in 1 of 3 values: bottle/au_pro" in capsys.readouterr().err


def test_compare_on_an_image_level_data_set_tests_image_metrics_only(tmp_path, capsys):
    a = _run(tmp_path / "a", "cifar10", ["airplane", "bird"], masks=False)
    b = _run(tmp_path / "b", "cifar10", ["airplane", "bird"], masks=False, shift=0.3)
    assert main(["compare", str(a), str(b), "--resamples", "20"]) == 0
    rows = list(csv.DictReader((a / "compare" / "compare.csv").open()))
    assert {r["metric"] for r in rows} == {"image_auroc"} and len(rows) == 3
    assert all(r["ci_method"].startswith("paired DeLong") for r in rows)


def test_a_runs_resampled_values_are_the_exact_metrics_of_the_resampled_images(tmp_path):
    """Through the run folder: each resample's value is the mean over seeds of harness.metrics on the
    resampled images, read back from predictions.npz (the same draws for every metric)."""
    from harness.stats.bootstrap import expand
    from harness.stats.intervals import Options, RunIntervals, draws_for
    from harness.store import load_predictions

    run = _run(tmp_path / "run", "mvtec", ["bottle"], seeds=(0, 1))
    stats = RunIntervals(run, Options(resamples=12, seed=3))
    data = stats.data["bottle"]
    draws = draws_for("bottle", data.labels, stats.options)
    stored = [load_predictions(path) for path in data.files]
    for metric in ("pixel_auroc", "au_pro", "pixel_ap"):
        resampled = stats.boot("bottle", metric)
        for b, w in enumerate(draws):
            index = expand(w)
            exact = [
                evaluate(p["scores"][index], p["labels"][index], p["maps"][index], p["masks"][index], (metric,))[
                    metric
                ].value
                for p in stored
            ]
            assert resampled[b] == pytest.approx(np.mean(exact), abs=1e-12)


def test_an_interval_mode_baseline_without_intervals_is_refused_in_one_line(tmp_path, capsys):
    run = _run(tmp_path / "run", "mvtec", ["bottle"])
    baseline = tmp_path / "baseline.json"
    assert main(["check", str(run), "--baseline", str(baseline), "--update"]) == 0  # fixed tolerance
    data = json.loads(baseline.read_text())
    data["tolerance"]["mode"] = "interval"  # switched by hand, never remade
    baseline.write_text(json.dumps(data))
    capsys.readouterr()
    assert main(["check", str(run), "--baseline", str(baseline)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "remake it with `check --update`" in err[0]


def test_plot_error_bars_are_the_interval_when_there_is_one():
    from harness.report.model import Cell
    from harness.report.plots import _bar

    np.testing.assert_allclose(_bar(Cell(0.9, std=0.01, n=3, ci_low=0.85, ci_high=0.92)), [[5.0], [2.0]])
    assert _bar(Cell(0.9, std=0.01, n=3)) == pytest.approx(1.0)
    assert Cell(0.9, std=0.01, ci_low=0.85, ci_high=0.92).spread == pytest.approx(0.05)  # LaTeX's ±: the larger half
