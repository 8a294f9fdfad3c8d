"""What a killed command leaves is removed by the next run of the same command: rescore's temporary record
files, the staging folders of a killed synthetic-data generation, a killed report's scratch folders.
Another process's work in progress is left alone."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.cli import main
from harness.datasets import synthetic

from report_fixtures import plot_run


@pytest.fixture(scope="module")
def dead_pid() -> int:
    """The pid of a process that has ended (a writer killed mid-write)."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_a_killed_rescores_temporary_record_is_removed_by_the_next_rescore(tmp_path, dead_pid, capsys):
    run = plot_run(tmp_path, categories=("disc",), seeds=(0,), size=16, images_on_disk=False)
    job = next(run.glob("jobs/*/record.json")).parent
    leftover = job / f".record.json.{dead_pid}-k1ll3d.tmp"
    leftover.write_text("{half a rec")
    live = job / f".record.json.{os.getpid()}-wr1t1ng.tmp"  # a live process's write in progress
    live.write_text("{")
    assert main(["rescore", str(run)]) == 0
    assert not leftover.exists() and live.exists()


def test_a_killed_generations_staging_folders_are_removed_by_the_next_generation(tmp_path, dead_pid, monkeypatch):
    def tiny(root: Path) -> None:
        (root / "disc").mkdir(parents=True)

    monkeypatch.setattr(synthetic, "generate", tiny)
    root = tmp_path / "synthetic"
    killed = tmp_path / ".synthetic-a1b2c3d4"  # mkdtemp's name for the staging folder of a killed generation
    (killed / "disc" / "train").mkdir(parents=True)
    other = tmp_path / ".synthetic-v2-a1b2c3d4"  # the staging folder of another root, not ours to remove
    other.mkdir()
    synthetic.ensure_generated(root)
    assert (root / ".complete").exists() and (root / "disc").is_dir()
    assert not killed.exists() and other.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".synthetic-v2-a1b2c3d4", ".synthetic.lock", "synthetic"]


def test_a_killed_reports_scratch_folders_are_removed_by_the_next_report(tmp_path, dead_pid):
    run = plot_run(tmp_path, categories=("disc",), seeds=(0,), size=16, images_on_disk=False)
    out = tmp_path / "report"
    killed = out / f".scratch.{dead_pid}-a1b2c3d4.tmp"
    (killed / "plots").mkdir(parents=True)
    live = out / f".scratch.{os.getpid()}-a1b2c3d4.tmp"
    live.mkdir()
    assert main(["report", str(run), "--out", str(out), "--format", "md,html"]) == 0
    assert not killed.exists() and live.exists()
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == [live.name]  # its own scratch is gone
