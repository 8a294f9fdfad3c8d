"""The per-category table printed at the end of a run (mean over seeds, then a mean row)."""

from __future__ import annotations

import math
from collections import defaultdict

from tabulate import tabulate

LABELS = {"image_auroc": "I-AUROC", "pixel_auroc": "P-AUROC", "au_pro": "AU-PRO", "pro_rd4ad": "PRO (RD4AD)",
          "image_ap": "I-AP", "pixel_ap": "P-AP", "image_f1_max": "I-F1max", "pixel_f1_max": "P-F1max"}


def _mean(values: list[float]) -> float:
    finite = [v for v in values if v is not None and not math.isnan(v)]
    return sum(finite) / len(finite) if finite else math.nan


def category_means(records: list[dict], metrics: list[str]) -> dict[str, dict[str, float]]:
    """{category: {metric: mean over seeds}} in first-seen category order."""
    values: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for record in records:
        for name in metrics:
            value = record.get("metrics", {}).get(name, {}).get("value")
            values[record["category"]][name].append(math.nan if value is None else value)
    return {category: {name: _mean(v[name]) for name in metrics} for category, v in values.items()}


def summary_table(records: list[dict], metrics: list[str], fmt: str = "github") -> str:
    """Percentages with one decimal; NaN shown as 'n/a'."""
    means = category_means(records, metrics)
    rows = [[category] + [means[category][m] for m in metrics] for category in means]
    rows.append(["mean"] + [_mean([means[c][m] for c in means]) for m in metrics])

    def cell(value):
        return "n/a" if isinstance(value, float) and math.isnan(value) else f"{100 * value:.1f}"

    body = [[row[0]] + [cell(v) for v in row[1:]] for row in rows]
    return tabulate(body, headers=["category"] + [LABELS.get(m, m) for m in metrics], tablefmt=fmt, disable_numparse=True)
