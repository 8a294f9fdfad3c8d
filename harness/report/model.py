"""The data model of a comparison table: cells, sides (a run or a published reference) and the report.

Built by harness.report.build, rendered by harness.report.tables and harness.report.plots, annotated
by harness.report.notes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

MEAN = "mean"  # the row name of the mean over categories
HINT = "Hint: "  # notes that are commands for the user, left out of the LaTeX table


@dataclass
class Cell:
    mean: float  # fraction 0..1; NaN when the metric is undefined
    std: float | None = None  # sample standard deviation over seeds, when there are several
    n: int = 1
    reason: str | None = None  # why the value is NaN
    covers: int | None = None  # mean rows of runs: how many categories the mean is over


@dataclass
class Side:
    key: str  # A, B, C ...
    name: str  # run folder name or reference name
    kind: str  # "run" or "reference"
    dataset: str
    cells: dict[tuple[str, str], Cell]  # (category or "mean", metric) -> Cell
    categories: list[str]
    definitions: dict[str, str]
    description: str = ""
    random_teacher: bool = False
    standard: dict[str, bool] = field(default_factory=dict)  # references: metric -> standard definition
    protocol: list[str] = field(default_factory=list)  # references: protocol notes
    records: list[dict] = field(default_factory=list)  # runs
    mixed_definitions: dict[str, list[str]] = field(default_factory=dict)  # runs: metric -> definitions, when several
    published_means: dict[str, float] = field(default_factory=dict)  # references: the mean row as published
    matched_means: list[str] = field(default_factory=list)  # references: metrics whose mean row covers the runs' categories
    training_protocol: str = "single"  # "unified": one model for all categories (the multi-class setting)
    path: Path | None = None

    @property
    def metrics(self) -> list[str]:
        return list(dict.fromkeys(metric for _, metric in self.cells))

    @property
    def tag(self) -> str:
        return self.key + ("†" if self.random_teacher else "")


@dataclass
class Report:
    sides: list[Side]
    metrics: list[str]
    categories: list[str]  # table rows before the mean row
    notes: list[str]
    caption: str
    label: str

    @property
    def comparing(self) -> bool:
        return len(self.sides) > 1

    @property
    def rows(self) -> list[str]:
        return self.categories + [MEAN]

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

    def best(self, category: str, metric: str) -> set[str]:
        """Keys of the sides with the highest value as printed (ties all count); empty unless two sides have one."""
        shown = {s.key: round(100 * c.mean, 1) for s in self.sides
                 if (c := self.cell(category, metric, s)) is not None and not math.isnan(c.mean)}
        if len(shown) < 2:
            return set()
        top = max(shown.values())
        return {key for key, value in shown.items() if value == top}

