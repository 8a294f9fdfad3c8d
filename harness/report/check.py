"""Metric drift check: compare a run with a committed baseline; exit 1 on drift, 2 on bad input.

Baseline file (JSON):
  {"schema": 1, "tolerance": {"atol": 0.005, "rtol": 0.0},
   "metric_tolerance": {"au_pro": {"atol": 0.01}},          optional, per metric
   "values": {"<category>": {"<metric>": 0.987, ...}, ...},  means over seeds, fractions 0..1
   "definitions": {"<metric>": "..."}, "source": {...provenance of the run it was made from}}
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from tabulate import tabulate

from harness.errors import HarnessError
from harness.metrics import LABELS
from harness.report.aggregate import category_cells
from harness.report.records import load_records
from harness.store import read_json, write_json

DEFAULT_TOLERANCE = {"atol": 0.005, "rtol": 0.0}


@dataclass
class Comparison:
    category: str
    metric: str
    baseline: float
    now: float
    atol: float
    rtol: float
    allow_improvement: bool

    @property
    def difference(self) -> float:
        return self.now - self.baseline

    @property
    def status(self) -> str:
        if math.isnan(self.baseline) and math.isnan(self.now):
            return "ok"
        if math.isnan(self.baseline) or math.isnan(self.now):
            return "DRIFT"
        if abs(self.difference) <= self.atol + self.rtol * abs(self.baseline):
            return "ok"
        if self.difference > 0 and self.allow_improvement:
            return "improved"
        return "DRIFT"


def _value(x) -> float:
    return math.nan if x is None else float(x)


def category_means(records: list[dict], metrics: list[str]) -> dict[str, dict[str, float]]:
    """{category: {metric: mean over seeds}} in first-seen category order; NaN where undefined or absent."""
    cells = category_cells(records, metrics)
    categories = dict.fromkeys(r["category"] for r in records)
    return {c: {m: cells[c, m].mean if (c, m) in cells else math.nan for m in metrics} for c in categories}


def load_baseline(path: str | Path) -> dict:
    baseline = read_json(Path(path))
    if not isinstance(baseline.get("values"), dict) or not baseline["values"]:
        raise HarnessError(f"{path}: not a baseline file (expected a 'values' object of category -> metric -> value)")
    return baseline


def compare(run: str | Path, baseline: dict, *, metrics: list[str] | None = None, atol: float | None = None,
            rtol: float | None = None, allow_improvement: bool = False) -> list[Comparison]:
    """Every (category, metric) of the baseline against the run; missing ones raise HarnessError listing them."""
    records = load_records(run)
    wanted = metrics or sorted({m for values in baseline["values"].values() for m in values})
    means = category_means(records, wanted)
    missing_categories = [c for c in baseline["values"] if c not in means]
    missing_metrics = sorted({m for r in records for m in wanted if m not in r.get("metrics", {})})
    if missing_categories or missing_metrics:
        parts = []
        if missing_categories:
            parts.append(f"categories missing from the run: {', '.join(missing_categories)}")
        if missing_metrics:
            parts.append(f"metrics missing from the run: {', '.join(missing_metrics)}")
        raise HarnessError(f"{run}: " + "; ".join(parts))
    default = DEFAULT_TOLERANCE | baseline.get("tolerance", {})
    comparisons = []
    for category, values in baseline["values"].items():
        for metric in wanted:
            if metric not in values:
                raise HarnessError(f"baseline has no value of '{metric}' for category '{category}'")
            tolerance = default | baseline.get("metric_tolerance", {}).get(metric, {})
            comparisons.append(Comparison(
                category, metric, _value(values[metric]), means[category][metric],
                atol if atol is not None else float(tolerance["atol"]),
                rtol if rtol is not None else float(tolerance["rtol"]),
                allow_improvement))
    return comparisons


def comparison_table(comparisons: list[Comparison]) -> str:
    def cell(x: float) -> str:
        return "n/a" if math.isnan(x) else f"{x:.4f}"

    rows = [[c.category, LABELS.get(c.metric, c.metric), cell(c.baseline), cell(c.now),
             "n/a" if math.isnan(c.difference) else f"{round(c.difference, 4) + 0.0:+.4f}", f"±{c.atol + c.rtol * abs(c.baseline):.4f}"
             if not math.isnan(c.baseline) else "", c.status] for c in comparisons]
    return tabulate(rows, headers=["category", "metric", "baseline", "now", "difference", "tolerance", "status"],
                    tablefmt="github", disable_numparse=True)


def make_baseline(run: str | Path, previous: dict | None = None, metrics: list[str] | None = None) -> dict:
    """A baseline from a run's per-category means; tolerances carried over from `previous`."""
    records = load_records(run)
    names = metrics or sorted({m for r in records for m in r.get("metrics", {})})
    means = category_means(records, names)
    definitions = {}
    for record in records:
        for name in names:
            definitions.setdefault(name, record.get("metrics", {}).get(name, {}).get("definition"))
    first = records[0]
    previous = previous or {}
    return {
        **({"about": previous["about"]} if "about" in previous else {}),
        "schema": 1,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "tolerance": previous.get("tolerance", dict(DEFAULT_TOLERANCE)),
        "metric_tolerance": previous.get("metric_tolerance", {}),
        "values": {c: {m: (None if math.isnan(v) else round(v, 6)) for m, v in row.items()} for c, row in means.items()},
        "definitions": definitions,
        "source": {
            "run": str(run), "dataset": first.get("dataset"), "method": first.get("method"),
            "profile": first.get("profile"), "seeds": sorted({r.get("seed") for r in records}),
            "settings": first.get("settings"), "provenance": first.get("provenance"),
        },
    }


def update_baseline(run: str | Path, path: str | Path, metrics: list[str] | None = None) -> dict:
    previous = read_json(Path(path)) if Path(path).is_file() else None
    baseline = make_baseline(run, previous, metrics)
    write_json(Path(path), baseline)
    return baseline
