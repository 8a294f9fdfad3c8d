"""`python -m harness report` as a user runs it (in-process through harness.cli.main): output, files, and one-line
errors (rescore: test_rescore.py)."""

import re
import subprocess
from pathlib import Path

import pytest

from cli_fixtures import run_cli
from report_fixtures import golden_run


def harness(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return run_cli(*args, cwd=cwd)


def test_report_prints_markdown_and_writes_files(tmp_path):
    golden_run(tmp_path / "demo-run")
    result = harness("report", "demo-run", "--vs", "rd4ad_rerun_official", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    written = tmp_path / "demo-run" / "report"
    assert result.stdout == (written / "report.md").read_text()
    assert result.stdout == (Path(__file__).parent / "golden" / "report_vs_reference.md").read_text()
    assert {p.name for p in written.iterdir()} == {"report.md", "report.tex", "report.csv"}
    assert "written: demo-run/report/report.md" in result.stderr

    only_latex = harness("report", "demo-run", "--format", "latex", "--out", "paper", cwd=tmp_path)
    assert only_latex.returncode == 0, only_latex.stderr
    assert [p.name for p in (tmp_path / "paper").iterdir()] == ["report.tex"]


def test_report_flags_for_a_paper(tmp_path):
    """Several --vs, --name, a layout and its width, notes and std, in one table."""
    golden_run(tmp_path / "demo-run")
    golden_run(tmp_path / "other-run")
    result = harness(
        "report",
        "demo-run",
        "--vs",
        "other-run",
        "--vs",
        "rd4ad_rerun_official",
        "--vs",
        "anomalib_rd",
        "--name",
        "Ours",
        "--name",
        "other-run=Again",
        "--layout",
        "wide",
        "--notes",
        "none",
        "--no-std",
        "--format",
        "latex,md",
        "--out",
        "paper",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    text = (tmp_path / "paper" / "report.tex").read_text()
    assert r"\begin{table*}" in text and r"\smallskip" not in text and r"\pm" not in text.split("tabular")[1]
    assert re.search(r"\\label\{tab:mvtec-ours-[0-9a-f]{6}-wide\}", text)  # default label: comparison and layout
    for name in ("Ours", "Again", "Official re-run", "anomalib RD"):
        assert rf"\multicolumn{{3}}{{c}}{{{name}}}" in text or rf"\multicolumn{{2}}{{c}}{{{name}}}" in text, name
    assert "**Ours vs. Again, Official re-run and anomalib RD on MVTec AD" in result.stdout
    assert "Notes:" not in result.stdout

    too_wide = harness(
        "report",
        "demo-run",
        "--vs",
        "other-run",
        "--vs",
        "rd4ad_rerun_official",
        "--vs",
        "anomalib_rd",
        "--format",
        "latex",
        "--layout",
        "compact",
        "--width",
        "2",
        "--out",
        "narrow",
        cwd=tmp_path,
    )
    assert too_wide.returncode == 2, too_wide.stderr
    assert too_wide.stderr.startswith("error: the compact LaTeX table would be about ")
    assert "more than the 2 in it is made for; use --layout auto" in too_wide.stderr
    assert len(too_wide.stderr.splitlines()) == 1 and not (tmp_path / "narrow").exists()  # nothing written


def _corrupt(run: Path) -> None:
    golden_run(run)
    next(run.glob("jobs/metal_nut-s1-*/record.json")).write_text('{"dataset": "mvtec", "category": ')


def _no_metrics(run: Path) -> None:
    golden_run(run)
    next(run.glob("jobs/bottle-s0-*/record.json")).write_text('{"dataset": "mvtec", "category": "bottle"}')


@pytest.mark.parametrize(
    "prepare, args, message",
    [
        (lambda run: (run / "jobs" / "x").mkdir(parents=True), ["report", "run"], "run: no finished jobs"),
        (golden_run, ["report", "run", "--vs", "rd5ad_paper"], "unknown reference 'rd5ad_paper'; known references: "),
        (
            golden_run,
            ["report", "run", "--metrics", "image_auroc,pixel_aucroc"],
            "unknown metric 'pixel_aucroc'; known metrics: ",
        ),
        (golden_run, ["report", "run", "--vs", "novelty"], "reference 'novelty' has no numbers for data set 'mvtec'"),
        (_corrupt, ["report", "run"], "record.json: not a valid JSON record"),
        (_no_metrics, ["report", "run"], "record.json: corrupt record ('metrics' missing or not an object)"),
        (golden_run, ["report", "run", "--format", "md,docx"], "unknown format 'docx'"),
        (
            golden_run,
            ["report", "run", "--vs", "rd4ad_paper", "--name", "a", "--name", "b", "--name", "c"],
            "3 --name given for 2 runs and references",
        ),
        (
            golden_run,
            ["report", "run", "--vs", "rd4ad_paper", "--name", "no/such=X"],
            "--name no/such=X: 'no/such' is none of the runs or references compared",
        ),
    ],
    ids=[
        "no-finished-jobs",
        "unknown-reference",
        "unknown-metric",
        "reference-other-dataset",
        "corrupt-json",
        "corrupt-record",
        "unknown-format",
        "too-many-names",
        "unknown-name-target",
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, prepare, args, message):
    prepare(tmp_path / "run")
    result = harness(*args, cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: "), result.stderr
    assert message in result.stderr
    assert result.stdout == ""
