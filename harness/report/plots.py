"""Figures for `report --plots` (PNG and PDF) and the HTML report, drawn from the store only.

- per-category.*: a dot plot per metric (categories and means as rows, one colour and marker per run or
  reference, ± std as a bar where there are several seeds), panels sharing one value axis;
- curves-<category>.*: image ROC, pixel ROC and PRO curves from each run's stored predictions;
- gallery-<run>-<category>.*: test images with the anomaly map and the ground-truth outline, the
  best and worst scored (read from the data root in the job's config.json; skipped when not on disk);
- loss.*: training loss per epoch from the records' history, one panel per category.

Every figure has a fixed size for one column (3.3 in) or both columns (6.9 in) of a paper, however many
categories there are (panels wrap), TrueType fonts in PDF (no Type 3: IEEE PDF eXpress rejects them),
colour-blind-safe colours and markers that stay with a run or reference in every figure, and a
perceptually uniform colour map whose colour bar shows the overlay's transparency.
"""

from __future__ import annotations

import io
import math
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib

matplotlib.use("Agg")  # files only, never a window

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib import patheffects  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.ticker import FuncFormatter, MaxNLocator, MultipleLocator  # noqa: E402

from harness.errors import HarnessError  # noqa: E402
from harness.metrics import LABELS  # noqa: E402
from harness.order import category_name  # noqa: E402
from harness.report.notes import FEWER  # noqa: E402
from harness.report.options import FIGURE_WIDTHS  # noqa: E402
from harness.report.records import FinishedJob, finished_jobs  # noqa: E402
from harness.store import load_predictions, read_json  # noqa: E402

if TYPE_CHECKING:
    from matplotlib.typing import LineStyleType, RcKeyType

FORMATS = ("png", "pdf")
GALLERY_PER_ROW = 4
ROW_TITLE_PT = 5.5  # the gallery's row titles
PRO_LIMIT = 0.3  # the AU-PRO integration limit drawn on the PRO plot
OVERLAY_CMAP = "inferno"  # perceptually uniform, readable in grey
OVERLAY_ALPHA = 0.8  # opacity of the highest map values; lower values fade out linearly
PALETTE = sns.color_palette("colorblind")  # one colour per run or reference, in the report's order
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "h")
SEED_STYLES: tuple[LineStyleType, ...] = ("-", "--", ":", "-.")
EMBED_DPI = 200  # figures in the HTML report
# Paper styling: seaborn's paper context and white grid, small type, TrueType fonts in PDF and PostScript
RC: dict[RcKeyType, Any] = {
    "pdf.fonttype": 42,
    "ps.fonttype": 42,
    "svg.fonttype": "none",
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans"],
    "mathtext.fontset": "dejavusans",
    "font.size": 7,
    "axes.titlesize": 7.5,
    "axes.labelsize": 7,
    "xtick.labelsize": 6.5,
    "ytick.labelsize": 6.5,
    "legend.fontsize": 6.5,
    "legend.title_fontsize": 6.5,
    "figure.titlesize": 8,
    "axes.linewidth": 0.6,
    "grid.linewidth": 0.4,
    "lines.linewidth": 1.0,
    "lines.markersize": 3.5,
    "xtick.major.width": 0.6,
    "ytick.major.width": 0.6,
    "xtick.major.size": 2.5,
    "ytick.major.size": 2.5,
    "legend.frameon": False,
    "savefig.dpi": 300,
    "figure.dpi": 150,
    "image.cmap": OVERLAY_CMAP,
}
HEIGHTS = {
    "per-category": {"column": 3.6, "page": 3.2},
    "curves": {"column": 1.9, "page": 2.4},
    "loss": {"column": 3.3, "page": 2.8},
}


@dataclass
class Figure:
    stem: str
    title: str  # a caption for the HTML report
    png: bytes | None = None  # kept when the figures are embedded


@dataclass
class PlotResult:
    files: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)


def style():
    """The rc settings every figure is drawn with (seaborn's paper context, TrueType fonts)."""
    return plt.rc_context({**sns.axes_style("whitegrid"), **sns.plotting_context("paper"), **RC})


def make_plots(report, out: Path, *, width: str = "column", formats=FORMATS, embed: bool = False) -> PlotResult:
    """Every figure for the report's sides; what could not be drawn is a note, not an error. `width`: column
    or page; `embed`: keep each figure's PNG bytes (the HTML report)."""
    if width not in FIGURE_WIDTHS:
        raise HarnessError(f"figure width '{width}': choose from {', '.join(FIGURE_WIDTHS)}")
    out.mkdir(parents=True, exist_ok=True)
    result = PlotResult()
    save = _Saver(out, formats, embed, result)
    with style():
        save(_per_category(report, width), "per-category", "Per category and mean, every run and reference")
        runs = [side for side in report.sides if side.kind == "run"]
        jobs = {side.key: finished_jobs(side.path) for side in runs}
        without = []
        for category in report.categories:
            chosen = [
                (side, [j for j in jobs[side.key] if j.record["category"] == category and j.predictions.is_file()])
                for side in runs
            ]
            if not any(found for _, found in chosen):
                without.append(category)
                continue
            save(
                _curves(report, category, chosen, width),
                f"curves-{_slug(category)}",
                f"{category_name(category)}: ROC and PRO curves from the stored predictions",
            )
        if without:
            result.notes.append(f"curves skipped for {', '.join(without)}: no predictions.npz in any run")
        for side in runs:
            for category in side.categories:
                figure = _gallery(
                    report,
                    side,
                    category,
                    [j for j in jobs[side.key] if j.record["category"] == category],
                    result,
                    width,
                )
                if figure is not None:
                    save(
                        figure,
                        f"gallery-{side.key}-{_slug(category)}",
                        f"{category_name(category)}, {side.tag}: best and worst scored test images",
                    )
        figure = _loss(report, runs, result, width)
        if figure is not None:
            save(figure, "loss", "Training loss per epoch")
    return result


@dataclass
class _Saver:
    out: Path
    formats: tuple
    embed: bool
    result: PlotResult

    def __call__(self, figure, stem: str, title: str) -> None:
        for fmt in self.formats:
            path = self.out / f"{stem}.{fmt}"
            figure.savefig(path, dpi=RC["savefig.dpi"] if fmt == "png" else None, metadata=_metadata(fmt))
            self.result.files.append(path)
        png = None
        if self.embed:
            buffer = io.BytesIO()
            figure.savefig(buffer, format="png", dpi=EMBED_DPI)
            png = buffer.getvalue()
        self.result.figures.append(Figure(stem, title, png))
        plt.close(figure)


def _metadata(fmt: str) -> dict | None:
    return {"Creator": "rd-harness", "CreationDate": None} if fmt == "pdf" else None  # the same bytes every time


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in text)


def _size(kind: str, width: str) -> tuple[float, float]:
    return FIGURE_WIDTHS[width], HEIGHTS[kind][width]


def side_colour(report, side):
    return PALETTE[report.sides.index(side) % len(PALETTE)]


def side_marker(report, side) -> str:
    return MARKERS[report.sides.index(side) % len(MARKERS)]


def _side_label(side) -> str:
    return side.tag + (" (published)" if side.kind == "reference" else "")


def _legend(figure, handles, labels, columns: int) -> None:
    """One legend for the whole figure, above the panels, never over the data."""
    figure.legend(
        handles,
        labels,
        loc="outside upper center",
        ncol=max(1, columns),
        handlelength=1.6,
        columnspacing=1.0,
        borderaxespad=0.2,
    )


# ---- per category --------------------------------------------------------------------------------


def _per_category(report, width: str):
    rows = report.rows
    metrics = report.metrics
    wrap = 3 if width == "column" else 4
    columns = min(len(metrics), wrap)
    lines = math.ceil(len(metrics) / columns)
    full, tallest = _size("per-category", width)
    height = min(tallest, 1.1 + lines * (0.3 + 0.16 * len(rows)))  # fixed width; height bounded, for few rows less
    figure, axes = plt.subplots(
        lines, columns, figsize=(full, height), squeeze=False, sharex=True, sharey=True, layout="constrained"
    )
    y = np.arange(len(rows))
    offsets = np.linspace(-0.2, 0.2, len(report.sides)) if len(report.sides) > 1 else np.zeros(1)
    values = [100 * c.mean for s in report.sides for c in s.cells.values() if not math.isnan(c.mean)]
    spreads = [
        100 * (c.ci_low if c.has_interval and c.ci_low is not None else c.mean - (c.std or 0))
        for s in report.sides
        for c in s.cells.values()
        if not math.isnan(c.mean)
    ]
    low = max(0.0, 5 * math.floor((min(spreads + values, default=90) - 1) / 5))
    room = (full - 0.8) / columns  # inches per panel, about
    ticks = max(2, min(5, int(room / 0.3)))  # labelled ticks; a light grid every fifth of a step between them
    step = next(s for s in (1, 2, 5, 10, 20, 25, 50, 100) if (100 - low) / s <= ticks - 1)
    low = 100 - step * math.ceil((100 - low) / step)  # ticks end at 100 exactly
    handles = {}
    for ax, metric in zip(axes.flat, metrics, strict=False):
        for offset, side in zip(offsets, report.sides, strict=False):
            colour, marker = side_colour(report, side), side_marker(report, side)
            for i, row in enumerate(rows):
                cell = report.cell(row, metric, side)
                if cell is None or math.isnan(cell.mean):
                    continue
                fewer = report.fewer_categories(row, metric, side)
                ax.errorbar(
                    100 * cell.mean,
                    i + offset,
                    xerr=_bar(cell),
                    fmt=marker,
                    color=colour,
                    markerfacecolor="white" if fewer else colour,
                    markeredgecolor=colour,
                    markeredgewidth=0.8,
                    elinewidth=0.8,
                    capsize=0,
                    zorder=3,
                )
            handles[side.key] = Line2D([], [], color=colour, marker=marker, linestyle="none", markersize=4)
        for i, row in enumerate(rows):
            if report.is_mean_row(row):
                ax.axhspan(i - 0.5, i + 0.5, color="0.92", zorder=0, linewidth=0)
        ax.set_title(LABELS.get(metric, metric))
        ax.set_xlim(low - 0.02 * (100 - low), 100 + 0.04 * (100 - low))
        ax.set_xticks(np.arange(low, 100.001, step))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_locator(MultipleLocator(step / (5 if step in (5, 10, 20, 25, 50) else 2)))
        ax.grid(axis="x", which="minor", linewidth=0.25, color="0.88")
        ax.grid(axis="y", visible=False)
    for ax in axes.flat[len(metrics) :]:
        ax.set_visible(False)
    labels = [
        (report.row_name(row) + (FEWER if report.row_marked(row) else ""))
        if report.is_mean_row(row)
        else category_name(row)
        for row in rows
    ]
    axes[0, 0].set_yticks(y, labels)
    axes[0, 0].set_ylim(len(rows) - 0.5, -0.5)  # first category on top, as in the table
    for ax in axes[:, 0]:
        for tick, row in zip(ax.get_yticklabels(), rows, strict=False):
            tick.set_fontweight("bold" if report.is_mean_row(row) else "normal")
    footer = "value (%)" + (
        f"; bars: {report.intervals}"
        if report.intervals
        else "; bars: ± sample std over seeds"
        if any(c.std for s in report.sides for c in s.cells.values())
        else ""
    )
    if report.any_fewer():
        footer += f"\n{FEWER} open marker: mean over fewer categories than another's"
    figure.supxlabel(footer, fontsize=6.5)
    _legend(
        figure,
        list(handles.values()),
        [_side_label(s) for s in report.sides],
        len(report.sides) if width == "page" or len(report.sides) <= 2 else 2,
    )
    return figure


# ---- curves --------------------------------------------------------------------------------------


def _roc(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    from sklearn.metrics import roc_curve

    labels = np.asarray(labels).astype(bool).ravel()
    if labels.all() or not labels.any():
        return None
    fpr, tpr, _ = roc_curve(labels, np.asarray(scores).ravel())
    return fpr, tpr


def _curves(report, category: str, runs: list, width: str):
    from harness.metrics import UndefinedMetricError, pro_curve

    figure, axes = plt.subplots(1, 3, figsize=_size("curves", width), layout="constrained")
    titles = ("image ROC", "pixel ROC", f"PRO (FPR ≤ {PRO_LIMIT})")
    handles, labels = [], []
    for side, jobs in runs:
        colour = side_colour(report, side)
        for j, job in enumerate(sorted(jobs, key=lambda job: str(job.record.get("seed")))):
            data = load_predictions(job.predictions)
            style = {"color": colour, "linestyle": SEED_STYLES[j % len(SEED_STYLES)], "linewidth": 1.0}
            image = _roc(data["scores"], data["labels"])
            if image:
                axes[0].plot(*image, drawstyle="steps-post", **style)
            if data["masks"] is not None and data["masks"].any():
                pixel = _roc(data["maps"], data["masks"])
                if pixel:
                    axes[1].plot(*pixel, **style)
                try:
                    curve = pro_curve(data["maps"], data["masks"])
                except UndefinedMetricError:  # e.g. every pixel anomalous: no PRO curve exists
                    curve = None
                if curve is not None:
                    fpr, pro = curve
                    keep = fpr <= PRO_LIMIT
                    axes[2].plot(
                        np.append(fpr[keep], PRO_LIMIT), np.append(pro[keep], np.interp(PRO_LIMIT, fpr, pro)), **style
                    )
            handles.append(Line2D([], [], **style))
            labels.append(f"{side.tag}, seed {job.record.get('seed')}")
    for ax, title in zip(axes, titles, strict=False):
        ax.set_title(title)
        if not ax.get_lines():
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes, color="0.4")
        ax.set_ylim(-0.02, 1.02)
        ax.set_yticks([0, 0.5, 1])
    for ax in axes[:2]:
        ax.plot([0, 1], [0, 1], color="0.7", linewidth=0.6, linestyle=":")
        ax.set(xlim=(-0.02, 1.02), xticks=[0, 0.5, 1])
    axes[2].set(xlim=(-0.005, PRO_LIMIT), xticks=[0, 0.1, 0.2, 0.3])
    axes[0].set_ylabel("TPR / per-region overlap")
    for ax in axes[1:]:
        ax.tick_params(labelleft=False)
    figure.supxlabel("false positive rate", fontsize=6.5)
    _legend(figure, handles, labels, min(len(labels), 3 if width == "column" else 6))
    return figure


# ---- gallery -------------------------------------------------------------------------------------


def _data_root(job: FinishedJob) -> Path | None:
    """Where the job read its data: config.json's root, or the data set's default location."""
    try:
        config = read_json(job.config_path) if job.config_path.is_file() else {}
        if config.get("root"):
            return Path(config["root"])
        from harness import datasets

        root = datasets.create(config.get("dataset") or job.record["dataset"]).root
        return Path(root) if root else None
    except HarnessError:
        return None


def _load_image(path: Path, shape: tuple[int, int]) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image.convert("RGB").resize((shape[1], shape[0]), Image.Resampling.BILINEAR))


def _pick(scores: np.ndarray, labels: np.ndarray) -> list[tuple[str, list[int]]]:
    """Rows of the gallery: best and worst scored anomalous images, and the normal images scored highest."""
    anomalous = [int(i) for i in np.argsort(-scores, kind="stable") if labels[i]]
    normal = [int(i) for i in np.argsort(-scores, kind="stable") if not labels[i]]
    k = min(GALLERY_PER_ROW, math.ceil(len(anomalous) / 2))
    best, rest = anomalous[:k], anomalous[k:]
    rows = [
        ("anomalous, highest scores (best)", best),
        ("anomalous, lowest scores (worst)", rest[::-1][:GALLERY_PER_ROW]),
        ("normal, highest scores (worst)", normal[:GALLERY_PER_ROW]),
    ]
    return [(title, picked) for title, picked in rows if picked]


def _gallery(report, side, category: str, jobs: list, result: PlotResult, width: str):
    jobs = [j for j in sorted(jobs, key=lambda j: str(j.record.get("seed"))) if j.predictions.is_file()]
    if not jobs:
        note = f"gallery {side.key} skipped: no predictions.npz for "
        if result.notes and result.notes[-1].startswith(note):
            result.notes[-1] += f", {category}"
        else:
            result.notes.append(note + category)
        return None
    job = jobs[0]  # the first seed: one model's view of the test set
    root = _data_root(job)
    data = load_predictions(job.predictions)
    maps, masks, scores, labels = data["maps"], data["masks"], data["scores"], data["labels"].astype(bool)
    rows = _pick(scores, labels)
    paths = {i: (root / str(data["paths"][i])) if root else None for _, picked in rows for i in picked}
    missing = [p for p in paths.values() if p is None or not p.is_file()]
    if missing:
        where = f"under {root}" if root else "(no data root recorded)"
        result.notes.append(f"gallery {side.key} {category} skipped: {len(missing)} test image(s) not on disk {where}")
        return None
    low, high = np.percentile(maps, [1, 99.9])  # one colour scale for the whole category, so maps compare
    columns = max(len(picked) for _, picked in rows)
    full = FIGURE_WIDTHS[width]
    cell = (full - 0.55) / columns  # room for the row titles and the colour bar
    figure = plt.figure(figsize=(full, cell * len(rows) + 0.25), layout="constrained")
    grid = figure.add_gridspec(len(rows), columns + 1, width_ratios=[1] * columns + [0.08])
    for r, (title, picked) in enumerate(rows):
        for c in range(columns):
            ax = figure.add_subplot(grid[r, c])
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if c == 0:
                ax.set_ylabel(_row_title(title, cell), fontsize=ROW_TITLE_PT)
            if c >= len(picked):
                ax.set_facecolor("white")
                continue
            i = picked[c]
            path = paths[i]
            assert path is not None  # galleries with missing images were skipped above
            ax.imshow(_load_image(path, maps[i].shape))
            ax.imshow(_overlay(maps[i], low, high))
            if masks is not None and masks[i].any():
                outline = ax.contour(masks[i], levels=[0.5], colors="white", linewidths=0.7)
                outline.set(path_effects=[patheffects.withStroke(linewidth=1.5, foreground="black")])
            ax.set_title(f"{data['defect_types'][i]} {scores[i]:.3f}", fontsize=5.5, pad=2)
    bar = figure.add_subplot(grid[:, columns])
    _colour_bar(bar, low, high)
    return figure


def _row_title(title: str, cell: float) -> str:
    """A gallery row's title in lines that fit the row's height (`cell` inches, less the images' own titles):
    rotated, a longer line would run past the figure's edge at the first or last row."""
    room = cell * 72 - 10  # points: the row less the title above each image
    characters = max(8, int(room / (0.6 * ROW_TITLE_PT)))  # DejaVu Sans averages under 0.6 em a character
    return "\n".join(textwrap.wrap(title, characters, break_long_words=False))


def _overlay(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """RGBA heat map whose opacity grows with the value: normal regions keep showing the image."""
    scaled = np.clip((values - low) / max(high - low, 1e-12), 0, 1)
    rgba = plt.get_cmap(OVERLAY_CMAP)(scaled)
    rgba[..., 3] = OVERLAY_ALPHA * scaled
    return rgba


def _colour_bar(ax, low: float, high: float) -> None:
    """The overlay's own colours and transparency over a mid-grey image: the bar reads as the maps look."""
    ramp = np.linspace(high, low, 256)[:, None].repeat(8, axis=1)
    rgba = _overlay(ramp, low, high)
    grey = np.full(rgba.shape[:2] + (3,), 0.5)
    shown = grey * (1 - rgba[..., 3:]) + rgba[..., :3] * rgba[..., 3:]
    ax.imshow(shown, aspect="auto", extent=(0, 1, low, high))
    ax.set_xticks([])
    ax.yaxis.tick_right()
    ax.yaxis.set_label_position("right")
    ax.yaxis.set_major_locator(MaxNLocator(4))
    ax.tick_params(labelsize=5.5)
    ax.set_ylabel("anomaly map (over grey)", fontsize=5.5)
    ax.grid(False)


# ---- loss ----------------------------------------------------------------------------------------


def _loss(report, runs: list, result: PlotResult, width: str):
    import pandas as pd

    frames = []
    for side in runs:
        for record in side.records:
            for entry in record.get("history") or []:
                frames.append(
                    {
                        "side": side.key,
                        "category": record["category"],
                        "seed": str(record.get("seed")),
                        "epoch": entry.get("epoch"),
                        "loss": entry.get("loss"),
                    }
                )
    if not frames:
        result.notes.append("loss curves skipped: no training history in the records (checkpoints evaluated?)")
        return None
    table = pd.DataFrame(frames).dropna()
    categories = [c for c in report.categories if c in set(table["category"])]
    wrap = 4 if width == "column" else 6
    columns = min(len(categories), wrap)
    lines = math.ceil(len(categories) / columns)
    figure, axes = plt.subplots(
        lines, columns, figsize=_size("loss", width), squeeze=False, sharex=True, sharey=True, layout="constrained"
    )
    logarithmic = table["loss"].min() > 0 and table["loss"].max() / table["loss"].min() > 20
    seeds = sorted(set(table["seed"]))
    by_key = {side.key: side for side in runs}
    for ax, category in zip(axes.flat, categories, strict=False):
        part = table[table["category"] == category]
        for (key, seed), curve in part.groupby(["side", "seed"], sort=False):
            curve = curve.sort_values("epoch")
            ax.plot(
                curve["epoch"],
                curve["loss"],
                color=side_colour(report, by_key[key]),
                linestyle=SEED_STYLES[seeds.index(seed) % len(SEED_STYLES)],
                linewidth=0.9,
            )
        ax.set_title(category_name(category), fontsize=6.5, pad=2)
        ax.xaxis.set_major_locator(MaxNLocator(3, integer=True))
        if logarithmic:
            ax.set_yscale("log")
    for ax in axes.flat[len(categories) :]:
        ax.set_visible(False)
    figure.supxlabel("epoch", fontsize=6.5)
    figure.supylabel("training loss" + (" (log scale)" if logarithmic else ""), fontsize=6.5)
    handles = [Line2D([], [], color=side_colour(report, side)) for side in runs]
    labels = [side.tag for side in runs]
    if len(seeds) > 1:
        handles += [Line2D([], [], color="0.3", linestyle=SEED_STYLES[i % len(SEED_STYLES)]) for i in range(len(seeds))]
        labels += [f"seed {seed}" for seed in seeds]
    _legend(figure, handles, labels, min(len(labels), 4 if width == "column" else 8))
    return figure


def _bar(cell):
    """The error bar of a value: its interval (report --ci; asymmetric), else ± the sample std over seeds."""
    if cell.has_interval:
        return [[100 * (cell.mean - cell.ci_low)], [100 * (cell.ci_high - cell.mean)]]
    return None if cell.std is None else 100 * cell.std
