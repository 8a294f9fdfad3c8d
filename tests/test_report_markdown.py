"""Markdown layouts: the same choices as LaTeX, and a default that stays readable with several runs."""

import pytest

from harness.cli import main
from harness.order import MVTEC_OBJECTS, MVTEC_TEXTURES
from harness.report import tables
from harness.report.build import build_report

from report_fixtures import dataset_run


@pytest.fixture
def three_runs(tmp_path):
    """Three runs of MVTec AD (15 categories, 3 metrics, 2 seeds): 15 value and difference columns."""
    runs = [
        dataset_run(tmp_path / f"run{i}", "mvtec", MVTEC_TEXTURES + MVTEC_OBJECTS, offset=i / 100, epochs=100 + i)
        for i in range(3)
    ]
    return build_report(runs[:1], vs=runs[1:])


def table_lines(text: str) -> list[str]:
    return [line for line in text.split("\nNotes:")[0].splitlines() if line.startswith("|")]


def test_default_is_readable_with_three_runs(three_runs):
    wide = tables.markdown(three_runs, layout="wide")
    assert max(map(len, table_lines(wide))) > 250  # every column in one table
    default = tables.markdown(three_runs)
    assert default == tables.markdown(three_runs, layout="per-metric")
    assert max(map(len, table_lines(default))) <= 125
    assert default.count("| category ") == 3 and "*I-AUROC*" in default and "*AU-PRO*" in default


def test_each_layout_holds_the_same_numbers(three_runs):
    report = three_runs
    a, b = report.sides[:2]
    mean = tables.percent(report.cell("carpet", "pixel_auroc", a).mean)
    std = tables.percent(report.cell("carpet", "pixel_auroc", a).std)
    other = tables._value(report.cell("carpet", "pixel_auroc", b), False)
    delta = tables._delta(report.delta("carpet", "pixel_auroc", b, as_printed=True))
    per_metric = tables.markdown(report, layout="per-metric").split("*P-AUROC*")[1].split("*AU-PRO*")[0]
    bottle = next(line for line in per_metric.splitlines() if line.startswith("| carpet"))
    assert [c.strip().replace("*", "") for c in bottle.split("|")[1:4]] == ["carpet", f"{mean} ± {std}", other]
    assert bottle.split("|")[5].strip() == delta  # the columns: the 3 sides, then Δ vs each other
    transposed = tables.markdown(report, layout="transposed").split("*P-AUROC*")[1].split("*AU-PRO*")[0]
    rows = {line.split("|")[1].strip(): line.split("|")[2:-1] for line in table_lines(transposed)}
    assert rows[""][0].strip() == "carpet"  # categories as columns, runs and differences as rows
    assert rows[a.tag][0].strip().replace("*", "") == mean and rows[f"Δ {b.tag}"][0].strip() == delta
    compact = tables.markdown(report, layout="compact")
    assert f"{a.tag} I/P/PRO" in compact
    bottle = next(line for line in table_lines(compact) if line.startswith("| carpet"))
    assert bottle.split("|")[2].replace("*", "").strip().split("/")[1] == mean
    assert "Each cell: I-AUROC / P-AUROC / AU-PRO, in %" in compact


def test_layout_flag_applies_to_markdown(three_runs, tmp_path, capsys):
    run = three_runs.sides[0].path
    assert main(["report", str(run), "--format", "md", "--layout", "transposed", "--out", str(tmp_path / "t")]) == 0
    out = capsys.readouterr().out
    assert out == (tmp_path / "t" / "report.md").read_text() and "| Δ " not in out  # one run: no differences
    assert "| RD |" in out and "|   carpet |" in out
