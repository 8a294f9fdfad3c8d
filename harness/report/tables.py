"""Render a report as Markdown (tabulate) or CSV (every number, unrounded); LaTeX: harness.report.latex."""

from __future__ import annotations

import csv
import io
import math

from tabulate import tabulate

from harness.metrics import LABELS
from harness.report.model import Cell, Report, Side
from harness.report.notes import format_note

DASH = "–"  # not reported
SIGNIFICANT = "‡"  # report --ci --vs RUN: the interval of the paired difference excludes 0


def percent(value: float) -> str:
    return f"{100 * value:.1f}"


def _value(cell: Cell | None, bold: bool) -> str:
    if cell is None:
        return DASH
    if math.isnan(cell.mean):
        return "n/a"
    text = percent(cell.mean)
    if bold:
        text = f"**{text}**"
    if cell.std is not None:
        text += " ± " + percent(cell.std)
    return text + interval_text(cell)


def interval_text(cell) -> str:
    """ " [low, high]" in % when the cell has an interval (report --ci), else ""."""
    return f" [{percent(cell.ci_low)}, {percent(cell.ci_high)}]" if cell.has_interval else ""


def _mean(cell: Cell | None, bold: bool) -> str:
    """The mean alone (the layouts without room for ± std)."""
    if cell is None or math.isnan(cell.mean):
        return _value(cell, bold)
    return f"**{percent(cell.mean)}**" if bold else percent(cell.mean)


def _delta(delta: float | None) -> str:
    if delta is None:
        return DASH
    text = f"{100 * delta:.1f}"
    if text in ("0.0", "-0.0"):
        return "0.0"
    return text if text.startswith("-") else "+" + text


def _columns(report: Report, metrics: list[str] | None = None) -> list[tuple[str, str, Side]]:
    """(metric, kind, side) per value column; kind is "value" or "delta"."""
    columns: list[tuple[str, str, Side]] = []
    for metric in report.metrics if metrics is None else metrics:
        columns += [(metric, "value", side) for side in report.sides]
        columns += [(metric, "delta", side) for side in report.sides[1:]]
    return columns


def _row(report: Report, row: str, metrics: list[str] | None = None) -> list[str]:
    cells = []
    for metric, kind, side in _columns(report, metrics):
        if kind == "delta":
            mark = SIGNIFICANT if report.significant(row, metric, side) else ""
            cells.append(_delta(report.delta(row, metric, side, as_printed=True)) + mark)
        else:
            bold = side.key in report.best(row, metric)
            cells.append(_value(report.cell(row, metric, side), bold))
    return cells


MARKDOWN_WIDTH = 120  # characters per line of the wide layout that auto accepts (a terminal, a review page)
MARKDOWN_LAYOUTS = ("wide", "per-metric", "transposed", "compact")


def markdown_layout(layout: str) -> str:
    """The Markdown layout for a `--layout`: the same name, or auto."""
    return layout if layout in MARKDOWN_LAYOUTS else "auto"


def markdown(report: Report, notes: str = "full", layout: str = "auto") -> str:
    """The Markdown report in `layout`: wide (one table: each metric's sides, then the first side minus each
    other, Δ), per-metric (that, one table per metric), transposed (a table per metric, runs and Δ as rows,
    categories as columns), compact (one column per side, its metrics in one cell); auto: wide when every line
    fits in MARKDOWN_WIDTH characters, else per-metric. `notes`: none, short or full."""
    if layout == "auto":
        wide = _markdown_tables(report, "wide")
        layout = "wide" if max(len(line) for line in wide.splitlines()) <= MARKDOWN_WIDTH else "per-metric"
    if layout not in MARKDOWN_LAYOUTS:
        raise ValueError(f"layout {layout!r}: choose from auto, {', '.join(MARKDOWN_LAYOUTS)}")
    if layout == "transposed":
        note = format_note(report, std=False, delta=True)
    elif layout == "compact":
        note = format_note(report, std=False, cell_metrics=report.metrics)
    else:
        note = format_note(report, std=True, delta=True)
    lines = [] if notes == "none" else [note.text] + report.note_lines(notes)
    text = f"**{report.caption}**\n\n{_markdown_tables(report, layout)}"
    if lines:
        text += "\nNotes:\n" + "\n".join(f"- {note}" for note in lines) + "\n"
    return text


def _github(body: list[list[str]], headers: list[str]) -> str:
    return tabulate(
        body,
        headers=headers,
        tablefmt="github",
        disable_numparse=True,
        colalign=["left"] + ["right"] * (len(headers) - 1),
    )


def _row_label(report: Report, row: str) -> str:
    return report.row_name(row) + ("\\*" if report.row_marked(row) else "")


def _markdown_tables(report: Report, layout: str) -> str:
    """The table(s) of a layout, each followed by a blank line; several are each titled by their metric."""
    if layout == "wide":
        return _github([[_row_label(report, row)] + _row(report, row) for row in report.rows], _headers(report)) + "\n"
    if layout == "compact":
        return _compact_markdown(report) + "\n"
    parts = []
    for metric in report.metrics:
        title = f"*{LABELS.get(metric, metric)}*\n\n"
        if layout == "per-metric":
            table = _github(
                [[_row_label(report, row)] + _row(report, row, [metric]) for row in report.rows],
                ["category"] + [_short_header(kind, side) for _, kind, side in _columns(report, [metric])],
            )
        else:  # transposed: a row per side, then a row per difference
            values = [
                [side.tag]
                + [_mean(report.cell(row, metric, side), side.key in report.best(row, metric)) for row in report.rows]
                for side in report.sides
            ]
            deltas = [
                [f"Δ {side.tag}"] + [_delta(report.delta(row, metric, side, as_printed=True)) for row in report.rows]
                for side in report.sides[1:]
            ]
            table = _github(values + deltas, [""] + [_row_label(report, row) for row in report.rows])
        parts.append(title + table + "\n")
    return "\n".join(parts)


def _short_header(kind: str, side: Side) -> str:
    return side.tag if kind == "value" else f"Δ {side.tag}"  # the notes say: Δ = the first side minus the other


def _headers(report: Report) -> list[str]:
    headers = ["category"]
    for metric, kind, side in _columns(report):
        label = LABELS.get(metric, metric)
        if not report.comparing:
            headers.append(label)
        elif kind == "value":
            headers.append(f"{label} {side.tag}")
        else:
            headers.append(f"{label} Δ vs {side.tag}")
    return headers


def _compact_markdown(report: Report) -> str:
    """A column per side, its metrics' means in one cell ("99.6/98.7/95.0"), as the compact LaTeX layout."""
    from harness.report.latex import SHORT_LABELS

    names = "/".join(SHORT_LABELS.get(m, LABELS.get(m, m)) for m in report.metrics)
    body = []
    for row in report.rows:
        cells = []
        for side in report.sides:
            shown = []
            for metric in report.metrics:
                cell = report.cell(row, metric, side)
                shown.append(_mean(cell, side.key in report.best(row, metric)))
            cells.append("/".join(shown))
        body.append([_row_label(report, row)] + cells)
    headers = ["category"] + [f"{side.tag} {names}" if report.comparing else names for side in report.sides]
    return _github(body, headers)


def latex(report: Report, layout: str = "compact", notes: str = "short", std: bool | None = None) -> str:
    """The LaTeX table (see harness.report.latex)."""
    from harness.report.latex import render

    return render(report, layout, notes, std).text


def csv_text(report: Report) -> str:
    """One row per (category, metric, side): values as fractions, unrounded, with the definition."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(
        [
            "category",
            "metric",
            "side",
            "name",
            "kind",
            "dataset",
            "value",
            "std",
            "n",
            "difference_a_minus_side",
            "definition",
            "label",
            "categories",
            "jobs_finished",
            "jobs_planned",
            "jobs_missing",
            "ci_low",
            "ci_high",
            "ci_method",
            "difference_ci_low",
            "difference_ci_high",
            "difference_p_value",
            "difference_test",
        ]
    )

    def number(x):
        return "" if x is None or (isinstance(x, float) and math.isnan(x)) else repr(round(float(x), 8))

    def progress(side) -> list:
        """A run's finished and planned jobs, and the missing ones (space-separated); empty without a plan."""
        if side.kind == "reference" or side.progress is None:
            return ["", "", ""]
        p = side.progress
        return [len(set(p.finished) & set(p.planned)), len(p.planned), " ".join(p.missing)]

    for category in report.rows:
        for metric in report.metrics:
            for side in report.sides:
                cell = report.cell(category, metric, side)
                if cell is None:
                    continue
                delta = report.delta(category, metric, side) if side is not report.sides[0] else None
                writer.writerow(
                    [
                        category,
                        metric,
                        side.key,
                        side.name,
                        side.kind,
                        side.dataset,
                        number(cell.mean),
                        number(cell.std),
                        cell.n,
                        number(delta),
                        side.definitions.get(metric, ""),
                        side.tag,
                        "" if cell.covers is None else cell.covers,
                        *progress(side),
                        number(cell.ci_low),
                        number(cell.ci_high),
                        cell.ci_method or "",
                        *_paired_columns(report.paired.get((category, metric, side.key)), number),
                    ]
                )
    return buffer.getvalue()


def _paired_columns(found, number) -> list[str]:
    """difference_ci_low, difference_ci_high, difference_p_value, difference_test of a paired difference."""
    if found is None:
        return ["", "", "", ""]
    return [number(found.low), number(found.high), number(found.p_value), found.method]
