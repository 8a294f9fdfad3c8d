"""Render a report as Markdown (tabulate) or CSV (every number, unrounded); LaTeX: harness.report.latex."""

from __future__ import annotations

import csv
import io
import math

from tabulate import tabulate

from harness.metrics import LABELS
from harness.report.model import Report, Side
from harness.report.notes import format_note

DASH = "–"  # not reported
SIGNIFICANT = "‡"  # report --ci --vs RUN: the interval of the paired difference excludes 0


def percent(value: float) -> str:
    return f"{100 * value:.1f}"


def _value(cell, bold: bool) -> str:
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


def _delta(delta: float | None) -> str:
    if delta is None:
        return DASH
    text = f"{100 * delta:.1f}"
    if text in ("0.0", "-0.0"):
        return "0.0"
    return text if text.startswith("-") else "+" + text


def _columns(report: Report) -> list[tuple[str, str, Side]]:
    """(metric, kind, side) per value column; kind is "value" or "delta"."""
    columns = []
    for metric in report.metrics:
        columns += [(metric, "value", side) for side in report.sides]
        columns += [(metric, "delta", side) for side in report.sides[1:]]
    return columns


def _row(report: Report, row: str) -> list[str]:
    cells = []
    for metric, kind, side in _columns(report):
        if kind == "delta":
            mark = SIGNIFICANT if report.significant(row, metric, side) else ""
            cells.append(_delta(report.delta(row, metric, side, as_printed=True)) + mark)
        else:
            bold = side.key in report.best(row, metric)
            cells.append(_value(report.cell(row, metric, side), bold))
    return cells


def markdown(report: Report, notes: str = "full") -> str:
    """Metric by metric: each side, then the first side minus each other side (Δ); `notes`: none, short or full."""
    headers = ["category"]
    for metric, kind, side in _columns(report):
        label = LABELS.get(metric, metric)
        if not report.comparing:
            headers.append(label)
        elif kind == "value":
            headers.append(f"{label} {side.tag}")
        else:
            headers.append(f"{label} Δ vs {side.tag}")
    body = [
        [report.row_name(row) + ("\\*" if report.row_marked(row) else "")] + _row(report, row) for row in report.rows
    ]
    table = tabulate(
        body,
        headers=headers,
        tablefmt="github",
        disable_numparse=True,
        colalign=["left"] + ["right"] * (len(headers) - 1),
    )
    lines = [] if notes == "none" else [format_note(report, std=True, delta=True).text] + report.note_lines(notes)
    text = f"**{report.caption}**\n\n{table}\n"
    if lines:
        text += "\nNotes:\n" + "\n".join(f"- {note}" for note in lines) + "\n"
    return text


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
