"""The command line: one sweep end to end and a closed pipe in subprocesses as a user would run them; argument
and input errors, listings and help in-process through harness.cli.main (no interpreter to start)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.cli import main
from harness.datasets.synthetic import COUNTS, DEFECTS


def harness(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "harness", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=os.environ.copy(),
        timeout=600,
    )


def exit_code(argv: list[str]) -> int:
    """main's status for argv, whether it returns it or argparse exits with it."""
    try:
        return main(argv)
    except SystemExit as stop:
        return stop.code if isinstance(stop.code, int) else 1


@pytest.mark.slow  # two trainings in a new interpreter: about 2 minutes on 2 shared cores
def test_tiny_run_end_to_end(tmp_path):
    out = tmp_path / "run"
    result = harness("run", "--categories", "disc", "--epochs", "2", "--image-size", "64", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert f"run folder: {out}" in result.stdout
    assert "| disc" in result.stdout and "| mean" in result.stdout

    jobs = list((out / "jobs").iterdir())
    assert len(jobs) == 1
    job = jobs[0]
    assert {p.name for p in job.iterdir()} >= {"config.json", "record.json", "predictions.npz"}
    record = json.loads((job / "record.json").read_text())
    config = json.loads((job / "config.json").read_text())
    assert record["job_id"] == job.name == config["job_id"]
    assert record["status"] == "ok" and record["category"] == "disc" and record["profile"] == "demo"
    assert record["settings"]["epochs"] == 2 and record["settings"]["image_size"] == 64
    assert len(record["history"]) == 2
    assert record["data"]["n_test"] == COUNTS["good"] + COUNTS["defect"] * len(DEFECTS)
    assert record["data"]["fingerprint"]
    for name in ("image_auroc", "pixel_auroc", "au_pro"):
        metric = record["metrics"][name]
        assert 0.0 <= metric["value"] <= 1.0
        assert metric["definition"]
    assert record["provenance"]["torch"] and record["timings"]["fit"] > 0
    rows = (out / "results.csv").read_text().splitlines()
    assert len(rows) == 2 and rows[1].startswith("synthetic,disc,rd,demo,0,")

    again = harness("run", "--categories", "disc", "--epochs", "2", "--image-size", "64", "--out", str(out))
    assert again.returncode == 0 and "already done, skipped" in again.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["run", "--dataset", "imagenet"], "unknown data set 'imagenet'"),
        (["run", "--categories", "bottle"], "unknown category 'bottle'"),
        (["run", "--profile", "fastest"], "unknown profile 'fastest'"),
        (["run", "--out", "/proc/forbidden/run"], "cannot write the output folder"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, message, capsys):
    assert exit_code(args) == 2
    stderr = capsys.readouterr().err
    assert message in stderr
    assert "Traceback" not in stderr
    assert len(stderr.strip().splitlines()) == 1


def test_usage_errors_exit_2(capsys):
    assert exit_code(["run", "--epochs", "zero"]) == 2
    assert exit_code(["frobnicate"]) == 2
    assert "Traceback" not in capsys.readouterr().err


def test_a_reader_that_goes_away_ends_the_command_quietly():
    # `python -m harness list | head -1`: the reader has closed the pipe before anything is written.
    process = subprocess.Popen(
        [sys.executable, "-m", "harness", "list"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ.copy(),
    )
    process.stdout.close()
    stderr = process.stderr.read()
    assert process.wait(timeout=120) == 141, stderr
    assert stderr == ""  # no traceback, no "Exception ignored"


def test_list_and_help(capsys):
    assert exit_code(["list"]) == 0
    listing = capsys.readouterr().out
    for word in ("synthetic", "mvtec", "demo", "paper", "rd"):
        assert word in listing
    for command in ([], ["run"], ["list"]):
        assert exit_code([*command, "--help"]) == 0
        assert "usage: python -m harness" in capsys.readouterr().out


def test_version(capsys):
    from harness import __version__

    assert exit_code(["--version"]) == 0
    assert capsys.readouterr().out == f"rd-harness {__version__}\n"
