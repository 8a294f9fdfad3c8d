"""A self-contained HTML report: the table, its notes and every figure in one file that opens offline.

pandas' Styler writes and escapes the table; figures are PNGs embedded as base64 data URLs; the page
loads nothing from anywhere (no scripts, fonts or style sheets outside the file).
"""

from __future__ import annotations

import base64
import html
import math

import pandas as pd

from harness.metrics import LABELS
from harness.order import category_name
from harness.report.model import Report
from harness.report.notes import FEWER, format_note
from harness.report.tables import interval_text

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", "DejaVu Sans", sans-serif; margin: 2rem auto;
       max-width: 72rem; padding: 0 1rem; color: #1a1a1a; line-height: 1.45; }
h1 { font-size: 1.35rem; } h2 { font-size: 1.1rem; margin-top: 2rem; border-bottom: 1px solid #ddd; }
table.results { border-collapse: collapse; font-variant-numeric: tabular-nums; font-size: 0.9rem; margin: 1rem 0; }
table.results th, table.results td { padding: 0.2rem 0.6rem; text-align: right; white-space: nowrap; }
table.results thead th { text-align: center; border-bottom: 1px solid #888; }
table.results thead tr:first-child th { border-top: 2px solid #333; }
table.results tbody tr:last-child td, table.results tbody tr:last-child th { border-bottom: 2px solid #333; }
table.results tbody th { text-align: left; font-weight: normal; }
table.results tr.mean td, table.results tr.mean th { background: #f0f0f0; font-style: italic; }
ul.notes { font-size: 0.85rem; color: #333; padding-left: 1.2rem; }
figure { margin: 1rem 0; display: inline-block; vertical-align: top; max-width: 100%; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { font-size: 0.85rem; color: #444; }
footer { margin-top: 2rem; font-size: 0.75rem; color: #777; }
"""


def _cell(cell) -> str:
    if cell is None:
        return "–"
    if math.isnan(cell.mean):
        return "n/a"
    text = f"{100 * cell.mean:.1f}" + (f" ± {100 * cell.std:.1f}" if cell.std is not None else "")
    return text + interval_text(cell)


def table_html(report: Report) -> str:
    """The table: one column group per run or reference, one column per metric, mean ± std."""
    rows = report.rows
    index = [
        (report.row_name(row) + (FEWER if report.row_marked(row) else ""))
        if report.is_mean_row(row)
        else category_name(row)
        for row in rows
    ]
    data, bold = {}, {}
    for side in report.sides:
        for metric in report.metrics:
            if all(report.cell(row, metric, side) is None for row in rows):
                continue  # a metric this side never reports
            key = (side.tag, LABELS.get(metric, metric))
            data[key] = [_cell(report.cell(row, metric, side)) for row in rows]
            bold[key] = [side.key in report.best(row, metric) for row in rows]
    frame = pd.DataFrame(data, index=index)
    frame.columns = pd.MultiIndex.from_tuples(list(data))
    weights = pd.DataFrame(bold, index=index).set_axis(frame.columns, axis=1)
    styler = (
        frame.style.format(escape="html")
        .format_index(escape="html", axis=0)
        .format_index(escape="html", axis=1)
        .apply(lambda _: weights.map(lambda b: "font-weight: bold" if b else ""), axis=None)
        .set_table_attributes('class="results"')
        .set_uuid("results")
    )
    text = styler.to_html()
    for i, row in enumerate(rows):  # mean rows get a class the style sheet shades
        if report.is_mean_row(row):
            text = text.replace(
                f'<tr>\n      <th id="T_results_level0_row{i}"',
                f'<tr class="mean">\n      <th id="T_results_level0_row{i}"',
                1,
            )
    return text


def _image(png: bytes, alt: str) -> str:
    return f'<img src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}" alt="{html.escape(alt)}">'


def page(report: Report, notes: str = "full", figures=None) -> str:
    """The whole report as one HTML document."""
    parts = [f"<h1>{html.escape(report.caption)}</h1>", table_html(report)]
    lines = [] if notes == "none" else [format_note(report, std=True).text] + report.note_lines(notes)
    if lines:
        parts.append('<ul class="notes">' + "".join(f"<li>{html.escape(line)}</li>" for line in lines) + "</ul>")
    if figures is not None:
        shown = [f for f in figures.figures if f.png]
        for heading, chosen in (
            ("Figures", [f for f in shown if not f.stem.startswith("gallery-")]),
            ("Gallery", [f for f in shown if f.stem.startswith("gallery-")]),
        ):
            if chosen:
                parts.append(f"<h2>{heading}</h2>")
                parts += [
                    f"<figure>{_image(f.png, f.title)}<figcaption>{html.escape(f.title)}</figcaption></figure>"
                    for f in chosen
                ]
        if figures.notes:
            parts.append('<ul class="notes">' + "".join(f"<li>{html.escape(n)}</li>" for n in figures.notes) + "</ul>")
    body = "\n".join(parts)
    return (
        f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(report.caption)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n{body}\n"
        f"<footer>Written by <code>python -m harness report</code>.</footer>\n</body>\n</html>\n"
    )
