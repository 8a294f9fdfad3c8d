"""LaTeX tables that fit a stated width, in three layouts (pandas' Styler writes the tabular).

compact     a `table` for one column (\\columnwidth >= 3.25 in, CVPR/ICCV; IEEE is 3.5 in): one column
            group per run or reference, its metrics in one cell ("99.6/98.7/95.0");
per-metric  a `table` per metric, each for one column, laid out as compact with one metric;
wide        a `table*` across both columns (\\textwidth >= 6.875 in): one column per run and metric,
            mean ± std when there are several seeds;
transposed  a `table*`: one column per category, one row per run or reference, a block per metric.

Each layout tries a few font sizes and column gaps, largest first, and takes the first whose width
(estimated from Computer Modern's character widths at 10 pt) fits its width; with `std=None` the ±
std is dropped before the font gets smaller than \\footnotesize. A table never claims a width it does
not fit: `auto` takes the first layout that fits (compact, per-metric, wide, transposed), and a layout
asked for by name that does not fit is refused (HarnessError naming the width and the options).
Numbers are aligned on the decimal point by siunitx; bold marks the best of the runs (never a
published number unless asked). Widths assume a 10 pt document; `tests/test_report_latex.py`
compiles every table in a document whose column (or text) is exactly the width it states.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field

import pandas as pd

from harness.errors import HarnessError
from harness.metrics import LABELS
from harness.order import category_name
from harness.report.model import Report
from harness.report.notes import FEWER, format_note
from harness.report.options import NOTES

# the width each layout is made to fit
TARGET_IN = {"compact": 3.25, "per-metric": 3.25, "wide": 6.875, "transposed": 6.875}
ENVIRONMENT = {"compact": "table", "per-metric": "table", "wide": "table*", "transposed": "table*"}
AUTO = ("compact", "per-metric", "wide", "transposed")  # what `--layout auto` tries, in order
LAYOUTS = AUTO  # every layout by name
POINTS_PER_INCH = 72.27
SIZES = {"small": 9.0, "footnotesize": 8.0, "scriptsize": 7.0}  # in a 10 pt document
# Computer Modern's smaller design sizes are wider per em than cmr10 scaled (cmr8 digits 0.531 em, cmr7 0.571 em)
DESIGN = {9.0: 1.028, 8.0: 1.0625, 7.0: 1.1428}
BOLD = 1.155  # bold digits (cmbx) against regular ones: a column with a bold number is this much wider
CANDIDATES = {  # (font size, \tabcolsep in pt), tried in order
    "compact": [("footnotesize", 4.0), ("footnotesize", 2.5), ("scriptsize", 2.0)],
    "wide": [("small", 5.0), ("footnotesize", 4.0), ("footnotesize", 2.5), ("scriptsize", 2.0)],
    "transposed": [("footnotesize", 3.0), ("footnotesize", 2.0), ("scriptsize", 1.5)],
}
SAFETY = 0.97  # estimates must fit within this share of the width
SHORT_LABELS = {
    "image_auroc": "I",
    "pixel_auroc": "P",
    "au_pro": "PRO",
    "pro_rd4ad": "PRO",
    "image_ap": "I-AP",
    "pixel_ap": "P-AP",
    "image_f1_max": "I-F1",
    "pixel_f1_max": "P-F1",
}
SISETUP = (
    r"\sisetup{reset-text-series=false, text-series-to-math=true, propagate-math-font=true, "
    r"separate-uncertainty=true, retain-zero-uncertainty=true, table-align-uncertainty=false}"
)
PACKAGES = {
    "compact": r"\usepackage{booktabs,siunitx}",
    "per-metric": r"\usepackage{booktabs,siunitx}",
    "wide": r"\usepackage{booktabs,siunitx}",
    "transposed": r"\usepackage{booktabs,siunitx,graphicx}",
}

# Computer Modern Roman (cmr10) advance widths in em, for width estimates
_CMR = dict(
    zip(
        "abcdefghijklmnopqrstuvwxyz",
        [
            0.5,
            0.5556,
            0.4444,
            0.5556,
            0.4444,
            0.3056,
            0.5,
            0.5556,
            0.2778,
            0.3056,
            0.5278,
            0.2778,
            0.8333,
            0.5556,
            0.5,
            0.5556,
            0.5278,
            0.3917,
            0.3944,
            0.3889,
            0.5556,
            0.5278,
            0.7222,
            0.5278,
            0.5278,
            0.4444,
        ],
        strict=False,
    )
)
_CMR |= dict(
    zip(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZ",
        [
            0.75,
            0.7083,
            0.7222,
            0.7639,
            0.6806,
            0.6528,
            0.7847,
            0.75,
            0.3611,
            0.5139,
            0.7778,
            0.625,
            0.9167,
            0.75,
            0.7778,
            0.6806,
            0.7778,
            0.7361,
            0.5556,
            0.7222,
            0.75,
            0.75,
            1.0278,
            0.75,
            0.75,
            0.6111,
        ],
        strict=False,
    )
)
_CMR |= {d: 0.5 for d in "0123456789"} | {
    " ": 0.3333,
    ".": 0.2778,
    ",": 0.2778,
    "-": 0.3333,
    "(": 0.3889,
    ")": 0.3889,
    "/": 0.5,
    "+": 0.7778,
    "%": 0.8333,
    ":": 0.2778,
    "'": 0.2778,
    "&": 0.7778,
    "_": 0.5,
    "†": 0.5,
    "=": 0.7778,
    "*": 0.5,
    "–": 0.5,
}

_LATEX_SYMBOLS = {
    "±": r"$\pm$",
    "Δ": r"$\Delta$",
    "−": r"$-$",
    "†": r"$^\dagger$",
    "–": "--",
    "—": "---",
    "≥": r"$\geq$",
    "≤": r"$\leq$",
    "×": r"$\times$",
}
_LATEX_SPECIALS = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "<": r"\textless{}",
    ">": r"\textgreater{}",
} | _LATEX_SYMBOLS


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


def _symbols(text: str) -> str:
    """Text pandas has escaped, with the symbols it leaves alone written as LaTeX."""
    return "".join(_LATEX_SYMBOLS.get(ch, ch) for ch in text)


def text_width(text: str, size: float) -> float:
    """Estimated width in pt of plain text set in Computer Modern at `size` pt."""
    return size * DESIGN.get(size, 1.0) * sum(_CMR.get(ch, 0.6) for ch in text)


# ---- what goes in the cells ------------------------------------------------------------------------


@dataclass
class Column:
    """One S column: the cells it holds decide its siunitx format."""

    integers: int = 1
    std_integers: int = 0  # 0: no ± std in this column
    bold: bool = False  # some cell is bold

    def take(self, cell, std: bool, bold: bool = False) -> None:
        if cell is None or math.isnan(cell.mean):
            return
        self.bold |= bold
        self.integers = max(self.integers, len(f"{100 * cell.mean:.1f}".split(".")[0]))
        if std and cell.spread is not None:  # the std over seeds, or with --ci the interval's larger half
            self.std_integers = max(self.std_integers, len(f"{100 * cell.spread:.1f}".split(".")[0]))

    def spec(self) -> str:
        fmt = f"{self.integers}.1" + (f"({self.std_integers}.1)" if self.std_integers else "")
        return f"S[table-format={fmt}]"

    def width(self, size: float) -> float:
        em = size * DESIGN.get(size, 1.0)
        width = em * (0.5 * self.integers + 0.2778 + 0.5)
        if self.std_integers:
            width += 1.3 * size + em * (0.5 * self.std_integers + 0.2778 + 0.5)  # " ± " and the std
        return width * (BOLD if self.bold else 1.0)


def _number(cell, std: bool) -> str:
    if cell is None:
        return "{--}"
    if math.isnan(cell.mean):
        return "{n/a}"
    text = f"{100 * cell.mean:.1f}"
    if std and cell.spread is not None:
        text += rf" \pm {100 * cell.spread:.1f}"
    return text


@dataclass
class Fit:
    """The size a layout was set at and its estimated width."""

    layout: str
    size: str
    tabcolsep: float
    std: bool
    width: float  # estimated, pt
    target: float  # pt
    warnings: list[str] = field(default_factory=list)

    @property
    def fits(self) -> bool:
        return self.width <= SAFETY * self.target


# ---- the grid of one layout --------------------------------------------------------------------------


@dataclass
class Grid:
    frame: pd.DataFrame  # cell text (LaTeX), index and columns as printed (unescaped)
    bold: pd.DataFrame  # where bold goes
    columns: list[Column]  # one per data column, in order
    separators: list[str]  # column-format text before each data column (after the stub)
    spans: list[tuple[str, int]]  # compact/wide: (side tag, columns) of the top header row
    blocks: dict[int, str] = field(default_factory=dict)  # transposed: data row -> metric label starting a block
    rules: set[int] = field(default_factory=set)  # data rows preceded by \midrule


def _metric_labels(report: Report, short: bool) -> dict[str, str]:
    labels = {m: SHORT_LABELS.get(m, LABELS.get(m, m)) if short else LABELS.get(m, m) for m in report.metrics}
    if len(set(labels.values())) < len(labels):
        labels = {m: LABELS.get(m, m) for m in report.metrics}
    return labels


def _row_label(report: Report, row: str) -> str:
    if not report.is_mean_row(row):
        return category_name(row)
    return report.row_name(row, short=True) + (FEWER if report.row_marked(row) else "")


def _shown(report: Report) -> list[tuple]:
    """(side, metric) pairs with at least one value: a column a side never reports is left out (a note says why)."""
    return [
        (side, metric)
        for side in report.sides
        for metric in report.metrics
        if any(report.cell(row, metric, side) is not None for row in report.rows)
    ]


def _grid(report: Report, layout: str, std: bool) -> Grid:
    if layout == "transposed":
        return _transposed_grid(report)
    labels = _metric_labels(report, short=layout == "compact")
    keys = _shown(report)
    index = [_row_label(report, row) for row in report.rows]
    text: dict[tuple[str, str], list[str]] = {}
    bold: dict[tuple[str, str], list[bool]] = {}
    columns: list[Column] = []
    separators: list[str] = []
    spans: list[tuple[str, int]] = []
    for side, metric in keys:
        column = Column()
        cells, marks = [], []
        for row in report.rows:
            cell = report.cell(row, metric, side)
            best = side.key in report.best(row, metric)
            column.take(cell, std, best)
            cells.append(_number(cell, std))
            marks.append(best)
        text[side.tag, labels[metric]] = cells
        bold[side.tag, labels[metric]] = marks
        columns.append(column)
        first = not spans or spans[-1][0] != side.tag
        separators.append("@{/}" if layout == "compact" and not first else "")
        if first:
            spans.append((side.tag, 1))
        else:
            spans[-1] = (side.tag, spans[-1][1] + 1)
    frame = pd.DataFrame(text, index=index)
    frame.columns = pd.MultiIndex.from_tuples(list(text))
    rules = {i for i, row in enumerate(report.rows) if report.is_mean_row(row)}
    rules |= {i + 1 for i, row in enumerate(report.rows[:-1]) if report.is_mean_row(row)}
    return Grid(
        frame, pd.DataFrame(bold, index=index).set_axis(frame.columns, axis=1), columns, separators, spans, rules=rules
    )


def _transposed_grid(report: Report) -> Grid:
    header = [_row_label(report, row) for row in report.rows]
    text: list[list[str]] = []
    bold: list[list[bool]] = []
    blocks: dict[int, str] = {}
    index: list[tuple[str, str]] = []
    shown = _shown(report)
    for metric in report.metrics:
        sides = [side for side in report.sides if (side, metric) in shown]
        if not sides:
            continue
        blocks[len(index)] = LABELS.get(metric, metric)
        for side in sides:
            index.append((metric, side.tag))
            text.append([_number(report.cell(row, metric, side), False) for row in report.rows])
            bold.append([side.key in report.best(row, metric) for row in report.rows])
    columns = []
    for row in report.rows:
        column = Column()
        for side, metric in shown:
            column.take(report.cell(row, metric, side), False, side.key in report.best(row, metric))
        columns.append(column)
    multi = pd.MultiIndex.from_tuples(index)
    frame = pd.DataFrame(text, index=multi, columns=header)
    return Grid(frame, pd.DataFrame(bold, index=multi, columns=header), columns, [""] * len(columns), [], blocks=blocks)


# ---- widths ------------------------------------------------------------------------------------------


def _wrap(text: str, available: float, size: float) -> list[str]:
    """A header as one line, or two split at the space that makes the wider line narrowest, when it is wider
    than `available` pt."""
    if text_width(text, size) <= available or " " not in text:
        return [text]
    words = text.split(" ")
    splits = [(" ".join(words[:i]), " ".join(words[i:])) for i in range(1, len(words))]
    return list(min(splits, key=lambda pair: max(text_width(part, size) for part in pair)))


def _measure(report: Report, layout: str, grid: Grid, size_name: str, sep: float) -> tuple[float, dict[str, list[str]]]:
    """Estimated width in pt, and each column group's header as lines."""
    size = SIZES[size_name]
    widths = [c.width(size) for c in grid.columns]
    if layout == "transposed":
        stub = max(text_width(tag, size) for _, tag in grid.frame.index)
        stub = max(stub, max(text_width(label, size) for label in grid.blocks.values()) - sum(widths) / 2)
        header = 0.78 * size  # rotated names: one line high
        return stub + 2 * sep + sum(max(w, header) + 2 * sep for w in widths), {}
    labels = [label for _, label in grid.frame.columns]
    stub = max(text_width(name, size) for name in [*grid.frame.index, "Category"])
    total, wraps = stub + 2 * sep, {}
    position = 0
    slash = 0.5 * size * DESIGN[size]
    for tag, count in grid.spans:
        part = widths[position : position + count]
        names = labels[position : position + count]
        if layout == "compact":  # the metrics' short labels share one header cell ("I/P/PRO")
            group = max(sum(part) + slash * (count - 1), text_width("/".join(names), size)) + 2 * sep
        else:
            group = sum(max(w, text_width(n, size)) + 2 * sep for w, n in zip(part, names, strict=False))
        wraps[tag] = _wrap(tag, group - 2 * sep, size)
        total += max(group, max(text_width(line, size) for line in wraps[tag]) + 2 * sep)
        position += count
    return total, wraps


def plan(report: Report, layout: str = "compact", std: bool | None = None, width: float | None = None) -> Fit:
    """The font size, column gap and ± std a layout is set with, and its estimated width; `width` in inches
    (default: the layout's, TARGET_IN)."""
    if layout not in AUTO:
        raise ValueError(f"layout {layout!r}: choose from {', '.join(AUTO)}")
    if layout == "per-metric":  # as wide as its widest table
        fits = [plan(part, "compact", std, width) for part in per_metric_reports(report)]
        return dataclasses.replace(max(fits, key=lambda f: f.width), layout=layout)
    target = (width or TARGET_IN[layout]) * POINTS_PER_INCH
    has_std = layout != "transposed" and any(c.spread is not None for s in report.sides for c in s.cells.values())
    candidates = CANDIDATES[layout]
    if not has_std or std is False:
        tries = [(False, c) for c in candidates]
    elif std:
        tries = [(True, c) for c in candidates]
    else:  # ± std while the font stays at \footnotesize or larger; in compact only with one metric per cell
        keep = layout != "compact" or len(report.metrics) == 1
        tries = [(True, c) for c in candidates if keep and SIZES[c[0]] >= 8] + [(False, c) for c in candidates]
    fits = []
    for with_std, (size, sep) in tries:
        grid = _grid(report, layout, with_std)
        fits.append(Fit(layout, size, sep, with_std, _measure(report, layout, grid, size, sep)[0], target))
        if fits[-1].fits:
            break
    return fits[-1]


def _inches(points: float) -> str:
    return f"{points / POINTS_PER_INCH:.2f}".rstrip("0").rstrip(".")


def choose_layout(report: Report, layout: str = "auto", std: bool | None = None, width: float | None = None) -> Fit:
    """The fit of `layout`, or with "auto" of the first layout that fits (compact, per-metric, wide, transposed);
    HarnessError (one line: the widths and the options) when none fits. `width` in inches applies to every
    layout tried (default: each layout's own, TARGET_IN)."""
    tried = [plan(report, name, std, width) for name in (AUTO if layout == "auto" else (layout,))]
    for fit in tried:
        if fit.fits:
            return fit
    if layout != "auto":
        fit = tried[0]
        raise HarnessError(
            f"the {layout} LaTeX table would be about {_inches(fit.width)} in wide, more than the "
            f"{_inches(fit.target)} in it is made for; use --layout auto (the first of {', '.join(AUTO)} that "
            "fits), another --layout, a larger --width, or fewer --metrics or runs"
        )
    widths = ", ".join(f"{fit.layout} {_inches(fit.width)} in for {_inches(fit.target)} in" for fit in tried)
    raise HarnessError(
        f"no LaTeX layout fits ({widths}); give fewer --metrics or runs, a larger --width, "
        "or leave LaTeX out with --format md,csv"
    )


def _slug(metric: str) -> str:
    """A metric as a label part: its printed name, lower case ("AU-PRO" -> "au-pro"); never the internal name."""
    return re.sub(r"[^a-z0-9]+", "-", LABELS.get(metric, metric).lower()).strip("-")


def per_metric_reports(report: Report, suffix: str = "") -> list[Report]:
    """The report split into one report per metric (the per-metric layout): each its own caption and label
    (the report's, then `suffix`, then the metric)."""
    from harness.report.build import default_caption

    shared = report.caption == default_caption(report.sides, report.metrics)
    parts = []
    for metric in report.metrics:
        caption = (
            default_caption(report.sides, [metric]) if shared else f"{report.caption} {LABELS.get(metric, metric)}."
        )
        parts.append(
            dataclasses.replace(
                report, metrics=[metric], caption=caption, label=f"{report.label}{suffix}-{_slug(metric)}"
            )
        )
    return parts


# ---- rendering ---------------------------------------------------------------------------------------


@dataclass
class Rendered:
    text: str
    fit: Fit


def render(
    report: Report,
    layout: str = "compact",
    notes: str = "short",
    std: bool | None = None,
    label_suffix: bool = False,
    width: float | None = None,
) -> Rendered:
    """The LaTeX of the report in `layout`, ready to \\input; `notes`: none, short or full.
    `label_suffix`: append the layout to the label (several layouts of one table in one paper)."""
    if notes not in NOTES:
        raise ValueError(f"notes {notes!r}: choose from {', '.join(NOTES)}")
    fit = choose_layout(report, layout, std, width)
    layout = fit.layout
    if layout == "per-metric":
        suffix = "-per-metric" if label_suffix else ""
        parts = [render(part, "compact", notes, std, False, width) for part in per_metric_reports(report, suffix)]
        text = "\n".join(part.text.replace("--layout compact", "--layout per-metric", 1) for part in parts)
        return Rendered(text, fit)
    grid = _grid(report, layout, fit.std)
    styler = grid.frame.style
    styler = styler.format(escape=None)
    styler = styler.format_index(_stub, axis=0, escape="latex")  # pandas escapes, then the formatter runs
    if layout == "transposed":
        styler = styler.format_index(lambda v: r"\rotatebox{90}{" + _stub(v) + "}", axis=1, escape="latex")
        styler = styler.hide(axis="index", level=0)
    else:
        wraps = _measure(report, layout, grid, fit.size, fit.tabcolsep)[1]
        styler = styler.format_index(lambda v: _header(wraps.get(v, [v])), axis=1, level=0)
        styler = styler.format_index(_symbols, axis=1, level=1, escape="latex")
    styler = styler.apply(lambda _: grid.bold.map(lambda b: "font-weight: bold;" if b else ""), axis=None)
    column_format = "l" + "".join(
        sep + column.spec() for sep, column in zip(grid.separators, grid.columns, strict=False)
    )
    label = report.label + (f"-{layout}" if label_suffix else "")
    body = styler.to_latex(
        column_format=column_format,
        hrules=True,
        siunitx=True,
        multicol_align="c",
        convert_css=True,
        environment=ENVIRONMENT[layout],
        position="tbp",
        position_float="centering",
        caption=latex_escape(report.caption),
        label=label,
    )
    lines = _arrange(body.splitlines(), report, layout, grid, fit)
    note_lines = _notes(report, layout, notes, fit)
    end = lines.index(rf"\end{{{ENVIRONMENT[layout]}}}")
    lines[end:end] = note_lines
    line = r"\columnwidth" if ENVIRONMENT[layout] == "table" else r"\textwidth"
    head = (
        f"% Written by `python -m harness report --layout {layout}`: made for {line} >= "
        f"{fit.target / POINTS_PER_INCH:g} in (10 pt document; about {fit.width / POINTS_PER_INCH:.2f} in wide). "
        f"Needs {PACKAGES[layout]}."
    )
    return Rendered("\n".join([head, *lines]) + "\n", fit)


def _stub(escaped: str) -> str:
    """A row label pandas has escaped; the mark of a mean over fewer categories as a superscript."""
    marked = escaped.endswith(FEWER)
    return _symbols(escaped[:-1] if marked else escaped) + (r"\textsuperscript{*}" if marked else "")


def _header(lines: list[str]) -> str:
    text = [_symbols(latex_escape(line)) for line in lines]
    return text[0] if len(text) == 1 else r"\begin{tabular}[b]{@{}c@{}}" + r" \\ ".join(text) + r"\end{tabular}"


def _arrange(lines: list[str], report: Report, layout: str, grid: Grid, fit: Fit) -> list[str]:
    """pandas' tabular with what it cannot write: font size and gap, the stub header, rules under the
    column groups and before mean rows, metric blocks of the transposed layout."""
    centering = lines.index(r"\centering")
    lines[centering + 1 : centering + 1] = [
        rf"\{fit.size}",
        rf"\setlength{{\tabcolsep}}{{{fit.tabcolsep:g}pt}}",
        SISETUP,
    ]
    top = lines.index(r"\toprule")
    first_rule = lines.index(r"\midrule", top)
    headers = lines[top + 1 : first_rule]
    if layout == "compact":  # one header cell per group: "I/P/PRO"
        labels = [label for _, label in grid.frame.columns]
        cells, position = [], 0
        for _, count in grid.spans:
            names = "/".join(_symbols(latex_escape(n)) for n in labels[position : position + count])
            cells.append(rf"\multicolumn{{{count}}}{{c}}{{{names}}}" if count > 1 else "{" + names + "}")
            position += count
        headers[-1] = "Category & " + " & ".join(cells) + r" \\"
    if layout != "transposed":
        headers[-1] = re.sub(r"^\{\}", "Category", headers[-1])
        rules, start = [], 2
        for _, count in grid.spans:
            rules.append(rf"\cmidrule(lr){{{start}-{start + count - 1}}}")
            start += count
        headers.insert(1, " ".join(rules))
    lines[top + 1 : first_rule] = headers
    first_rule = top + 1 + len(headers)
    data = lines[first_rule + 1 : first_rule + 1 + len(grid.frame)]
    arranged = []
    width = len(grid.columns) + 1
    for i, line in enumerate(data):
        if i in grid.blocks:
            if i:
                arranged.append(r"\midrule")
            arranged.append(rf"\multicolumn{{{width}}}{{@{{}}l}}{{\emph{{{latex_escape(grid.blocks[i])}}}}} \\")
        elif i in grid.rules:
            arranged.append(r"\midrule")
        arranged.append(line)
    lines[first_rule + 1 : first_rule + 1 + len(grid.frame)] = arranged
    return lines


def _notes(report: Report, layout: str, level: str, fit: Fit) -> list[str]:
    if level == "none":
        return []
    cell_metrics = report.metrics if layout == "compact" else None
    dashes = any(report.cell(row, metric, side) is None for side, metric in _shown(report) for row in report.rows)
    notes = [format_note(report, std=fit.std, cell_metrics=cell_metrics, dashes=dashes, brackets=False).text]
    notes += report.note_lines(level, hints=False)
    if not notes:
        return []
    body = r"\par ".join(
        r"\textsuperscript{*}" + _symbols(latex_escape(note[2:]))
        if note.startswith(FEWER + " ")
        else _symbols(latex_escape(note))
        for note in notes
    )
    return [
        r"\par\smallskip",
        rf"{{\{fit.size if fit.size != 'small' else 'footnotesize'}\raggedright " + body + r"\par}",
    ]
