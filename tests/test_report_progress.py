"""A report of a run still in progress, interrupted or with failed jobs says so, in every format."""

import csv
import io

from harness.cli import main
from harness.report import tables
from harness.report.build import build_report
from harness.report.html import page
from harness.report.latex import render
from harness.store import write_json

from report_fixtures import dataset_run

PLANNED = [f"{c}-s{s}-mvte200im" for c in ("bottle", "grid", "wood") for s in (0, 1)]


def interrupted_run(tmp_path):
    """Six jobs planned; bottle and grid finished (both seeds); wood seed 0 failed, seed 1 never ran."""
    run = dataset_run(tmp_path / "run", "mvtec", ["bottle", "grid"], seeds=(0, 1))
    write_json(run / "sweep.json", {"jobs": PLANNED, "records": PLANNED})
    write_json(run / "jobs" / "wood-s0-mvte200im" / "failure.json", {"error": "out of memory"})
    return run


SAID = "4 of 6 planned jobs finished; missing: wood-s0-mvte200im (failed), wood-s1-mvte200im"


def test_every_format_says_what_is_missing(tmp_path):
    report = build_report([interrupted_run(tmp_path)])
    assert SAID in tables.markdown(report)
    assert SAID in tables.markdown(report, "short")
    assert SAID.replace("_", r"\_") in render(report, "compact", "short").text
    assert SAID in page(report)
    rows = list(csv.DictReader(io.StringIO(tables.csv_text(report))))
    assert {(r["jobs_finished"], r["jobs_planned"], r["jobs_missing"]) for r in rows} == {
        ("4", "6", "wood-s0-mvte200im wood-s1-mvte200im")
    }


def test_a_complete_run_says_nothing_and_report_warns_when_incomplete(tmp_path, capsys):
    run = interrupted_run(tmp_path)
    done = PLANNED[:4]
    write_json(run / "sweep.json", {"jobs": done, "records": done})
    assert "planned jobs" not in tables.markdown(build_report([run]), "full")
    write_json(run / "sweep.json", {"jobs": PLANNED, "records": PLANNED})
    assert main(["report", str(run), "--format", "md", "--out", str(tmp_path / "out")]) == 0
    err = capsys.readouterr().err
    assert f"warning: {run} is incomplete: {SAID}" in err
