"""Figures for `report --plots` (PNG and PDF), drawn from the store only.

- bars.*: per-category grouped bars of every side of the report (runs and reference), one panel per metric;
- curves-<category>.*: image ROC, pixel ROC and PRO curves from each run's stored predictions;
- gallery-<run>-<category>.*: test images with the anomaly map and the ground-truth outline, the
  best and worst scored (read from the data root in the job's config.json; skipped when not on disk);
- loss.*: training loss per epoch from the records' history.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, never a window

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib import patheffects  # noqa: E402
from matplotlib.ticker import FuncFormatter, MaxNLocator  # noqa: E402

from harness.errors import HarnessError  # noqa: E402
from harness.metrics import LABELS  # noqa: E402
from harness.report.records import FinishedJob, finished_jobs  # noqa: E402
from harness.store import load_predictions, read_json  # noqa: E402

FORMATS = ("png", "pdf")
GALLERY_PER_ROW = 4
PRO_LIMIT = 0.3  # the AU-PRO integration limit drawn on the PRO plot
OVERLAY_CMAP = "jet"


@dataclass
class PlotResult:
    files: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def make_plots(report, out: Path) -> PlotResult:
    """Every figure for the report's sides; what could not be drawn is a note, not an error."""
    out.mkdir(parents=True, exist_ok=True)
    sns.set_theme(style="whitegrid", context="paper")
    result = PlotResult()
    _save(_bars(report), out / "bars", result)
    runs = [side for side in report.sides if side.kind == "run"]
    jobs = {side.key: finished_jobs(side.path) for side in runs}
    for category in report.categories:
        chosen = [(side, [j for j in jobs[side.key] if j.record["category"] == category and j.predictions.is_file()])
                  for side in runs]
        if not any(found for _, found in chosen):
            result.notes.append(f"curves {category} skipped: no predictions.npz in any run")
            continue
        _save(_curves(category, chosen), out / f"curves-{_slug(category)}", result)
    for side in runs:
        for category in side.categories:
            figure = _gallery(side, category, [j for j in jobs[side.key] if j.record["category"] == category], result)
            if figure is not None:
                _save(figure, out / f"gallery-{side.key}-{_slug(category)}", result)
    figure = _loss(runs, result)
    if figure is not None:
        _save(figure, out / "loss", result)
    return result


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in text)


def _save(figure, stem: Path, result: PlotResult) -> None:
    for fmt in FORMATS:
        path = stem.with_suffix(f".{fmt}")
        figure.savefig(path, dpi=150, bbox_inches="tight")
        result.files.append(path)
    plt.close(figure)


def _side_label(side) -> str:
    label = f"{side.tag} {side.name}"
    if side.kind == "reference":
        return label + " (published)"
    return label + (" (random-weight teacher: not comparable to published)" if side.random_teacher else "")


# ---- bars ----------------------------------------------------------------------------------------

def _bars(report):
    rows, sides, metrics = report.rows, report.sides, report.metrics
    colours = sns.color_palette("colorblind", len(sides))
    figure, axes = plt.subplots(len(metrics), 1, figsize=(max(6.0, 0.45 * len(rows) * len(sides) + 2), 2.6 * len(metrics) + 0.6),
                                squeeze=False, sharex=True)
    width = 0.8 / len(sides)
    x = np.arange(len(rows))
    labelled = len(rows) * len(sides) <= 30  # value labels only while they fit
    for ax, metric in zip(axes[:, 0], metrics):
        lows, highs, bars = [], [], []
        for i, side in enumerate(sides):
            cells = [report.cell(category, metric, side) for category in rows]
            values = np.array([np.nan if c is None else 100 * c.mean for c in cells])
            absent = [c is None for c in cells]
            errors = np.array([0.0 if c is None or c.std is None else 100 * c.std for c in cells])
            positions = x - 0.4 + width * (i + 0.5)
            ax.bar(positions, np.nan_to_num(values), width, yerr=errors, color=colours[i], label=_side_label(side),
                   capsize=2, error_kw={"elinewidth": 0.8, "ecolor": "0.25"}, edgecolor="white", linewidth=0.5)
            bars.append((positions, values, errors, absent))
            lows += list(values - errors)
            highs += list(values + errors)
        lows, highs = [v for v in lows if not math.isnan(v)], [v for v in highs if not math.isnan(v)]
        low = max(0.0, 10 * math.floor((min(lows, default=0) - 3) / 10))
        top = max(100.0, max(highs, default=100))
        ax.set_ylim(low, top + (top - low) * (0.16 if labelled else 0.04))
        for positions, values, errors, absent in bars:
            for position, value, error, gone in zip(positions, values, errors, absent):
                if math.isnan(value):  # a missing value must not read as zero
                    ax.text(position, low + (top - low) * 0.02, "not reported" if gone else "n/a", ha="center",
                            va="bottom", fontsize=6, color="0.4", rotation=90)
                elif labelled:
                    ax.text(position, value + error + (top - low) * 0.02, f"{value:.1f}", ha="center", va="bottom",
                            fontsize=6, rotation=90)
        ax.set_ylabel(f"{LABELS.get(metric, metric)} (%)" + (f"\naxis starts at {low:.0f}" if low > 0 else ""), fontsize=8)
        ax.axvline(len(rows) - 1.5, color="0.6", linewidth=0.8, linestyle=":")  # categories | mean
        ax.grid(axis="x", visible=False)
    rotate = len(rows) > 6
    axes[-1, 0].set_xticks(x, rows, rotation=35 if rotate else 0, ha="right" if rotate else "center")
    # Side by side only when short: a long legend row would widen the figure and squeeze the panels.
    labels = axes[0, 0].get_legend_handles_labels()[1]
    side_by_side = len(sides) <= 2 and sum(len(label) for label in labels) < 70
    axes[0, 0].legend(loc="lower left", bbox_to_anchor=(0, 1.02), ncol=len(sides) if side_by_side else 1,
                      frameon=False, fontsize=7)
    spread = " (error bars: sample std over seeds)" if any(c.std for s in sides for c in s.cells.values()) else ""
    figure.suptitle(f"{sides[0].dataset}: per category and mean{spread}", fontsize=9)
    figure.tight_layout()
    return figure


# ---- curves --------------------------------------------------------------------------------------

def _roc(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    from sklearn.metrics import roc_curve

    labels = np.asarray(labels).astype(bool).ravel()
    if labels.all() or not labels.any():
        return None
    fpr, tpr, _ = roc_curve(labels, np.asarray(scores).ravel())
    return fpr, tpr


def _curves(category: str, runs: list):
    from harness.metrics import UndefinedMetricError, pro_curve

    figure, axes = plt.subplots(1, 3, figsize=(11, 3.6))
    titles = ("image ROC", "pixel ROC", f"PRO (FPR up to {PRO_LIMIT})")
    styles = ("-", "--", ":", "-.")
    colours = sns.color_palette("colorblind", len(runs))
    for (side, jobs), colour in zip(runs, colours):
        for j, job in enumerate(sorted(jobs, key=lambda job: str(job.record.get("seed")))):
            data = load_predictions(job.predictions)
            seed = job.record.get("seed")
            style = {"color": colour, "linestyle": styles[j % len(styles)], "linewidth": 1.2}

            def legend(metric):
                value = (job.record["metrics"].get(metric) or {}).get("value")
                return f"{side.tag} seed {seed}" + (f" ({LABELS.get(metric, metric)} {100 * value:.1f})" if value is not None else "")

            image = _roc(data["scores"], data["labels"])
            if image:
                axes[0].plot(*image, label=legend("image_auroc"), drawstyle="steps-post", **style)
            if data["masks"] is not None and data["masks"].any():
                pixel = _roc(data["maps"], data["masks"])
                if pixel:
                    axes[1].plot(*pixel, label=legend("pixel_auroc"), **style)
                try:
                    fpr, pro = pro_curve(data["maps"], data["masks"])
                except UndefinedMetricError:  # e.g. every pixel anomalous: no PRO curve exists
                    continue
                keep = fpr <= PRO_LIMIT
                axes[2].plot(np.append(fpr[keep], PRO_LIMIT), np.append(pro[keep], np.interp(PRO_LIMIT, fpr, pro)),
                             label=legend("au_pro"), **style)
    for ax, title in zip(axes, titles):
        ax.set_title(title, fontsize=9)
        if ax.get_lines():
            ax.legend(fontsize=6, loc="lower right")
        else:
            ax.text(0.5, 0.5, "no data\n(no masks or a single class)", ha="center", va="center", transform=ax.transAxes, color="0.4")
    for ax in axes[:2]:
        ax.plot([0, 1], [0, 1], color="0.7", linewidth=0.8, linestyle=":")
        ax.set(xlim=(-0.01, 1.01), ylim=(-0.01, 1.02), xlabel="false positive rate", ylabel="true positive rate")
    axes[2].set(xlim=(-0.003, PRO_LIMIT), ylim=(-0.01, 1.02), xlabel="false positive rate (pixels)", ylabel="per-region overlap")
    names = "; ".join(_side_label(side) for side, _ in runs)
    figure.suptitle(f"{category}: curves from stored predictions ({names})", fontsize=9)
    figure.tight_layout()
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
        return np.asarray(image.convert("RGB").resize((shape[1], shape[0]), Image.BILINEAR))


def _pick(scores: np.ndarray, labels: np.ndarray) -> list[tuple[str, list[int]]]:
    """Rows of the gallery: best and worst scored anomalous images, and the normal images scored highest."""
    anomalous = [int(i) for i in np.argsort(-scores, kind="stable") if labels[i]]
    normal = [int(i) for i in np.argsort(-scores, kind="stable") if not labels[i]]
    k = min(GALLERY_PER_ROW, math.ceil(len(anomalous) / 2))
    best, rest = anomalous[:k], anomalous[k:]
    rows = [("anomalous, highest scores (best)", best), ("anomalous, lowest scores (worst)", rest[::-1][:GALLERY_PER_ROW]),
            ("normal, highest scores (worst)", normal[:GALLERY_PER_ROW])]
    return [(title, picked) for title, picked in rows if picked]


def _gallery(side, category: str, jobs: list, result: PlotResult):
    jobs = [j for j in sorted(jobs, key=lambda j: str(j.record.get("seed"))) if j.predictions.is_file()]
    if not jobs:
        result.notes.append(f"gallery {side.key} {category}: no predictions.npz")
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
    figure, axes = plt.subplots(len(rows), columns, figsize=(2.1 * columns + 0.8, 2.35 * len(rows)), squeeze=False)
    for r, (title, picked) in enumerate(rows):
        for c in range(columns):
            ax = axes[r, c]
            ax.axis("off")
            if c >= len(picked):
                continue
            i = picked[c]
            ax.imshow(_load_image(paths[i], maps[i].shape))
            ax.imshow(_overlay(maps[i], low, high))
            if masks is not None and masks[i].any():
                outline = ax.contour(masks[i], levels=[0.5], colors="white", linewidths=1.0)
                outline.set(path_effects=[patheffects.withStroke(linewidth=2.2, foreground="black")])
            ax.set_title(f"{data['defect_types'][i]}  score {scores[i]:.3f}", fontsize=7)
        axes[r, 0].text(-0.06, 0.5, title.replace(", ", ",\n"), transform=axes[r, 0].transAxes, rotation=90,
                        ha="right", va="center", fontsize=7)
    bar = figure.colorbar(plt.cm.ScalarMappable(matplotlib.colors.Normalize(low, high), OVERLAY_CMAP), ax=axes,
                          fraction=0.025, pad=0.02)
    bar.set_label("anomaly map (one scale per category; low values transparent)", fontsize=7)
    figure.suptitle(f"{category}: {_side_label(side)}, seed {job.record.get('seed')}\n"
                    "outline: ground truth; score: image score (max of the map)", fontsize=9)
    return figure


def _overlay(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """RGBA heat map whose opacity grows with the value: normal regions keep showing the image."""
    scaled = np.clip((values - low) / max(high - low, 1e-12), 0, 1)
    rgba = plt.get_cmap(OVERLAY_CMAP)(scaled)
    rgba[..., 3] = 0.75 * scaled
    return rgba


# ---- loss ----------------------------------------------------------------------------------------

def _loss(runs: list, result: PlotResult):
    import pandas as pd

    frames = []
    for side in runs:
        for record in side.records:
            for entry in record.get("history") or []:
                frames.append({"run": _side_label(side), "category": record["category"],
                               "seed": str(record.get("seed")), "epoch": entry.get("epoch"), "loss": entry.get("loss")})
    if not frames:
        result.notes.append("loss curves skipped: no training history in the records (checkpoints evaluated?)")
        return None
    table = pd.DataFrame(frames).dropna()
    names = list(dict.fromkeys(table["run"]))
    logarithmic = table["loss"].min() > 0 and table["loss"].max() / table["loss"].min() > 20
    figure, axes = plt.subplots(1, len(names), figsize=(5.2 * len(names), 3.6), squeeze=False, sharey=True)
    for ax, name in zip(axes[0], names):
        part = table[table["run"] == name]
        sns.lineplot(data=part, x="epoch", y="loss", hue="category", style="seed", ax=ax, linewidth=1.0,
                     marker="o" if part["epoch"].max() <= 20 else None, markersize=3)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(fontsize=6, title_fontsize=7)
        if logarithmic:
            ax.set_yscale("log")
            ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
            ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}" if f"{v:.0e}"[0] in "25" else ""))
    axes[0, 0].set_ylabel("training loss (mean per epoch)" + (", log scale" if logarithmic else ""))
    figure.tight_layout()
    return figure
