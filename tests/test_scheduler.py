"""The sweep engine: resume after a kill, clean stops on signals, failure isolation, --rerun, determinism."""

import json
import signal
from pathlib import Path

import numpy as np
import pytest

from harness.store import RunStore
from harness.sweep.job import compute_job
from harness.sweep.plan import Sweep

from sweep_fixtures import (
    FAST,
    break_category,
    harness,
    make_dataset,
    metric_values,
    one_thread,
    records,
    run_in_process,
    serial_reference,
    wait_for,
)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    return serial_reference(tmp_path_factory)


def _job_dir(run: Path, category: str) -> Path:
    found = list((run / "jobs").glob(f"{category}-s0-*"))
    return found[0] if found else run / "jobs" / f"{category}-missing"


def _leftovers(run: Path) -> list[str]:
    """Temporary files of interrupted atomic writes."""
    return [p.name for p in (run / "jobs").rglob(".*")]


def test_sweep_killed_mid_job_resumes_without_rerunning_finished_jobs(tmp_path, reference, processes):
    data, uninterrupted = reference
    out = tmp_path / "run"
    args = ["run", *FAST, "--root", str(data), "--out", str(out)]
    process = processes(*args)
    # the first job (amber) is finished and the second (slate) has started: kill without warning
    wait_for(
        lambda: (_job_dir(out, "amber") / "record.json").exists() and (_job_dir(out, "slate") / "log.txt").exists(),
        process,
        "the second job started",
    )
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    first = _job_dir(out, "amber") / "record.json"
    assert not (_job_dir(out, "slate") / "record.json").exists()
    first_text, first_mtime = first.read_text(), first.stat().st_mtime_ns

    again = harness(*args)
    assert again.returncode == 0, again.stderr
    assert "amber seed 0: already done, skipped" in again.stdout
    assert "1 job(s) run, 1 already done, 0 failed" in again.stdout
    assert first.read_text() == first_text and first.stat().st_mtime_ns == first_mtime  # not rerun
    resumed, expected = records(out), records(uninterrupted)
    assert set(resumed) == {"amber", "slate"}
    for category in expected:
        assert metric_values(resumed[category]) == metric_values(expected[category]), category
        assert resumed[category]["job_id"] == expected[category]["job_id"]
    assert _leftovers(out) == []


def test_sigterm_stops_cleanly_and_says_how_to_resume(tmp_path, reference, processes):
    data, _ = reference
    out = tmp_path / "run"
    # many epochs: the first job is surely still training when the signal comes
    process = processes(
        "run", *FAST, "--epochs", "200", "--root", str(data), "--categories", "amber", "--out", str(out)
    )
    wait_for(
        lambda: (
            "epoch 1/200"
            in (
                (_job_dir(out, "amber") / "log.txt").read_text()
                if (_job_dir(out, "amber") / "log.txt").exists()
                else ""
            )
        ),
        process,
        "the job trained an epoch",
    )
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 143, stderr
    assert "interrupted by SIGTERM" in stderr and "resume with the same command" in stderr
    assert f"--out {out}" in stderr
    assert not (_job_dir(out, "amber") / "record.json").exists()
    assert _leftovers(out) == []


def test_a_failing_job_does_not_stop_the_others_and_exits_1(tmp_path, capsys):
    data = make_dataset(tmp_path / "data", categories=("amber", "slate"))
    break_category(data / "amber")  # the first job fails when it loads its data
    out = tmp_path / "run"
    code = run_in_process("run", *FAST, "--root", str(data), "--out", str(out))
    captured = capsys.readouterr()
    assert code == 1
    assert set(records(out)) == {"slate"}  # the job after the failed one ran
    failure = json.loads((_job_dir(out, "amber") / "failure.json").read_text())
    assert failure["status"] == "failed" and "DataError" in failure["message"] and "mask" in failure["message"]
    assert "Traceback" in failure["traceback"]
    log = (_job_dir(out, "amber") / "log.txt").read_text()
    assert "FAILED" in log and "Traceback" in log and "DataError" in log
    assert "1 job(s) failed" in captured.err and _job_dir(out, "amber").name in captured.err
    assert "amber seed 0: FAILED (failed) DataError" in captured.out
    assert "| slate" in captured.out


def test_rerun_runs_finished_jobs_again_and_replaces_their_results(tmp_path, reference, capsys):
    data, _ = reference
    out = tmp_path / "run"
    args = ["run", *FAST, "--root", str(data), "--categories", "slate", "--out", str(out)]
    assert run_in_process(*args) == 0
    record = _job_dir(out, "slate") / "record.json"
    first_text, first_mtime = record.read_text(), record.stat().st_mtime_ns

    assert run_in_process(*args) == 0
    assert "already done, skipped" in capsys.readouterr().out
    assert record.stat().st_mtime_ns == first_mtime

    assert run_in_process(*args, "--rerun") == 0
    assert "already done, skipped" not in capsys.readouterr().out
    assert record.stat().st_mtime_ns != first_mtime
    assert metric_values(json.loads(record.read_text())) == metric_values(json.loads(first_text))


def test_a_job_killed_while_writing_leaves_nothing_that_looks_finished(tmp_path, monkeypatch):
    store = RunStore(tmp_path / "run")
    store.prepare({})
    predictions = {"scores": np.zeros(2, np.float32)}
    store.write_result("job", {"job_id": "job", "old": True}, predictions)

    def die(*args, **kwargs):  # the process "dies" in the middle of writing the predictions of a rerun
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez_compressed", die)
    with pytest.raises(KeyboardInterrupt):
        store.write_result("job", {"job_id": "job", "old": False}, predictions)
    # the old record went first: it never sits beside other predictions; the job is simply not done
    assert not store.is_done("job")
    assert [p.name for p in store.job_dir("job").iterdir()] == ["predictions.npz"]


def test_the_same_job_twice_on_cpu_gives_identical_results(reference):
    data, _ = reference
    job = (
        Sweep(
            dataset="folder",
            root=str(data),
            categories=("amber",),
            profile="demo",
            overrides={"image_size": 64, "epochs": 1, "batch_size": 6, "progress": False},
        )
        .resolve()
        .jobs[0]
    )
    with one_thread():
        first, second = compute_job(job), compute_job(job)
    assert metric_values(first.record) == metric_values(second.record)
    assert [h["loss"] for h in first.record["history"]] == [h["loss"] for h in second.record["history"]]
    for name in ("scores", "maps"):
        assert np.array_equal(first.predictions[name], second.predictions[name]), name
    provenance = first.record["provenance"]
    for key in (
        "harness",
        "python",
        "torch",
        "torchvision",
        "numpy",
        "device_name",
        "seed",
        "data_fingerprint",
        "weights_sha256",
        "host",
    ):
        assert key in provenance, key
    assert provenance["data_fingerprint"] == first.record["data"]["fingerprint"] and provenance["seed"] == 0
    assert set(first.record["timings"]) >= {"load", "fit", "predict", "metrics", "total"}
    assert first.record["memory"]["peak_rss_mib"] > 0
