"""A run folder holds one sweep's settings: `run` refuses a folder of another sweep, `report` and `check`
refuse a folder whose records differ in settings; a `--rerun` stopped by a signal resumes with a command
that skips what the rerun finished and redoes what it had not reached."""

from __future__ import annotations

import json
import os
import shlex
import signal
from pathlib import Path

import pytest

from harness.store import write_json
from harness.sweep import schedule

from sweep_fixtures import FAST, make_dataset, run_in_process

ONE = [*FAST, "--categories", "amber", "--seeds", "0"]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("run-folder") / "data", categories=("amber",))


def job_folders(run: Path) -> list[str]:
    return sorted(p.name for p in (run / "jobs").iterdir())


def test_run_refuses_a_folder_that_holds_another_sweeps_settings(tmp_path, data, capsys):
    out = tmp_path / "run"
    assert run_in_process("run", *ONE, "--root", str(data), "--out", str(out)) == 0
    before, sweep = job_folders(out), (out / "sweep.json").read_text()
    capsys.readouterr()
    assert run_in_process("run", *ONE, "--epochs", "2", "--root", str(data), "--out", str(out)) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert str(out) in err and "epochs" in err and "--out" in err
    assert job_folders(out) == before and (out / "sweep.json").read_text() == sweep  # nothing written
    # the same settings with another seed and device belong to the same sweep: accepted
    assert run_in_process("run", *ONE, "--seeds", "0,1", "--device", "cpu", "--root", str(data), "--out", str(out)) == 0


def write_record(run: Path, category: str, seed: int, epochs: int, value: float) -> None:
    job = run / "jobs" / f"{category}-s{seed}-e{epochs}"
    write_json(
        job / "record.json",
        {
            "job_id": job.name,
            "dataset": "synthetic",
            "category": category,
            "method": "rd",
            "profile": "demo",
            "seed": seed,
            "metrics": {"image_auroc": {"value": value, "definition": "d"}},
            "settings": {"backbone": "resnet18", "epochs": epochs, "device": "cpu", "seed": seed},
            "provenance": {"machine": {"numerics": "native"}},
        },
    )


def test_report_and_check_refuse_a_folder_whose_records_differ_in_settings(tmp_path, capsys):
    from harness.cli import main

    run, baseline = tmp_path / "run", tmp_path / "baseline.json"
    for seed in (0, 1):
        write_record(run, "disc", seed, 2, 0.9)
    assert main(["check", str(run), "--baseline", str(baseline), "--update"]) == 0
    assert main(["report", str(run), "--out", str(tmp_path / "r1")]) == 0
    for seed in (0, 1):  # a second sweep with another epochs written into the same folder
        write_record(run, "disc", seed, 1, 0.5)
    capsys.readouterr()
    for argv in (["report", str(run), "--out", str(tmp_path / "r2")], ["check", str(run), "--baseline", str(baseline)]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
        assert str(run) in err and "epochs" in err and "1" in err and "2" in err
    assert not (tmp_path / "r2").exists()


def test_records_that_differ_only_in_seed_and_execution_settings_are_one_sweep(tmp_path):
    from harness.report.records import load_records

    run = tmp_path / "run"
    write_record(run, "disc", 0, 2, 0.9)
    write_record(run, "disc", 1, 2, 0.8)
    path = run / "jobs" / "disc-s1-e2" / "record.json"
    record = json.loads(path.read_text())
    record["settings"]["device"] = "cuda"  # resumed on another machine
    write_json(path, record)
    assert len(load_records(run)) == 2


def test_a_rerun_stopped_by_sigterm_resumes_without_redoing_what_it_finished(tmp_path, data, capsys, monkeypatch):
    out = tmp_path / "run"
    args = ["run", *FAST, "--categories", "amber", "--seeds", "0,1,2", "--root", str(data), "--out", str(out)]
    assert run_in_process(*args) == 0
    stamps = {p.parent.name: p.stat().st_mtime_ns for p in out.glob("jobs/*/record.json")}
    stored = schedule._store_outcome

    def store_then_stop(store, job, outcome):  # SIGTERM arrives while the rerun's first result is written
        stored(store, job, outcome)
        os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(schedule, "_store_outcome", store_then_stop)
    capsys.readouterr()
    assert run_in_process(*args, "--rerun") == 128 + signal.SIGTERM
    err = capsys.readouterr().err
    monkeypatch.setattr(schedule, "_store_outcome", stored)
    resume = shlex.split(err.strip().splitlines()[-1])
    assert resume[1:3] == ["-m", "harness"] and "--rerun" not in resume
    redone = {p.parent.name for p in out.glob("jobs/*/record.json") if p.stat().st_mtime_ns != stamps[p.parent.name]}
    assert len(redone) == 1  # the rerun finished one job before the signal
    assert run_in_process(*resume[3:]) == 0
    lines = capsys.readouterr().out
    assert "1 job(s) run" not in lines and "2 job(s) run, 1 already done" in lines, lines
    after = {p.parent.name: p.stat().st_mtime_ns for p in out.glob("jobs/*/record.json")}
    assert all(after[job] != stamps[job] for job in after)  # every job now comes from the rerun
    assert not list(out.glob("*rerun*"))  # nothing left to resume
    assert run_in_process(*resume[3:]) == 0 and "0 job(s) run, 3 already done" in capsys.readouterr().out


def test_another_sweep_on_other_categories_is_refused_too(tmp_path):
    """No category in common: the settings every category shares still tell the sweeps apart."""
    from harness.errors import HarnessError
    from harness.store import RunStore
    from harness.sweep.plan import Sweep

    data = make_dataset(tmp_path / "data")
    store = RunStore(tmp_path / "run")

    def prepare(category: str, epochs: int, profile: str = "demo") -> None:
        sweep = Sweep(dataset="folder", root=str(data), categories=(category,), profile=profile)
        sweep.overrides = {"epochs": epochs, "image_size": 64}
        store.prepare({"settings": sweep.resolve().settings})

    prepare("amber", 2)
    with pytest.raises(HarnessError, match="epochs 1 vs 2"):
        prepare("slate", 1)
    with pytest.raises(HarnessError, match="backbone wide_resnet50_2 vs resnet18"):
        prepare("slate", 2, profile="paper")
    prepare("slate", 2)  # another category of the same sweep
    with pytest.raises(HarnessError, match="epochs 3 vs 2"):
        prepare("amber", 3)  # the folder still knows amber's settings


def test_a_rerun_asked_for_by_a_sweep_file_says_to_turn_it_off_to_resume(tmp_path, data, capsys, monkeypatch):
    out, sweep = tmp_path / "run", tmp_path / "sweep.toml"
    sweep.write_text("rerun = true\n")
    args = ["run", *ONE, "--root", str(data), "--out", str(out), "--sweep", str(sweep)]
    stored = schedule._store_outcome

    def store_then_stop(store, job, outcome):
        stored(store, job, outcome)
        os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(schedule, "_store_outcome", store_then_stop)
    assert run_in_process(*args) == 128 + signal.SIGTERM
    err = capsys.readouterr().err
    assert f"set rerun = false in {sweep}" in err, err
