"""Every figure keeps its text inside the canvas: no label, title or tick cut off at an edge."""

import matplotlib.text
import pytest

from harness.report import plots
from harness.report.build import build_report

from report_fixtures import plot_run


def undrawn_tick_labels(figure) -> set[int]:
    """Tick labels matplotlib keeps but does not draw: their ticks lie outside the axis' view interval."""
    skipped = set()
    for ax in figure.axes:
        for axis in (ax.xaxis, ax.yaxis):
            low, high = sorted(axis.get_view_interval())
            slack = 1e-9 * max(1.0, abs(high - low))
            for tick in axis.get_major_ticks() + axis.get_minor_ticks():
                if not low - slack <= tick.get_loc() <= high + slack:
                    skipped |= {id(tick.label1), id(tick.label2)}
    return skipped


def clipped_text(figure) -> list[str]:
    """Drawn, non-empty texts whose extent (as the renderer lays them out) leaves the figure's canvas."""
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    canvas = figure.bbox
    skipped = undrawn_tick_labels(figure)
    outside = []
    for text in figure.findobj(matplotlib.text.Text):
        if not text.get_visible() or not text.get_text().strip() or id(text) in skipped:
            continue
        box = text.get_window_extent(renderer)
        if box.x0 < canvas.x0 - 0.5 or box.y0 < canvas.y0 - 0.5 or box.x1 > canvas.x1 + 0.5 or box.y1 > canvas.y1 + 0.5:
            outside.append(f"{text.get_text()!r} at {box.bounds} outside {canvas.bounds}")
    return outside


@pytest.mark.parametrize("width", ["column", "page"])
@pytest.mark.parametrize("n_images", [6, 16])
def test_no_figure_cuts_off_text(tmp_path, monkeypatch, width, n_images):
    run = plot_run(tmp_path, seeds=(0,), size=16, n_images=n_images)
    checked: dict[str, list[str]] = {}
    save = plots._Saver.__call__

    def checking(self, figure, stem, title):
        checked[stem] = clipped_text(figure)
        save(self, figure, stem, title)

    monkeypatch.setattr(plots._Saver, "__call__", checking)
    plots.make_plots(build_report([run]), tmp_path / "plots", width=width, formats=("png",))
    assert set(checked) == {"per-category", "curves-disc", "curves-weave", "gallery-A-disc", "gallery-A-weave", "loss"}
    assert {stem: found for stem, found in checked.items() if found} == {}
