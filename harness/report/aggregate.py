"""A run's records as per-category cells: mean and sample standard deviation over seeds.

The one place where seeds are averaged, so the end-of-run table, report tables and `check` agree.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict

from harness.report.model import MEAN, Cell
from harness.report.records import metric_value


def finite(values) -> list[float]:
    return [v for v in values if v is not None and not math.isnan(v)]


def sample_std(values: list[float]) -> float | None:
    return statistics.stdev(values) if len(values) > 1 else None


def category_cells(records: list[dict], metrics: list[str]) -> dict[tuple[str, str], Cell]:
    """(category, metric) -> Cell over the seeds where the metric is defined, plus the MEAN row.

    A category where the metric is undefined in every seed is a NaN cell with the reasons; one
    whose records lack the metric has no cell.
    """
    categories = list(dict.fromkeys(r["category"] for r in records))
    cells: dict[tuple[str, str], Cell] = {}
    for metric in metrics:
        per_seed: dict = defaultdict(dict)  # seed -> category -> value
        for category in categories:
            chosen = [r for r in records if r["category"] == category and metric in r.get("metrics", {})]
            if not chosen:
                continue
            values = [metric_value(r, metric) for r in chosen]
            for record, value in zip(chosen, values, strict=False):
                per_seed[record.get("seed")][category] = value
            defined = finite(values)
            if defined:
                cells[category, metric] = Cell(statistics.fmean(defined), sample_std(defined), len(defined))
            else:
                reasons = sorted(
                    {str(r["metrics"][metric].get("reason")) for r in chosen if r["metrics"][metric].get("reason")}
                )
                cells[category, metric] = Cell(math.nan, None, 0, "; ".join(reasons) or None)
        present = [cells[c, metric] for c in categories if (c, metric) in cells]
        if present:
            cells[MEAN, metric] = mean_cell(present, per_seed, categories)
    return cells


def mean_cell(category_cells: list[Cell], per_seed: dict, categories: list[str]) -> Cell:
    """Mean over categories; its spread is that of the per-seed category means when every seed has every category."""
    defined = finite(c.mean for c in category_cells)
    if not defined:
        return Cell(math.nan, None, 0, "undefined in every category")
    complete = [
        seed_values
        for seed_values in per_seed.values()
        if set(seed_values) >= set(categories) and len(finite(seed_values.values())) == len(defined)
    ]
    if len(per_seed) > 1 and len(complete) == len(per_seed):
        seed_means = [statistics.fmean(finite(v.values())) for v in complete]
        return Cell(statistics.fmean(seed_means), sample_std(seed_means), len(seed_means), covers=len(defined))
    return Cell(statistics.fmean(defined), None, 1, covers=len(defined))
