"""Report tables from hand-written records: golden Markdown and LaTeX, LaTeX structure, notes, numbers.

Regenerate the golden files after an intended change with UPDATE_GOLDEN=1, review the diff, and compile
them (tests/test_report_latex.py compiles them when pdflatex is installed).
"""

import os
import re
from pathlib import Path

import pytest

from harness.errors import HarnessError
from harness.order import MVTEC_OBJECTS, MVTEC_TEXTURES, arrange
from harness.report import latex, tables
from harness.report.build import build_report
from harness.report.commands import write_report

from report_fixtures import dataset_run, golden_run, random_teacher_run, write_record

GOLDEN = Path(__file__).parent / "golden"
LAYOUT_GOLDEN = {
    "compact": "report_three_compact.tex",
    "wide": "report_three_wide.tex",
    "transposed": "report_three_transposed.tex",
}


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


def three_sides(runs):
    """Two runs and a reference: the case the layouts are made for."""
    return build_report(
        [runs[0]],
        vs=[Path(runs[1]), "rd4ad_rerun_official"],
        names=["RD (ours)", "RD (12 ep.)"],
        caption="RD on MVTec AD: ours, a short run and the official code",
        label="tab:rd-mvtec",
    )


def test_markdown_golden_two_seeds_vs_reference(runs):
    report = build_report([runs[0]], vs="rd4ad_rerun_official")
    check_golden("report_vs_reference.md", tables.markdown(report))


def test_latex_golden_two_seeds_vs_reference(runs):
    report = build_report(
        [runs[0]], vs="rd4ad_rerun_official", caption="RD on MVTec AD: ours vs the official code", label="tab:rd-mvtec"
    )
    check_golden("report_vs_reference.tex", tables.latex(report))


@pytest.mark.parametrize("layout", list(LAYOUT_GOLDEN))
def test_latex_golden_every_layout(runs, layout):
    check_golden(LAYOUT_GOLDEN[layout], latex.render(three_sides(runs), layout).text)


def _unescaped(text: str, char: str) -> int:
    return len(re.findall(r"(?<!\\)" + re.escape(char), text))


@pytest.mark.parametrize("layout", latex.LAYOUTS)
@pytest.mark.parametrize("vs", ["rd4ad_rerun_official", "quick-run", None])
def test_latex_is_well_formed(runs, vs, layout):
    report = build_report([runs[0]], vs=Path(vs) if vs == "quick-run" else vs)
    text = latex.render(report, layout, "full").text
    assert _unescaped(text, "{") == _unescaped(text, "}")
    depth = 0
    for char in re.sub(r"\\[{}]", "", text):  # never more closing than opening braces at any point
        depth += {"{": 1, "}": -1}.get(char, 0)
        assert depth >= 0
    assert text.count("$") % 2 == 0
    tables_ = len(report.metrics) if layout == "per-metric" else 1
    assert text.count(r"\toprule") == tables_ and text.count(r"\bottomrule") == tables_
    environment = "table" if layout in ("compact", "per-metric") else "table*"
    assert rf"\begin{{{environment}}}" in text and rf"\end{{{environment}}}" in text and r"\begin{tabular}" in text
    assert r"\resizebox" not in text
    body = text.split("\\begin{tabular}", 1)[1]
    assert "Metal nut" in body and not re.search(r"(?<!\\)_", body)
    assert "image_auroc" not in text and "au_pro" not in text  # no internal identifiers in a paper


def test_numbers_mean_std_difference_and_bold(runs):
    report = build_report([runs[0]], vs="rd4ad_rerun_official")
    a, b = report.sides
    bottle = report.cell("bottle", "image_auroc", a)
    assert bottle.mean == pytest.approx(0.999) and bottle.std == pytest.approx(0.0014142, abs=1e-6) and bottle.n == 2
    # the mean row's spread is that of the per-seed means over categories:
    # seed 0 (1.0 + 0.9921) / 2, seed 1 (0.998 + 0.9957) / 2
    mean = report.cell("mean", "image_auroc", a)
    assert mean.mean == pytest.approx(0.99645) and mean.std == pytest.approx(0.00056569, abs=1e-7)
    # the reference's mean is recomputed over the run's two categories, the published one kept for the note
    assert report.cell("mean", "image_auroc", b).mean == pytest.approx(1.0)
    assert b.published_means["image_auroc"] == pytest.approx(0.9869)
    assert report.delta("metal_nut", "pixel_auroc", b) == pytest.approx(0.9695 - 0.973)
    assert report.best("bottle", "image_auroc") == set()  # a published number is never bold unless asked
    assert build_report([runs[0]], vs="rd4ad_rerun_official", bold="all").best("bottle", "image_auroc") == {"B"}
    assert report.cell("bottle", "au_pro", b) is None  # the paper's PRO is another metric: never paired with AU-PRO
    text = tables.markdown(report, layout="wide")
    assert "| metal_nut  |   99.4 ± 0.3 |                     100.0 |                           -0.6 |" in text
    assert "**" not in text.split("Notes:")[0].split("\n", 2)[2]


def test_bold_marks_the_best_run_only(runs):
    report = three_sides(runs)
    assert report.best("bottle", "image_auroc") == {"A"}  # 99.9 beats 90.0; the reference's 100.0 does not count
    text = latex.render(report, "wide").text
    reference_row = next(line for line in text.splitlines() if line.startswith("Bottle"))
    assert reference_row.count(r"\bfseries") == 3 and r"\bfseries 100.0" not in reference_row


def test_names_headers_caption_and_unique_labels(runs):
    default = build_report([runs[0]], vs=[Path(runs[1]), "rd4ad_rerun_official"])
    assert [s.tag for s in default.sides] == ["RD (paper)", "RD (demo)†", "Official re-run"]  # told apart by profile
    assert default.caption == (
        "RD (paper) vs. RD (demo)† and Official re-run on MVTec AD: I-AUROC, P-AUROC and AU-PRO per category (%)."
    )
    named = build_report(
        [runs[0]],
        vs=[Path(runs[1]), "rd4ad_rerun_official"],
        names=["quick-run=Short", "rd4ad_rerun_official=Official", "Ours"],
    )
    assert [s.tag for s in named.sides] == ["Ours", "Short†", "Official"]
    text = latex.render(named, "wide").text
    assert r"\multicolumn{3}{c}{Ours}" in text and r"Short$^\dagger$" in text and "{A}" not in text
    other = build_report([runs[0]], vs="rd4ad_paper")
    assert default.label != other.label != build_report([runs[0]]).label
    assert re.fullmatch(r"tab:mvtec-rd-paper-[0-9a-f]{6}", default.label)
    with pytest.raises(HarnessError, match="3 --name given for 2 runs and references"):
        build_report([runs[0]], vs="rd4ad_paper", names=["a", "b", "c"])


def test_categories_in_the_papers_order_with_group_means(tmp_path):
    run = dataset_run(tmp_path / "all", "mvtec", sorted(MVTEC_TEXTURES + MVTEC_OBJECTS), seeds=(0,))
    report = build_report([run], vs="rd4ad_rerun_official")
    assert report.rows == [*MVTEC_TEXTURES, "mean_textures", *MVTEC_OBJECTS, "mean_objects", "mean"]
    a, b = report.sides
    textures = [report.cell(c, "image_auroc", a).mean for c in MVTEC_TEXTURES]
    assert report.cell("mean_textures", "image_auroc", a).mean == pytest.approx(sum(textures) / 5)
    assert report.cell("mean_objects", "pixel_auroc", b).mean == pytest.approx(
        sum([0.987, 0.972, 0.987, 0.989, 0.973, 0.981, 0.996, 0.991, 0.923, 0.982]) / 10
    )
    text = latex.render(report, "compact").text
    order = [line.split(" &")[0] for line in text.splitlines() if " & " in line and "multicolumn" not in line]
    assert order[:6] == ["Carpet", "Grid", "Leather", "Tile", "Wood", "Tex. mean"] and order[-1] == "Mean"
    # one group with a single category has no mean row: the table is flat
    assert arrange("mvtec", ["bottle", "grid", "wood"]) == [(None, ["grid", "wood", "bottle"])]
    assert arrange("visa", ["pcb1", "candle"]) == [(None, ["candle", "pcb1"])]


def test_mean_over_fewer_categories_is_marked(tmp_path):
    run = dataset_run(tmp_path / "three", "mvtec", ["bottle", "grid", "wood"], seeds=(0,))
    report = build_report([run], vs="rd4ad_paper")
    assert report.fewer_categories("mean", "image_auroc", report.sides[0])
    assert not report.fewer_categories("mean", "image_auroc", report.sides[1])
    text = latex.render(report, "compact").text
    assert r"Mean\textsuperscript{*} &" in text
    assert (
        "Means over different numbers of categories, not directly comparable: RD 3, RD4AD paper 15 (as published)."
        in text
    )
    assert re.search(r"\| Mean\\\* +\|", tables.markdown(report))


def test_short_notes_are_short_and_full_notes_complete(runs):
    report = three_sides(runs)
    short = latex.render(report, "compact", "short").text
    full = latex.render(report, "compact", "full").text
    none = latex.render(report, "compact", "none").text
    assert r"\smallskip" not in none
    notes = short.split(r"\smallskip")[1]
    assert notes.count(r"\par") <= 5 < full.split(r"\smallskip")[1].count(r"\par")
    assert "randomly initialised teacher" in notes and "Settings differ between runs" in notes
    assert "TUK-AI-HC-LAB" not in notes and "TUK-AI-HC-LAB" in full  # sources only in the full notes
    assert "I-AUROC: image score" in full and "I-AUROC [" not in full  # labels once, no identifiers
    assert "Hint" not in full and "python -m harness" not in full.split("\n", 1)[1]


def test_notes_flag_definitions_and_protocol_differences(runs):
    notes = "\n".join(build_report([runs[0]], vs="rd4ad_rerun_official").note_lines("full"))
    assert "Official re-run reports PRO (RD4AD), not AU-PRO: different metrics, not compared." in notes
    assert "python -m harness rescore demo-run --metrics pro_rd4ad" in notes
    assert "AU-PRO: MVTec AD definition" in notes
    report = build_report([runs[0]], vs="rdpp_paper")
    notes = "\n".join(report.note_lines("full"))
    # the official RD++ evaluation (utils/utils_test.py) computes RD4AD's per-image PRO, not the AU-PRO
    assert "RD++ paper reports PRO (RD4AD), not AU-PRO: different metrics, not compared." in notes
    assert "the epoch with the best mean of I-AUROC, P-AUROC and PRO: model selection on test data" in notes
    short = "\n".join(report.note_lines("short"))
    assert "RD++ paper protocol: RD++ modifies RD4AD" in short
    assert "has another definition" not in short  # the same definitions are not flagged


def test_run_vs_run_flags_random_teacher_and_settings(runs):
    report = build_report([runs[0]], vs=Path(runs[1]))
    text = tables.markdown(report, layout="wide")
    assert "- RD (demo)†: this harness, run quick-run" in text
    assert "† randomly initialised teacher: not comparable to published numbers." in text
    assert (
        "Settings differ between runs: backbone (RD (paper) wide_resnet50_2, RD (demo)† resnet18); "
        "weights (RD (paper) imagenet, RD (demo)† none); epochs (RD (paper) 200, RD (demo)† 12)." in text
    )
    assert "n/a = no anomalous pixel in the test set: RD (demo)† Metal nut P-AUROC." in text
    assert "Mean P-AUROC of RD (demo)† over the 1 of its 2 categories where it is defined." in text
    assert "| bottle     |       **99.9** ± 0.1 |                 90.0 |                      +9.9 |" in text
    assert r"RD (demo)$^\dagger$" in latex.render(report, "wide").text


def test_definitions_that_differ_between_runs_are_a_note(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_record(tmp_path / "old", "bottle", 0, {"au_pro": 0.9})
    write_record(tmp_path / "new", "bottle", 0, {"au_pro": 0.8}, definitions={"au_pro": "AU-PRO, anomalib <= 2.2"})
    notes = build_report(["old"], vs=Path("new"), names=["old", "new"]).note_lines("short")
    assert "AU-PRO of new has another definition: anomalib <= 2.2." in notes


def test_std_shown_where_it_fits(runs):
    report = build_report([runs[0]], vs="rd4ad_rerun_official")
    assert latex.plan(report, "wide").std and r"99.9 \pm 0.1" in latex.render(report, "wide").text
    assert not latex.plan(report, "compact").std  # three metrics share a cell: no room
    assert "std in report.csv" in latex.render(report, "compact").text
    assert r"\pm" not in latex.render(report, "wide", std=False).text.split(r"\begin{tabular}")[1]
    single = build_report([runs[0]], metrics=["image_auroc"])
    assert latex.plan(single, "compact").std


def test_layout_that_cannot_fit_is_refused_and_auto_picks_one_that_fits(tmp_path):
    runs = [
        dataset_run(
            tmp_path / f"r{i}", "mvtec", MVTEC_TEXTURES + MVTEC_OBJECTS, seeds=(0,), offset=i / 100, epochs=10 + i
        )
        for i in range(5)
    ]
    report = build_report(runs[:1], vs=runs[1:])
    with pytest.raises(
        HarnessError, match=r"^the compact LaTeX table would be about [\d.]+ in wide, more than the 3.25 in"
    ):
        latex.render(report, "compact")
    rendered = latex.render(report, "auto")
    assert rendered.fit.fits and rendered.fit.layout == "per-metric"  # five runs: a table per metric fits a column
    with pytest.raises(HarnessError, match=r"^no LaTeX layout fits \(compact [\d.]+ in for 2 in, per-metric"):
        latex.render(report, "auto", width=2)


def test_single_run_table_and_files(runs, tmp_path):
    report = build_report([runs[1]])
    text = tables.markdown(report)
    assert text.splitlines()[2] == "| category   |   I-AUROC |   P-AUROC |   AU-PRO |"
    assert "| metal_nut  |      85.0 |       n/a |     70.0 |" in text
    assert "RD†: this harness, run quick-run (mvtec; rd, profile demo; resnet18, weights none" in text
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
