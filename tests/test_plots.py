"""`report --plots` from a tiny hand-made run (records, predictions.npz, images on disk; nothing trained)."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from harness.metrics import au_pro, pro_curve
from harness.order import MVTEC_OBJECTS, MVTEC_TEXTURES
from harness.report import plots
from harness.report.build import build_report

from report_fixtures import dataset_run, golden_run, plot_run

EXPECTED = ["per-category", "curves-disc", "curves-weave", "gallery-A-disc", "gallery-A-weave", "loss"]


def test_every_plot_is_written_as_png_and_pdf_with_truetype_fonts(tmp_path):
    run = plot_run(tmp_path, size=16)
    result = plots.make_plots(build_report([run]), tmp_path / "plots")
    assert result.notes == []
    assert sorted(p.name for p in result.files) == sorted(
        f"{stem}.{fmt}" for stem in EXPECTED for fmt in ("png", "pdf")
    )
    for path in result.files:
        assert path.read_bytes().startswith(b"\x89PNG\r\n\x1a\n" if path.suffix == ".png" else b"%PDF-"), path
        assert path.stat().st_size > 5000, path
    gallery = np.asarray(Image.open(tmp_path / "plots" / "gallery-A-disc.png").convert("RGB"))
    assert gallery.shape[0] > 300 and gallery.std() > 10  # a picture, not a blank page
    check_fonts(result)


def test_missing_images_skip_the_gallery_with_a_note(tmp_path):
    run = plot_run(tmp_path, categories=("disc",), seeds=(0,), images_on_disk=False)
    result = plots.make_plots(build_report([run]), tmp_path / "plots")
    names = {p.stem for p in result.files}
    assert names == {"per-category", "curves-disc", "loss"}
    assert result.notes == [f"gallery A disc skipped: 6 test image(s) not on disk under {tmp_path / 'data'}"]


def test_records_without_predictions_or_history_still_give_bars(tmp_path):
    run = golden_run(tmp_path / "demo-run")
    result = plots.make_plots(build_report([run], vs="rd4ad_paper"), tmp_path / "plots")
    assert {p.name for p in result.files} == {"per-category.png", "per-category.pdf"}
    assert "curves skipped for bottle, metal_nut: no predictions.npz in any run" in result.notes
    assert "gallery A skipped: no predictions.npz for bottle, metal_nut" in result.notes
    assert any(note.startswith("loss curves skipped") for note in result.notes)


def test_pro_curve_integrates_to_au_pro():
    """The PRO curve drawn is the one AU-PRO integrates (up to FPR 0.3, divided by 0.3)."""
    rng = np.random.default_rng(3)
    masks = rng.random((4, 12, 12)) > 0.8
    maps = np.round(rng.random((4, 12, 12)) + masks * 0.3, 2).astype(np.float32)  # ties included
    fpr, pro = pro_curve(maps, masks)
    keep = fpr < 0.3
    x, y = np.append(fpr[keep], 0.3), np.append(pro[keep], np.interp(0.3, fpr, pro))
    assert np.trapezoid(y, x) / 0.3 == pytest.approx(au_pro(maps, masks), abs=1e-9)


def test_gallery_rows_best_and_worst():
    scores = np.array([0.9, 0.1, 0.8, 0.3, 0.7, 0.2, 0.6])
    labels = np.array([1, 0, 1, 1, 0, 0, 1], dtype=bool)
    assert plots._pick(scores, labels) == [
        ("anomalous, highest scores (best)", [0, 2]),
        ("anomalous, lowest scores (worst)", [3, 6]),
        ("normal, highest scores (worst)", [4, 5, 1]),
    ]


def test_cli_report_with_plots_never_imports_torch(tmp_path):
    run = plot_run(tmp_path, categories=("disc",), seeds=(0,), size=16)
    code = (
        "import sys; from harness.cli import main; code = main(['report', sys.argv[1], '--plots', '--format', 'md']);"
        "assert 'torch' not in sys.modules, 'report imported torch'; raise SystemExit(code)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(run)], capture_output=True, text=True, timeout=120, env=os.environ.copy()
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("**RD† on synthetic data: I-AUROC, P-AUROC and AU-PRO per category (%).**")
    assert len(list((run / "report" / "plots").glob("*.pdf"))) == 4


def _type3_fonts(pdf: Path) -> list[str]:
    """Type 3 fonts of a PDF: pdffonts when installed, else the font dictionaries themselves."""
    if shutil.which("pdffonts"):
        listing = subprocess.run(["pdffonts", str(pdf)], capture_output=True, text=True, check=True).stdout
        return [line for line in listing.splitlines()[2:] if "Type 3" in line]
    return re.findall(rb"/Subtype\s*/Type3", pdf.read_bytes())


def check_fonts(result) -> None:
    """Every PDF figure embeds TrueType fonts, never Type 3 (IEEE PDF eXpress rejects them)."""
    pdfs = [p for p in result.files if p.suffix == ".pdf"]
    assert len(pdfs) == len(EXPECTED)
    for pdf in pdfs:
        assert _type3_fonts(pdf) == [], pdf
        assert b"/FontFile2" in pdf.read_bytes(), pdf  # TrueType, embedded
    if shutil.which("pdffonts"):
        assert "TrueType" in subprocess.run(["pdffonts", str(pdfs[0])], capture_output=True, text=True).stdout


def test_the_font_check_sees_type3(tmp_path):
    """The check above is not vacuous: matplotlib's default PDF font type is 3, and it finds that."""
    import matplotlib.pyplot as plt

    with plt.rc_context({"pdf.fonttype": 3}):
        figure, ax = plt.subplots(figsize=(1, 1))
        ax.set_title("Type 3")
        figure.savefig(tmp_path / "type3.pdf")
        plt.close(figure)
    assert _type3_fonts(tmp_path / "type3.pdf")


def _width_in(path: Path) -> float:
    box = re.search(rb"/MediaBox\s*\[\s*0 0 ([\d.]+) ([\d.]+)", path.read_bytes())
    return float(box.group(1)) / 72


@pytest.mark.parametrize("width, inches", [("column", 3.3), ("page", 6.9)])
def test_figures_have_a_fixed_width_whatever_the_number_of_categories(tmp_path, width, inches):
    few = dataset_run(tmp_path / "few", "mvtec", ["bottle", "grid", "wood"])
    many = dataset_run(tmp_path / "many", "mvtec", MVTEC_TEXTURES + MVTEC_OBJECTS)
    for run in (few, many):
        out = tmp_path / f"{run.name}-{width}"
        plots.make_plots(build_report([run], vs=["rd4ad_rerun_official", "anomalib_rd"]), out, width=width)
        assert _width_in(out / "per-category.pdf") == pytest.approx(inches, abs=0.01)
        assert Image.open(out / "per-category.png").size[0] == round(inches * plots.RC["savefig.dpi"])


def test_panels_share_one_value_axis_colours_follow_the_run_and_no_caps(tmp_path):
    run = dataset_run(tmp_path / "ours", "mvtec", MVTEC_TEXTURES + MVTEC_OBJECTS)
    report = build_report([run], vs=["rd4ad_rerun_official", "anomalib_rd"])
    with plots.style():
        figure = plots._per_category(report, "column")
    panels = [ax for ax in figure.axes if ax.get_visible() and ax.get_title()]
    assert len(panels) == 3 and len({ax.get_xlim() for ax in panels}) == 1
    for ax in panels:
        ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
        assert max(ticks) == 100 and ax.get_xlim()[1] < 102  # no tick above 100 %
        for container in ax.containers:
            assert len(container.lines[1]) == 0  # error bars without caps: none of zero height
        colours = {
            tuple(line.get_color()) if not isinstance(line.get_color(), str) else line.get_color()
            for line in ax.get_lines()
        }
        assert colours <= {tuple(c) for c in plots.PALETTE[:3]}
    assert {text.get_text() for text in figure.legends[0].get_texts()} == {
        "RD",
        "Official re-run (published)",
        "anomalib RD (published)",
    }


def test_loss_colours_stay_with_the_run_in_every_panel(tmp_path):
    run = plot_run(tmp_path, size=16)
    other = plot_run(tmp_path / "second", size=16)
    report = build_report([run], vs=[other])
    with plots.style():
        figure = plots._loss(report, report.sides, plots.PlotResult(), "column")
    per_panel = [{line.get_color() for line in ax.get_lines()} for ax in figure.axes if ax.get_lines()]
    assert len(per_panel) == 2 and per_panel[0] == per_panel[1] == {plots.PALETTE[0], plots.PALETTE[1]}
    assert figure.legends and not any(ax.get_legend() for ax in figure.axes)  # one legend, outside the panels


def test_mean_over_fewer_categories_is_flagged(tmp_path):
    run = dataset_run(tmp_path / "three", "mvtec", ["bottle", "grid", "wood"])
    report = build_report([run], vs="rd4ad_paper")
    with plots.style():
        figure = plots._per_category(report, "column")
    ax = figure.axes[0]
    assert ax.get_yticklabels()[-1].get_text() == "Mean*"
    mean_marker = [
        line
        for line in ax.get_lines()
        if list(line.get_ydata())
        and line.get_ydata()[0] < 3.5 - 0.1
        and line.get_ydata()[0] > 2.5
        and line.get_color() == plots.PALETTE[0]
    ]
    assert mean_marker and mean_marker[0].get_markerfacecolor() == "white"  # an open marker
    assert "open marker: mean over fewer categories" in figure.get_supxlabel()


def test_overlay_colour_map_is_uniform_and_its_bar_shows_the_transparency():
    assert plots.OVERLAY_CMAP in ("viridis", "inferno", "magma", "plasma", "cividis")
    import matplotlib.pyplot as plt

    figure, ax = plt.subplots()
    plots._colour_bar(ax, 0.0, 1.0)
    shown = ax.get_images()[0].get_array()
    for row, value in ((0, 1.0), (255, 0.0), (128, 1 - 128 / 255)):
        rgba = plots._overlay(np.array([value]), 0.0, 1.0)[0]
        expected = 0.5 * (1 - rgba[3]) + rgba[:3] * rgba[3]
        assert np.allclose(shown[row, 0], expected, atol=1e-6)
    assert np.allclose(shown[255, 0], 0.5)  # the lowest values are transparent: the image (here grey) shows
    plt.close(figure)
