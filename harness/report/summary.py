"""The per-category table printed at the end of a run (mean over seeds, then a mean row)."""

from __future__ import annotations

import math

from tabulate import tabulate

from harness.metrics import LABELS
from harness.order import ordered
from harness.report.aggregate import category_cells
from harness.report.model import MEAN


def summary_table(records: list[dict], metrics: list[str], fmt: str = "github") -> str:
    """Percentages with one decimal; NaN and missing values shown as 'n/a'. Categories in the data set's
    published order, as every report prints them."""
    cells = category_cells(records, metrics)
    categories = ordered(records[0]["dataset"], [r["category"] for r in records]) if records else []

    def shown(category: str, metric: str) -> str:
        cell = cells.get((category, metric))
        return "n/a" if cell is None or math.isnan(cell.mean) else f"{100 * cell.mean:.1f}"

    body = [[category] + [shown(category, m) for m in metrics] for category in categories + [MEAN]]
    return tabulate(
        body, headers=["category"] + [LABELS.get(m, m) for m in metrics], tablefmt=fmt, disable_numparse=True
    )
