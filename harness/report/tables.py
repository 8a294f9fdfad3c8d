"""Render a report as Markdown (tabulate), LaTeX (booktabs, ready to \\input) or CSV (every number, unrounded)."""

from __future__ import annotations

import csv
import io
import math

from tabulate import tabulate

from harness.metrics import LABELS
from harness.report.model import HINT, Report

DASH = "–"  # not reported

_LATEX_SPECIALS = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}",
    "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "<": r"\textless{}", ">": r"\textgreater{}",
    "±": r"$\pm$", "Δ": r"$\Delta$", "−": r"$-$", "†": r"$^\dagger$", "–": "--", "—": "---", "≥": r"$\geq$",
    "≤": r"$\leq$", "×": r"$\times$",
}


def latex_escape(text: str) -> str:
    """Text safe to typeset: LaTeX specials escaped, the symbols the notes use written as LaTeX."""
    out, quotes = [], 0
    for ch in str(text):
        if ch == '"':  # typographic quotes, opening and closing in turn
            out.append("``" if quotes % 2 == 0 else "''")
            quotes += 1
        else:
            out.append(_LATEX_SPECIALS.get(ch, ch))
    return "".join(out)


def percent(value: float) -> str:
    return f"{100 * value:.1f}"


def _value(cell, bold: bool, latex: bool) -> str:
    if cell is None:
        return "--" if latex else DASH
    if math.isnan(cell.mean):
        return "n/a"
    text = percent(cell.mean)
    if bold:
        text = rf"\textbf{{{text}}}" if latex else f"**{text}**"
    if cell.std is not None:
        text += (r" $\pm$ " if latex else " ± ") + percent(cell.std)
    return text


def _delta(delta: float | None, latex: bool) -> str:
    if delta is None:
        return "--" if latex else DASH
    text = f"{100 * delta:.1f}"
    if text in ("0.0", "-0.0"):
        return "0.0"
    if text.startswith("-"):
        return ("$-$" if latex else "-") + text[1:]
    return "+" + text


def _columns(report: Report) -> list[tuple[str, str, object]]:
    """(metric, kind, side) per value column; kind is "value" or "delta"."""
    columns = []
    for metric in report.metrics:
        columns += [(metric, "value", side) for side in report.sides]
        columns += [(metric, "delta", side) for side in report.sides[1:]]
    return columns


def _row(report: Report, category: str, latex: bool) -> list[str]:
    cells = []
    for metric, kind, side in _columns(report):
        if kind == "delta":
            cells.append(_delta(report.delta(category, metric, side, as_printed=True), latex))
        else:
            bold = side.key in report.best(category, metric)
            cells.append(_value(report.cell(category, metric, side), bold, latex))
    return cells


def markdown(report: Report) -> str:
    headers = ["category"]
    for metric, kind, side in _columns(report):
        label = LABELS.get(metric, metric)
        if not report.comparing:
            headers.append(label)
        elif kind == "value":
            headers.append(f"{label} ({side.key})")
        else:
            headers.append(f"{label} Δ(A−{side.key})")
    body = [[category] + _row(report, category, latex=False) for category in report.rows]
    table = tabulate(body, headers=headers, tablefmt="github", disable_numparse=True,
                     colalign=["left"] + ["right"] * (len(headers) - 1))
    notes = "\n".join(f"- {note}" for note in report.notes)
    return f"**{report.caption}**\n\n{table}\n\nNotes:\n{notes}\n"


def latex(report: Report) -> str:
    columns = _columns(report)
    lines = [
        "% Written by `python -m harness report`; needs \\usepackage{booktabs}. Use with \\input{report.tex}.",
        r"\begin{table}[tbp]",
        r"\centering",
        rf"\caption{{{latex_escape(report.caption)}}}",
        rf"\label{{{report.label}}}",
        r"\begin{tabular}{l" + "r" * len(columns) + "}",
        r"\toprule",
    ]
    if report.comparing:
        width = 2 * len(report.sides) - 1
        groups, rules = [], []
        for i, metric in enumerate(report.metrics):
            start = 2 + i * width
            groups.append(rf"\multicolumn{{{width}}}{{c}}{{{latex_escape(LABELS.get(metric, metric))}}}")
            rules.append(rf"\cmidrule(lr){{{start}-{start + width - 1}}}")
        lines.append(" & " + " & ".join(groups) + r" \\")
        lines.append(" ".join(rules))
        sub = [latex_escape(side.tag) if kind == "value" else rf"$\Delta$(A$-${side.key})" for _, kind, side in columns]
        lines.append("Category & " + " & ".join(sub) + r" \\")
    else:
        lines.append("Category & " + " & ".join(latex_escape(LABELS.get(m, m)) for m in report.metrics) + r" \\")
    lines.append(r"\midrule")
    for category in report.rows:
        if category == report.rows[-1]:
            lines.append(r"\midrule")
        name = "Mean" if category == report.rows[-1] else latex_escape(category)
        lines.append(name + " & " + " & ".join(_row(report, category, latex=True)) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    if report.notes:
        lines += [r"\par\smallskip", r"\parbox{\linewidth}{\footnotesize"]
        notes = [note for note in report.notes if not note.startswith(HINT)]  # commands do not belong in a paper
        lines += [latex_escape(note) + (r"\par" if i < len(notes) - 1 else "}") for i, note in enumerate(notes)]
    lines.append(r"\end{table}")
    return "\n".join(lines) + "\n"


def csv_text(report: Report) -> str:
    """One row per (category, metric, side): values as fractions, unrounded, with the definition."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["category", "metric", "side", "name", "kind", "dataset", "value", "std", "n",
                     "difference_a_minus_side", "definition"])

    def number(x):
        return "" if x is None or (isinstance(x, float) and math.isnan(x)) else repr(round(float(x), 8))

    for category in report.rows:
        for metric in report.metrics:
            for side in report.sides:
                cell = report.cell(category, metric, side)
                if cell is None:
                    continue
                delta = report.delta(category, metric, side) if side is not report.sides[0] else None
                writer.writerow([category, metric, side.key, side.name, side.kind, side.dataset, number(cell.mean),
                                 number(cell.std), cell.n, number(delta), side.definitions.get(metric, "")])
    return buffer.getvalue()
