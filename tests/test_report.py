"""Report tables from hand-written records: golden Markdown and LaTeX, LaTeX structure, notes, numbers.

Regenerate the golden files after an intended change with UPDATE_GOLDEN=1 and review the diff.
"""

import os
import re
from pathlib import Path

import pytest

from harness.report import tables
from harness.report.build import build_report
from harness.report.commands import write_report

from report_fixtures import golden_run, random_teacher_run, write_record

GOLDEN = Path(__file__).parent / "golden"


@pytest.fixture
def runs(tmp_path, monkeypatch):
    """Two run folders, given by relative paths as a user would type them."""
    monkeypatch.chdir(tmp_path)
    golden_run(tmp_path / "demo-run")
    random_teacher_run(tmp_path / "quick-run")
    return "demo-run", "quick-run"


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(text)
    assert text == path.read_text(), f"output differs from {path}; rerun with UPDATE_GOLDEN=1 if intended"


def test_markdown_golden_two_seeds_vs_reference(runs):
    report = build_report([runs[0]], vs="rd4ad_rerun_official")
    check_golden("report_vs_reference.md", tables.markdown(report))


def test_latex_golden_two_seeds_vs_reference(runs):
    report = build_report([runs[0]], vs="rd4ad_rerun_official", caption="RD on MVTec AD: ours vs the official code",
                          label="tab:rd-mvtec")
    check_golden("report_vs_reference.tex", tables.latex(report))


def _unescaped(text: str, char: str) -> int:
    return len(re.findall(r"(?<!\\)" + re.escape(char), text))


@pytest.mark.parametrize("vs", ["rd4ad_rerun_official", "quick-run", None])
def test_latex_is_well_formed(runs, vs):
    report = build_report([runs[0]], vs=Path(vs) if vs == "quick-run" else vs)
    text = tables.latex(report)
    assert _unescaped(text, "{") == _unescaped(text, "}")
    depth = 0
    for char in re.sub(r"\\[{}]", "", text):  # never more closing than opening braces at any point
        depth += {"{": 1, "}": -1}.get(char, 0)
        assert depth >= 0
    assert text.count("$") % 2 == 0
    assert [line for line in text.splitlines() if line in (r"\toprule", r"\midrule", r"\bottomrule")] == \
        [r"\toprule", r"\midrule", r"\midrule", r"\bottomrule"]
    assert r"\begin{table}" in text and r"\end{table}" in text and r"\begin{tabular}" in text
    assert "metal\\_nut & " in text and not re.search(r"(?<!\\)_", text.split("\\begin{tabular}")[1])
    columns = len(re.search(r"\\begin\{tabular\}\{(\w+)\}", text).group(1))
    body = text.split("\\midrule\n", 1)[1].split("\\bottomrule")[0]
    for row in [line for line in body.splitlines() if line.endswith(r"\\")]:
        assert _unescaped(row, "&") == columns - 1, row  # every row fills every column


def test_numbers_mean_std_difference_and_bold(runs):
    report = build_report([runs[0]], vs="rd4ad_rerun_official")
    a, b = report.sides
    bottle = report.cell("bottle", "image_auroc", a)
    assert bottle.mean == pytest.approx(0.999) and bottle.std == pytest.approx(0.0014142, abs=1e-6) and bottle.n == 2
    # the mean row's spread is that of the per-seed means over categories: seed 0 (1.0 + 0.9921) / 2, seed 1 (0.998 + 0.9957) / 2
    mean = report.cell("mean", "image_auroc", a)
    assert mean.mean == pytest.approx(0.99645) and mean.std == pytest.approx(0.00056569, abs=1e-7)
    # the reference's mean is recomputed over the run's two categories, the published one kept for the note
    assert report.cell("mean", "image_auroc", b).mean == pytest.approx(1.0)
    assert b.published_means["image_auroc"] == pytest.approx(0.9869)
    assert report.delta("metal_nut", "pixel_auroc", b) == pytest.approx(0.9695 - 0.973)
    assert report.best("bottle", "image_auroc") == {"B"}
    assert report.cell("bottle", "au_pro", b) is None  # the paper's PRO is another metric: never paired with AU-PRO
    text = tables.markdown(report)
    assert "| metal_nut  |    99.4 ± 0.3 |     **100.0** |             -0.6 |" in text


def test_notes_flag_definitions_and_protocol_differences(runs):
    notes = "\n".join(build_report([runs[0]], vs="rd4ad_rerun_official").notes)
    assert "B reports PRO (RD4AD) [pro_rd4ad], not AU-PRO [au_pro]: different metrics" in notes
    assert "python -m harness rescore demo-run --metrics pro_rd4ad" in notes
    assert "AU-PRO [au_pro]: AU-PRO, MVTec AD definition" in notes
    notes = "\n".join(build_report([runs[0]], vs="rdpp_paper").notes)
    # the official RD++ evaluation (utils/utils_test.py) computes RD4AD's per-image PRO, not the AU-PRO
    assert "B reports PRO (RD4AD) [pro_rd4ad], not AU-PRO [au_pro]: different metrics" in notes
    assert "B protocol: RD++ modifies RD4AD" in notes
    assert "the epoch with the best mean of I-AUROC, P-AUROC and PRO: model selection on test data" in notes
    assert "Different definition: I-AUROC" not in notes  # the same definition is not flagged


def test_run_vs_run_flags_random_teacher_and_settings(runs):
    report = build_report([runs[0]], vs=Path(runs[1]))
    text = tables.markdown(report)
    assert "- B†: run quick-run" in text
    assert "† B: randomly initialised teacher (weights none): not comparable to published numbers." in text
    assert "Settings differ between runs: backbone (A wide_resnet50_2, B resnet18); weights (A imagenet, B none); " \
           "epochs (A 200, B 12)." in text
    assert "n/a = no anomalous pixel in the test set: B metal_nut P-AUROC." in text
    assert "The mean P-AUROC of B is over the 1 of its 2 categories where it is defined." in text
    assert "| bottle     | **99.9** ± 0.1 |          90.0 |" in text
    latex = tables.latex(report)
    assert "B$^\\dagger$ & $\\Delta$(A$-$B)" in latex


def test_definitions_that_differ_between_runs_are_a_note(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_record(tmp_path / "old", "bottle", 0, {"au_pro": 0.9})
    write_record(tmp_path / "new", "bottle", 0, {"au_pro": 0.8}, definitions={"au_pro": "AU-PRO, anomalib <= 2.2"})
    notes = build_report(["old"], vs=Path("new")).notes
    assert 'Different definition: AU-PRO of B is "AU-PRO, anomalib <= 2.2", not that of A.' in notes


def test_single_run_table_and_files(runs, tmp_path):
    report = build_report([runs[1]])
    text = tables.markdown(report)
    assert text.splitlines()[2] == "| category   |   I-AUROC |   P-AUROC |   AU-PRO |"
    assert "| metal_nut  |      85.0 |       n/a |     70.0 |" in text
    assert "Run quick-run†: mvtec; rd, profile demo; resnet18, weights none" in text
    assert "not comparable to published numbers" in text
    written = write_report(report, tmp_path / "out", ["md", "latex", "csv"])
    assert [p.name for p in written] == ["report.md", "report.tex", "report.csv"]
    rows = (tmp_path / "out" / "report.csv").read_text().splitlines()
    assert rows[0].startswith("category,metric,side,name,kind,dataset,value,std,n")
    assert "bottle,image_auroc,A,quick-run,run,mvtec,0.9,,1,," in rows[1]


def test_only_requested_metrics_in_requested_order(runs):
    report = build_report([runs[0]], metrics=["au_pro", "image_auroc"])
    header = [name.strip() for name in tables.markdown(report).splitlines()[2].split("|")]
    assert header[1:-1] == ["category", "AU-PRO", "I-AUROC"]
