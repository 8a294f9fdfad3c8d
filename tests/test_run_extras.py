"""--eval-every (logged, never selects a model) and --save-checkpoints (official format, re-evaluable)."""

import json
import os
import subprocess
import sys

import pytest


def run(*args):
    env = os.environ | {"OMP_NUM_THREADS": "1"}  # one thread: results repeat exactly
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "harness",
            "run",
            "--categories",
            "disc",
            "--image-size",
            "64",
            "--epochs",
            "2",
            *map(str, args),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )


def only_record(folder):
    (record,) = folder.glob("jobs/*/record.json")
    return json.loads(record.read_text()), record.parent


@pytest.mark.slow  # two sweeps in new processes: about half a minute on 2 cores
def test_interim_evaluation_is_logged_and_does_not_change_the_result(tmp_path):
    plain = run("--out", tmp_path / "plain")
    logged = run("--out", tmp_path / "logged", "--eval-every", "1", "--save-checkpoints")
    assert plain.returncode == 0 and logged.returncode == 0, logged.stderr
    (plain_record, _), (logged_record, job_dir) = only_record(tmp_path / "plain"), only_record(tmp_path / "logged")
    assert logged_record["metrics"] == plain_record["metrics"]  # the last epoch is reported either way
    assert [e["loss"] for e in logged_record["history"]] == [e["loss"] for e in plain_record["history"]]
    first, last = logged_record["history"]
    assert 0 <= first["test_metrics"]["image_auroc"] <= 1
    assert "test_metrics" not in last  # the final epoch is the reported evaluation itself
    assert "test metrics (logged, not used for selection)" in (job_dir / "log.txt").read_text()

    checkpoint = job_dir / "checkpoint.pth"
    assert checkpoint.is_file() and not list((tmp_path / "plain").glob("jobs/*/checkpoint.pth"))
    evaluated = run("--out", tmp_path / "evaluated", "--checkpoint", checkpoint)
    assert evaluated.returncode == 0, evaluated.stderr
    evaluated_record, _ = only_record(tmp_path / "evaluated")
    assert evaluated_record["history"] == []  # nothing trained
    for name, metric in plain_record["metrics"].items():
        assert abs(evaluated_record["metrics"][name]["value"] - metric["value"]) < 1e-6, name
