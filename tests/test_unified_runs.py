"""The unified (multi-class) protocol end to end, through the CLI in subprocesses: one model for all
categories, per-category metrics, resume after SIGKILL, bad data failing the job before training,
reports with the protocol named (also beside ADer's multi-class VisA numbers)."""

from __future__ import annotations

import csv
import json
import signal
from pathlib import Path

import pytest
from visa_fixtures import make_visa

from sweep_fixtures import (
    FAST,
    break_category,
    harness,
    make_dataset,
    metric_values,
    records,
    run_in_process,
    start_harness,
    wait_for,
)

CATEGORIES = ("amber", "moss", "slate")  # the folder adapter lists them sorted


def _unified_folder(run: Path) -> Path:
    found = list((run / "jobs").glob("unified-s*"))
    return found[0] if found else run / "jobs" / "unified-missing"


def _assert_one_model(records: dict[str, dict], categories) -> None:
    """Every category's record comes from the same job and the same training run."""
    assert set(records) == set(categories)
    first = records[categories[0]]
    for category, record in records.items():
        assert record["protocol"] == "unified" and record["category"] == category
        assert record["unified"]["job_id"] == first["unified"]["job_id"]
        assert record["unified"]["categories"] == list(categories)
        losses = [(h["epoch"], h["loss"]) for h in record["history"]]
        assert losses == [(h["epoch"], h["loss"]) for h in first["history"]] and record["settings"] == first["settings"]
        assert record["data"]["n_train"] == record["unified"]["n_train_by_category"][category]
        assert 0.0 <= record["metrics"]["image_auroc"]["value"] <= 1.0
    assert first["unified"]["n_train"] == sum(first["unified"]["n_train_by_category"].values())


@pytest.mark.slow  # a sweep, its resume, report, check and rescore in new processes: about a minute on 2 cores
def test_synthetic_three_categories_one_model_per_category_metrics_report_check_rescore(tmp_path):
    out = tmp_path / "run"
    args = [
        "run",
        "--protocol",
        "unified",
        "--profile",
        "demo",
        "--image-size",
        "64",
        "--epochs",
        "2",
        "--eval-every",
        "1",
        "--device",
        "cpu",
        "--out",
        str(out),
    ]
    result = harness(*args)
    assert result.returncode == 0, result.stderr
    assert "1 job(s): synthetic [weave, tiles, disc]" in result.stdout and "protocol unified" in result.stdout
    assert "[1/1] unified (3 categories) seed 0:" in result.stdout and "1 job(s) run" in result.stdout
    assert "| weave" in result.stdout and "| mean" in result.stdout  # the per-category table
    found = records(out)
    _assert_one_model(found, ("weave", "tiles", "disc"))
    assert found["weave"]["unified"]["n_train"] == 120 and len(found["weave"]["history"]) == 2
    assert found["tiles"]["history"][0]["test_metrics"] != found["disc"]["history"][0]["test_metrics"]  # its own
    log = (_unified_folder(out) / "log.txt").read_text()
    assert log.count("epoch 1/2: loss") == 1 and "120 training images of 3 categories, trained on together" in log
    with open(out / "results.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert sorted(r["category"] for r in rows) == ["disc", "tiles", "weave"] and {r["protocol"] for r in rows} == {
        "unified"
    }

    again = harness(*args)  # resumes: nothing to do
    assert (
        again.returncode == 0
        and "already done, skipped" in again.stdout
        and "0 job(s) run, 1 already done" in again.stdout
    )

    report = harness("report", str(out), "--format", "md")
    assert report.returncode == 0, report.stderr
    assert "multi-class protocol" in report.stdout and "| weave" in report.stdout
    baseline = tmp_path / "baseline.json"
    assert harness("check", str(out), "--baseline", str(baseline), "--update").returncode == 0
    assert json.loads(baseline.read_text())["settings"]["protocol"] == "unified"
    assert harness("check", str(out), "--baseline", str(baseline)).returncode == 0
    rescored = harness("rescore", str(out))
    assert rescored.returncode == 0, rescored.stderr
    assert {c: metric_values(r) for c, r in records(out).items()} == {c: metric_values(r) for c, r in found.items()}


@pytest.mark.slow  # two sweeps in new processes, one killed: about 35 s on 2 cores
def test_mvtec_layout_resume_after_sigkill_gives_the_uninterrupted_result(tmp_path):
    data = make_dataset(tmp_path / "data", categories=CATEGORIES)
    args = ["run", *FAST, "--epochs", "6", "--protocol", "unified", "--root", str(data), "--save-checkpoints"]
    reference = tmp_path / "reference"
    assert run_in_process(*args, "--out", str(reference)) == 0
    expected = records(reference)
    _assert_one_model(expected, CATEGORIES)
    assert (_unified_folder(reference) / "checkpoint.pth").is_file()  # one model, kept once

    out = tmp_path / "run"
    process = start_harness(*args, "--out", str(out))
    try:

        def trained_an_epoch() -> bool:
            log = _unified_folder(out) / "log.txt"
            return log.exists() and "epoch 1/6" in log.read_text()

        wait_for(trained_an_epoch, process, "the job trained an epoch")
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert not list((out / "jobs").glob("*/record.json"))  # killed mid-job: no record of any category
    resumed = harness(*args, "--out", str(out))
    assert resumed.returncode == 0, resumed.stderr
    assert "1 job(s) run, 0 already done, 0 failed" in resumed.stdout
    found = records(out)
    _assert_one_model(found, CATEGORIES)
    for category in CATEGORIES:
        assert metric_values(found[category]) == metric_values(expected[category]), category
        assert found[category]["job_id"] == expected[category]["job_id"]
    assert not [p.name for p in (out / "jobs").rglob(".*")]  # no temporary files left


def test_a_category_with_bad_data_fails_the_unified_job_before_training(tmp_path):
    data = make_dataset(tmp_path / "data", categories=CATEGORIES)
    break_category(data / "moss")  # an anomalous test image of moss without its mask
    out = tmp_path / "run"
    result = harness("run", *FAST, "--protocol", "unified", "--root", str(data), "--out", str(out))
    assert result.returncode == 1
    failure = json.loads((_unified_folder(out) / "failure.json").read_text())
    message = failure["message"]
    assert "\n" not in message and message.startswith("DataError: ")
    assert str(data / "moss" / "test" / "blob") in message and "no mask" in message  # names the file
    assert failure["categories"] == list(CATEGORIES)
    log = (_unified_folder(out) / "log.txt").read_text()
    assert "load amber:" in log and "epoch 1/" not in log  # it stopped while loading, before any training
    assert not list((out / "jobs").glob("*/record.json"))
    assert "1 job(s) failed" in result.stderr and message in result.stderr


def test_local_backend_runs_a_unified_job_like_serial(tmp_path):
    data = make_dataset(tmp_path / "data", categories=CATEGORIES)
    args = ["run", *FAST, "--protocol", "unified", "--root", str(data)]
    assert run_in_process(*args, "--out", str(tmp_path / "serial")) == 0
    local = harness(*args, "--backend", "local", "--jobs", "1", "--out", str(tmp_path / "local"))
    assert local.returncode == 0, local.stderr
    serial, parallel = records(tmp_path / "serial"), records(tmp_path / "local")
    assert {c: metric_values(r) for c, r in parallel.items()} == {c: metric_values(r) for c, r in serial.items()}


def test_visa_layout_unified_run_beside_aders_multiclass_numbers(tmp_path):
    data = make_visa(tmp_path / "visa", {"candle": (8, 2, 3), "pcb1": (8, 2, 3)})
    out = tmp_path / "run"
    result = harness(
        "run",
        "--dataset",
        "visa",
        "--root",
        str(data),
        "--categories",
        "candle,pcb1",
        "--profile",
        "demo",
        "--protocol",
        "unified",
        "--image-size",
        "64",
        "--epochs",
        "1",
        "--batch-size",
        "6",
        "--out",
        str(out),
    )
    assert result.returncode == 0, result.stderr
    _assert_one_model(records(out), ("candle", "pcb1"))
    report = harness("report", str(out), "--vs", "ader_visa_multiclass", "--format", "md")
    assert report.returncode == 0, report.stderr
    assert (
        "RD†: multi-class protocol: one model per seed trained on the training images of its 2 categories"
        in report.stdout
    )
    assert "Every side follows the multi-class protocol." in report.stdout and "Protocols differ" not in report.stdout
