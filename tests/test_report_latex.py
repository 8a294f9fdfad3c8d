"""LaTeX tables compiled by a real TeX engine: every layout fits the width it is made for.

MVTec AD (15 categories), VisA (12) and a 3-category run, each with three metrics and two runs beside
a reference, in a plain one-column article (compact) and in a two-column page of CVPR's geometry
(3.25 in columns, 6.875 in text; compact, wide and transposed). The log must show no overfull box.
Skipped when pdflatex or siunitx is missing (.ci/run installs them).
"""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from harness.errors import HarnessError
from harness.order import MVTEC_OBJECTS, MVTEC_TEXTURES, VISA
from harness.report import latex
from harness.report.build import build_report

from report_fixtures import dataset_run

ENGINE = shutil.which("pdflatex")
HAS_SIUNITX = bool(
    ENGINE
    and shutil.which("kpsewhich")
    and subprocess.run(["kpsewhich", "siunitx.sty"], capture_output=True, text=True).stdout.strip()
)
needs_tex = pytest.mark.skipif(not (ENGINE and HAS_SIUNITX), reason="pdflatex with siunitx not installed")

ARTICLE = r"""\documentclass{article}
\usepackage{booktabs,siunitx,graphicx}
\begin{document}
%s
\end{document}
"""
TWO_COLUMN = r"""\documentclass[twocolumn]{article}
\usepackage[textwidth=%(text)s,columnsep=%(sep)s,textheight=9in]{geometry}
\usepackage{booktabs,siunitx,graphicx}
\begin{document}
\typeout{COLUMNWIDTH=\the\columnwidth}
%(tables)s
\end{document}
"""
CVPR = {"text": "6.875in", "sep": "0.375in"}  # 3.25 in columns (CVPR/ICCV: 3.25-3.28 in)
IEEE = {"text": "7.16in", "sep": "0.16in"}  # 3.5 in columns
CASES = {
    "mvtec": ("mvtec", MVTEC_TEXTURES + MVTEC_OBJECTS, "rd4ad_rerun_official"),
    "visa": ("visa", VISA, "ader_visa_multiclass"),
    "three": ("mvtec", ("bottle", "grid", "wood"), "rd4ad_paper"),
}


def compile_tex(source: str, folder: Path) -> str:
    """The log of a pdflatex run (which must succeed)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "doc.tex").write_text(source)
    env = os.environ | {"TEXMFVAR": str(folder / "texmf-var")}  # nothing written outside the test folder
    result = subprocess.run(
        [ENGINE, "-interaction=nonstopmode", "-halt-on-error", "-no-shell-escape", "doc.tex"],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    log = (folder / "doc.log").read_text(errors="replace")
    assert result.returncode == 0, log[-3000:]
    return log


def overfull(log: str) -> list[str]:
    return re.findall(r"^(Overfull \\hbox .*)$", log, flags=re.MULTILINE)


def reports(tmp_path: Path, case: str):
    """One run beside a reference, and two runs (2 seeds and 1 seed) beside it; three metrics each."""
    dataset, categories, reference = CASES[case]
    dataset_run(tmp_path / "ours", dataset, categories, seeds=(0, 1))
    dataset_run(tmp_path / "short", dataset, categories, seeds=(0,), offset=0.03, epochs=50)
    return (
        build_report([tmp_path / "ours"], vs=reference),
        build_report([tmp_path / "ours"], vs=[tmp_path / "short", reference], names=["RD", "R&D_50%"]),
    )


def tables(report, layout, width=None) -> str:
    parts = []
    for notes in latex.NOTES:
        rendered = latex.render(report, layout, notes, width=width)
        assert rendered.fit.fits, rendered.fit
        parts.append(rendered.text.replace(report.label, f"{report.label}-{layout}-{notes}") + r"\clearpage")
    return "\n".join(parts)


@needs_tex
@pytest.mark.parametrize("case", list(CASES))
def test_every_layout_compiles_without_overfull_boxes(tmp_path, case):
    """compact: one run and a reference in 3.25 in, two runs and a reference in 3.5 in; wide and transposed:
    two runs and a reference in 6.875 in; compact also in a plain one-column article."""
    pair, three = reports(tmp_path, case)
    article = compile_tex(ARTICLE % (tables(pair, "compact") + tables(three, "compact", 3.5)), tmp_path / "article")
    assert overfull(article) == []
    cvpr = compile_tex(
        TWO_COLUMN % (CVPR | {"tables": tables(pair, "compact") + tables(three, "wide") + tables(three, "transposed")}),
        tmp_path / "cvpr",
    )
    assert "COLUMNWIDTH=234.8775pt" in cvpr  # 3.25 in
    assert overfull(cvpr) == []
    ieee = compile_tex(TWO_COLUMN % (IEEE | {"tables": tables(three, "compact", 3.5)}), tmp_path / "ieee")
    assert "COLUMNWIDTH=252.94499pt" in ieee  # 3.5 in
    assert overfull(ieee) == []
    for log in (article, cvpr, ieee):
        assert "multiply defined" not in log  # every table has its own label


@needs_tex
def test_estimated_widths_match_tex(tmp_path):
    """The width estimate that picks font sizes is within a few percent of what TeX sets, and not below it."""
    boxes = []
    pair, three = reports(tmp_path, "mvtec")
    for report in (pair, three, *latex.per_metric_reports(three)):  # per-metric: compact tables of one metric
        for layout in ("compact", "wide", "transposed"):
            text = latex.render(report, layout, "none").text
            tabular = text[text.index(r"\begin{tabular}") : text.rindex(r"\end{tabular}") + len(r"\end{tabular}")]
            fit = latex.plan(report, layout)
            name = f"{layout}{len(boxes)}"
            box = (
                rf"\setbox0\hbox{{\{fit.size}\setlength{{\tabcolsep}}{{{fit.tabcolsep:g}pt}}"
                rf"{latex.SISETUP}{tabular}}}\typeout{{WIDTH {name}=\the\wd0}}"
            )
            boxes.append((name, fit.width, box))
    log = compile_tex(ARTICLE % "\n".join(box for *_, box in boxes), tmp_path / "measure")
    for name, estimate, _ in boxes:
        measured = float(re.search(rf"WIDTH {name}=([\d.]+)pt", log).group(1))
        assert 0.98 * measured <= estimate <= 1.06 * measured, (name, estimate, measured)


@needs_tex
def test_golden_tables_compile(tmp_path):
    """The committed golden tables, as a reader would \\input them."""
    golden = Path(__file__).parent / "golden"
    tables_ = [(golden / name).read_text() + r"\clearpage" for name in sorted(p.name for p in golden.glob("*.tex"))]
    log = compile_tex(TWO_COLUMN % (CVPR | {"tables": "\n".join(tables_)}), tmp_path / "golden")
    assert overfull(log) == [] and len(tables_) >= 4


STATED = re.compile(r"made for \\(columnwidth|textwidth) >= ([\d.]+) in")


def stated_width_reports(tmp_path: Path):
    """Four metrics beside the official re-run (one run); three runs and a reference; five runs."""
    every = MVTEC_TEXTURES + MVTEC_OBJECTS
    four = ("image_auroc", "pixel_auroc", "au_pro", "pro_rd4ad")
    dataset_run(tmp_path / "four", "mvtec", every, metrics=four)
    for i in range(5):
        dataset_run(tmp_path / f"r{i}", "mvtec", every, seeds=(0, 1) if i < 3 else (0,), offset=i / 100, epochs=10 + i)
    runs = [tmp_path / f"r{i}" for i in range(5)]
    return [
        build_report([tmp_path / "four"], vs="rd4ad_rerun_official"),
        build_report(runs[:1], vs=[*runs[1:3], "rd4ad_rerun_official"]),
        build_report(runs[:1], vs=runs[1:]),
    ]


def stated_tables(reports) -> dict[tuple[str, str], list[str]]:
    """(\\columnwidth or \\textwidth, inches) -> the tables that state it, from every layout that is not refused."""
    found: dict[tuple[str, str], list[str]] = {}
    for r, report in enumerate(reports):
        for layout in ("auto", *latex.AUTO):
            for width in (None, 3.5):
                try:
                    text = latex.render(report, layout, "short", width=width).text
                except HarnessError:
                    assert layout != "auto", "auto found no layout"
                    continue
                tables_ = text.split("% Written by")[1:]
                for t, table in enumerate(tables_):
                    line, inches = STATED.search(table).groups()
                    label = f"r{r}-{layout}-{width}-{t}"
                    table = re.sub(r"\\label\{[^}]*\}", rf"\\label{{{label}}}", table)
                    found.setdefault((line, inches), []).append("% Written by" + table + r"\clearpage")
    return found


def test_the_issue_table_is_never_written_wider_than_stated(tmp_path):
    """Without TeX: four metrics beside the official re-run do not fit 3.25 in as one compact table; compact
    is refused, auto picks a layout whose estimate fits, and every table states a width it fits by estimate."""
    four = stated_width_reports(tmp_path)[0]
    with pytest.raises(HarnessError, match="compact LaTeX table would be about"):
        latex.render(four, "compact")
    assert latex.choose_layout(four).layout == "per-metric"
    for layout in latex.AUTO:
        fit = latex.plan(four, layout)
        if layout != "compact":
            assert fit.fits and fit.width <= latex.SAFETY * latex.TARGET_IN[layout] * latex.POINTS_PER_INCH


@needs_tex
def test_each_table_fits_the_width_it_states(tmp_path):
    """Every table, in every layout that is not refused, compiled where its column (table) or text (table*) is
    exactly the width its header states: no overfull box."""
    found = stated_tables(stated_width_reports(tmp_path))
    assert ("columnwidth", "3.25") in found and ("textwidth", "6.875") in found and ("columnwidth", "3.5") in found
    for (line, inches), tables_ in found.items():
        width = float(inches)
        if line == "columnwidth":  # two columns of exactly that width
            geometry = {"text": f"{2 * width + 0.25}in", "sep": "0.25in"}
        else:  # table* spans the text: exactly that width
            geometry = {"text": f"{width}in", "sep": "0.25in"}
        log = compile_tex(TWO_COLUMN % (geometry | {"tables": "\n".join(tables_)}), tmp_path / f"{line}-{inches}")
        if line == "columnwidth":
            stated = float(re.search(r"COLUMNWIDTH=([\d.]+)pt", log).group(1))
            assert abs(stated - width * 72.27) < 0.01, (stated, width)
        assert overfull(log) == [], (line, inches)
