"""The data model of a comparison table: cells, sides (a run or a published reference) and the report.

Built by harness.report.build, rendered by harness.report.tables, harness.report.latex,
harness.report.html and harness.report.plots, annotated by harness.report.notes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from harness.order import GROUP_NAMES, group_mean_key
from harness.report.records import Progress

MEAN = "mean"  # the row name of the mean over categories
HINT = "Hint: "  # notes that are commands for the user, left out of the LaTeX table
BOLD_CHOICES = ("runs", "all", "none")


@dataclass
class Cell:
    mean: float  # fraction 0..1; NaN when the metric is undefined
    std: float | None = None  # sample standard deviation over seeds, when there are several
    n: int = 1
    reason: str | None = None  # why the value is NaN
    covers: int | None = None  # mean rows: how many categories the mean is over
    ci_low: float | None = None  # report --ci: the interval (fractions) and the method that made it
    ci_high: float | None = None
    ci_method: str | None = None

    @property
    def has_interval(self) -> bool:
        return self.ci_low is not None and self.ci_high is not None and not math.isnan(self.ci_low)

    @property
    def spread(self) -> float | None:
        """What a single ± prints: the larger half of the interval when there is one, else the std over seeds."""
        if self.has_interval and self.ci_low is not None and self.ci_high is not None:
            return max(self.mean - self.ci_low, self.ci_high - self.mean)
        return self.std


@dataclass
class Side:
    key: str  # A, B, C ... (stable ids: CSV, file names)
    name: str  # run folder name or reference name
    kind: str  # "run", "reference", or "selected" (a run's best epoch on the test set: --selected-on-test)
    dataset: str
    cells: dict[tuple[str, str], Cell]  # (category, group mean row or "mean", metric) -> Cell
    categories: list[str]
    definitions: dict[str, str]
    description: str = ""
    random_teacher: bool = False
    standard: dict[str, bool] = field(default_factory=dict)  # references: metric -> standard definition
    protocol: list[str] = field(default_factory=list)  # references: protocol notes
    records: list[dict] = field(default_factory=list)  # runs
    mixed_definitions: dict[str, list[str]] = field(default_factory=dict)  # runs: metric -> definitions, when several
    published_means: dict[str, float] = field(default_factory=dict)  # references: the mean row as published
    matched_means: list[str] = field(
        default_factory=list
    )  # references: metrics whose mean row covers the runs' categories
    training_protocol: str = "single"  # "unified": one model for all categories (the multi-class setting)
    path: Path | None = None
    label: str = ""  # the name tables and figures print: --name, or a readable default
    label_given: bool = False  # set by --name
    progress: Progress | None = None  # runs: finished against planned jobs (None: no plan in the folder)

    @property
    def metrics(self) -> list[str]:
        return list(dict.fromkeys(metric for _, metric in self.cells))

    @property
    def tag(self) -> str:
        """The printed name, with † when the teacher had random weights."""
        return (self.label or self.name) + ("†" if self.random_teacher else "")


@dataclass(frozen=True)
class Note:
    text: str
    short: bool = False  # in the short notes (the LaTeX default)
    full: bool = True  # in the full notes (a short note may have a fuller twin)
    hint: bool = False  # a command for the user: never in a paper

    def __str__(self) -> str:
        return self.text


@dataclass
class Report:
    sides: list[Side]
    metrics: list[str]
    categories: list[str]  # table rows before the mean rows, in the published order
    notes: list[Note]
    caption: str
    label: str
    groups: list[tuple[str | None, list[str]]] = field(default_factory=list)  # [(group, categories)]
    bold: str = "runs"  # which sides compete for bold: runs, all, none
    intervals: str = ""  # report --ci: what the intervals are over ("test images" or "seeds"); "" without
    paired: dict = field(default_factory=dict)  # (row, metric, side key) -> a paired difference of A and that side

    def significant(self, row: str, metric: str, side: Side) -> bool:
        """True when the interval of the paired difference of A and `side` excludes 0 (report --ci --vs RUN)."""
        found = self.paired.get((row, metric, side.key))
        return bool(found is not None and found.excludes_zero)

    def __post_init__(self):
        if not self.groups:
            self.groups = [(None, list(self.categories))]

    @property
    def comparing(self) -> bool:
        return len(self.sides) > 1

    @property
    def dataset(self) -> str:
        return self.sides[0].dataset

    @property
    def grouped(self) -> bool:
        return len(self.groups) > 1

    @property
    def rows(self) -> list[str]:
        """Categories by group, each group followed by its mean row when there are several groups, then MEAN."""
        rows = []
        for group, categories in self.groups:
            rows += categories
            if self.grouped and group:
                rows.append(group_mean_key(group))
        return rows + [MEAN]

    @property
    def group_rows(self) -> dict[str, list[str]]:
        """Group mean row -> its categories."""
        return {group_mean_key(group): categories for group, categories in self.groups if self.grouped and group}

    def is_mean_row(self, row: str) -> bool:
        return row == MEAN or row in self.group_rows

    def row_name(self, row: str, *, short: bool = False) -> str:
        """How a row is printed (category names stay as the data set spells them)."""
        if row == MEAN:
            return "Mean"
        for group, _ in self.groups:
            if group and row == group_mean_key(group):
                name = GROUP_NAMES.get(group, group)
                return f"{name[:3]}. mean" if short else f"{name} mean"
        return row

    def cell(self, category: str, metric: str, side: Side) -> Cell | None:
        return side.cells.get((category, metric))

    def delta(self, category: str, metric: str, side: Side, *, as_printed: bool = False) -> float | None:
        """A minus `side` (fraction); None when either is missing or undefined. `as_printed`: the
        difference of the values as the table prints them (percent, one decimal), so the columns add up."""
        a, b = self.cell(category, metric, self.sides[0]), self.cell(category, metric, side)
        if a is None or b is None or math.isnan(a.mean) or math.isnan(b.mean):
            return None
        if as_printed:
            return (round(100 * a.mean, 1) - round(100 * b.mean, 1)) / 100
        return a.mean - b.mean

    def competing(self) -> list[Side]:
        """The sides bold chooses among: the runs (default), every side (best-epoch-on-test columns too), or none."""
        if self.bold == "none":
            return []
        return [s for s in self.sides if self.bold == "all" or s.kind == "run"]

    def best(self, category: str, metric: str) -> set[str]:
        """Keys of the competing sides with the highest value as printed (ties all count); empty unless two
        competing sides have one, and in a mean row whose competitors average different numbers of categories."""
        shown = {
            s.key: round(100 * c.mean, 1)
            for s in self.competing()
            if (c := self.cell(category, metric, s)) is not None and not math.isnan(c.mean)
        }
        if len(shown) < 2:
            return set()
        if len({self.mean_covers(category, metric, s) for s in self.competing() if s.key in shown}) > 1:
            return set()  # means over different numbers of categories: none is best
        top = max(shown.values())
        return {key for key, value in shown.items() if value == top}

    def mean_covers(self, row: str, metric: str, side: Side) -> int | None:
        """How many categories a mean row of a side is over: for a run, the categories it has the metric for
        (undefined values count: they have a note of their own); for a reference, as published or recomputed."""
        cell = self.cell(row, metric, side)
        if not self.is_mean_row(row) or cell is None:
            return None
        if side.kind in ("run", "selected"):
            members = self.categories if row == MEAN else self.group_rows[row]
            return sum((c, metric) in side.cells for c in members)
        return cell.covers

    def fewer_categories(self, row: str, metric: str, side: Side) -> bool:
        """True when this side's mean in `row` is over fewer categories than another side's mean there."""
        covers = self.mean_covers(row, metric, side)
        if covers is None:
            return False
        others = [c for s in self.sides if s is not side and (c := self.mean_covers(row, metric, s)) is not None]
        return any(covers < other for other in others)

    def row_marked(self, row: str) -> bool:
        """A mean row where some side's mean is over fewer categories than another's (marked with * in tables)."""
        return any(self.fewer_categories(row, metric, side) for metric in self.metrics for side in self.sides)

    def any_fewer(self) -> bool:
        return any(
            self.fewer_categories(row, metric, side)
            for row in self.rows
            for metric in self.metrics
            for side in self.sides
        )

    def note_lines(self, level: str, *, hints: bool = True) -> list[str]:
        """Notes at a level: none, short or full."""
        if level == "none":
            return []
        return [n.text for n in self.notes if (n.full if level == "full" else n.short) and (hints or not n.hint)]
