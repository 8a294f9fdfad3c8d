"""Metric drift check: compare a run with a committed baseline; exit 1 on drift, 2 when they cannot be compared.

Baseline file (JSON, schema 2):
  {"schema": 2, "tolerance": {"atol": 0.005, "rtol": 0.0, "k": 3.0},
   "metric_tolerance": {"au_pro": {"atol": 0.01}},                    optional, per metric
   "values": {"<category>": {"<metric>": {"mean": 0.98, "std": 0.004, "n": 3}, ...}, ...},
   "seeds": {"<category>": [0, 1, 2]}, "settings": {...}, "machine": {...},
   "definitions": {"<metric>": "..."}, "source": {...provenance of the run it was made from}}
Schema 1 baselines (plain numbers in "values", one value per category and metric) are still read.

The rule: a value drifted when |mean_run - mean_base| > max(atol + rtol * |mean_base|,
k * s * sqrt(1/n_run + 1/n_base)), where s is the pooled sample standard deviation over seeds of the
run and the baseline (0 with one seed each: then only atol and rtol apply).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from tabulate import tabulate

from harness.errors import HarnessError
from harness.metrics import LABELS
from harness.report.aggregate import category_cells
from harness.report.records import load_records
from harness.store import read_json, result_settings, write_json

DEFAULT_TOLERANCE = {"atol": 0.005, "rtol": 0.0, "k": 3.0}
MACHINE_KIND = ("cpu_model", "cpu_capability", "numerics", "torch_threads", "gpu")  # what makes floats differ


class NotComparable(HarnessError):
    """The run and the baseline differ in what they measured; `problems` holds one line per difference."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class Stats:
    mean: float
    std: float  # sample standard deviation over seeds; 0.0 with one seed
    n: int


@dataclass
class Comparison:
    category: str
    metric: str
    baseline: Stats
    now: Stats
    atol: float
    rtol: float
    k: float
    allow_improvement: bool

    @property
    def difference(self) -> float:
        return self.now.mean - self.baseline.mean

    @property
    def pooled_std(self) -> float:
        """Pooled sample standard deviation of the two seed sets (0 when neither has two seeds)."""
        dof = self.now.n + self.baseline.n - 2
        if dof <= 0:
            return 0.0
        return math.sqrt(((self.now.n - 1) * self.now.std**2 + (self.baseline.n - 1) * self.baseline.std**2) / dof)

    @property
    def allowed(self) -> float:
        """How far the means may move: the tolerance, or what the seed spread explains, whichever is larger."""
        spread = self.k * self.pooled_std * math.sqrt(1 / max(self.now.n, 1) + 1 / max(self.baseline.n, 1))
        return max(self.atol + self.rtol * abs(self.baseline.mean), spread)

    @property
    def status(self) -> str:
        base, now = self.baseline.mean, self.now.mean
        if math.isnan(base) and math.isnan(now):
            return "ok"
        if math.isnan(base) or math.isnan(now):
            return "DRIFT"
        if abs(self.difference) <= self.allowed:
            return "ok"
        if self.difference > 0 and self.allow_improvement:
            return "improved"
        return "DRIFT"


def _stats(entry) -> Stats:
    """A baseline value: {"mean", "std", "n"} (schema 2) or a plain number (schema 1: one seed's worth)."""
    if isinstance(entry, dict):
        mean = entry.get("mean")
        return Stats(
            math.nan if mean is None else float(mean), float(entry.get("std") or 0.0), int(entry.get("n") or 1)
        )
    return Stats(math.nan if entry is None else float(entry), 0.0, 1)


def load_baseline(path: str | Path) -> dict:
    baseline = read_json(Path(path))
    if not isinstance(baseline.get("values"), dict) or not baseline["values"]:
        raise HarnessError(f"{path}: not a baseline file (expected a 'values' object of category -> metric -> value)")
    return baseline


def run_stats(records: list[dict], metrics: list[str]) -> dict[str, dict[str, Stats]]:
    """{category: {metric: Stats over seeds}}; NaN mean where the metric is undefined or absent."""
    cells = category_cells(records, metrics)
    categories = dict.fromkeys(r["category"] for r in records)
    stats: dict[str, dict[str, Stats]] = {}
    for category in categories:
        stats[category] = {}
        for metric in metrics:
            cell = cells.get((category, metric))
            stats[category][metric] = (
                Stats(math.nan, 0.0, 0) if cell is None else Stats(cell.mean, cell.std or 0.0, max(cell.n, 1))
            )
    return stats


def compared_settings(records: list[dict]) -> dict:
    """The settings that change results, as the run's first record has them (seeds compared separately)."""
    first = records[0]
    # speed-only settings are not compared, nor the seed (compared as a set)
    settings = {k: v for k, v in sorted(result_settings(first).items()) if k != "seed"}
    return {
        "dataset": first.get("dataset"),
        "method": first.get("method"),
        "protocol": first.get("protocol") or "single",
        **settings,
        "numerics": machine_of(first).get("numerics", "native"),
    }


def machine_of(record: dict) -> dict:
    """The machine facts a record carries (older records: what their provenance had)."""
    provenance = record.get("provenance") or {}
    machine = dict(provenance.get("machine") or {})
    machine.setdefault("torch_threads", provenance.get("torch_threads"))
    return machine


def seeds_by_category(records: list[dict]) -> dict[str, list]:
    seeds: dict[str, list] = {}
    for record in records:
        seeds.setdefault(record["category"], [])
        if record.get("seed") not in seeds[record["category"]]:
            seeds[record["category"]].append(record.get("seed"))
    return {category: sorted(found, key=str) for category, found in seeds.items()}


def _seed_lines(records: list[dict], baseline: dict) -> list[str]:
    expected = baseline.get("seeds") or (baseline.get("source") or {}).get("seeds")
    if not expected:
        return []
    lines = []
    for category, have in seeds_by_category(records).items():
        wanted = expected.get(category, []) if isinstance(expected, dict) else expected
        missing = [s for s in wanted if s not in have]
        if missing:
            lines.append(
                f"seeds missing from the run for {category}: {', '.join(map(str, missing))} "
                f"(the baseline has {', '.join(map(str, wanted))}; run them, or remake the baseline with --update)"
            )
    return lines


def _settings_lines(records: list[dict], baseline: dict) -> list[str]:
    expected = baseline.get("settings")
    if not expected:
        return []
    now = compared_settings(records)
    expected = {"protocol": "single"} | expected  # baselines made before protocols existed: one model per category
    lines = []
    for key in dict.fromkeys([*expected, *now]):
        if key in expected and key in now and expected[key] != now[key]:
            lines.append(f"setting {key} differs: run {now[key]!r}, baseline {expected[key]!r}")
    return lines


def problems(records: list[dict], baseline: dict, wanted: list[str]) -> list[str]:
    """Everything that makes the run and the baseline incomparable, one line each."""
    categories = list(dict.fromkeys(r["category"] for r in records))
    lines = []
    missing_categories = [c for c in baseline["values"] if c not in categories]
    if missing_categories:
        lines.append(f"categories missing from the run: {', '.join(missing_categories)}")
    extra = [c for c in categories if c not in baseline["values"]]
    if extra:
        lines.append(
            f"categories in the run but not in the baseline: {', '.join(extra)} "
            "(drop them with --categories, or add them to the baseline with --update)"
        )
    missing_metrics = sorted({m for r in records for m in wanted if m not in r.get("metrics", {})})
    if missing_metrics:
        lines.append(f"metrics missing from the run: {', '.join(missing_metrics)}")
    for category, values in baseline["values"].items():
        absent = [m for m in wanted if m not in values]
        if absent:
            lines.append(f"baseline has no value of {', '.join(absent)} for category '{category}'")
    return lines + _seed_lines(records, baseline) + _settings_lines(records, baseline)


def compare(
    run: str | Path,
    baseline: dict,
    *,
    metrics: list[str] | None = None,
    atol: float | None = None,
    rtol: float | None = None,
    allow_improvement: bool = False,
) -> list[Comparison]:
    """Every (category, metric) of the baseline against the run; NotComparable lists what stands in the way."""
    records = load_records(run)
    wanted = metrics or sorted({m for values in baseline["values"].values() for m in values})
    found = problems(records, baseline, wanted)
    if found:
        raise NotComparable(found)
    stats = run_stats(records, wanted)
    default = DEFAULT_TOLERANCE | baseline.get("tolerance", {})
    comparisons = []
    for category, values in baseline["values"].items():
        for metric in wanted:
            tolerance = default | baseline.get("metric_tolerance", {}).get(metric, {})
            comparisons.append(
                Comparison(
                    category,
                    metric,
                    _stats(values[metric]),
                    stats[category][metric],
                    atol if atol is not None else float(tolerance["atol"]),
                    rtol if rtol is not None else float(tolerance["rtol"]),
                    float(tolerance["k"]),
                    allow_improvement,
                )
            )
    return comparisons


def machines_differ(run: str | Path, baseline: dict) -> tuple[dict, dict] | None:
    """(baseline's machine, run's machine) when they are of different kinds, else None."""
    base = baseline.get("machine") or {}
    now = machine_of(load_records(run)[0])
    if not base:
        return None
    if any(base.get(key) != now.get(key) for key in MACHINE_KIND):
        return base, now
    return None


def describe_machine(machine: dict) -> str:
    parts = [
        machine.get("cpu_model") or "unknown CPU",
        f"ATen {machine.get('cpu_capability') or '?'}",
        f"{machine.get('torch_threads') or '?'} thread(s)",
        f"numerics {machine.get('numerics') or 'native'}",
    ]
    if machine.get("gpu"):
        parts.append(f"GPU {machine['gpu']}")
    return ", ".join(parts)


def comparison_table(comparisons: list[Comparison]) -> str:
    def cell(x: float) -> str:
        return "n/a" if math.isnan(x) else f"{x:.4f}"

    def spread(stats: Stats) -> str:
        return f" ±{stats.std:.4f} (n={stats.n})" if stats.n > 1 else ""

    rows = [
        [
            c.category,
            LABELS.get(c.metric, c.metric),
            cell(c.baseline.mean) + spread(c.baseline),
            cell(c.now.mean) + spread(c.now),
            "n/a" if math.isnan(c.difference) else f"{round(c.difference, 4) + 0.0:+.4f}",
            f"±{c.allowed:.4f}" if not math.isnan(c.baseline.mean) else "",
            c.status,
        ]
        for c in comparisons
    ]
    return tabulate(
        rows,
        headers=["category", "metric", "baseline", "now", "difference", "allowed", "status"],
        tablefmt="github",
        disable_numparse=True,
    )


def drift_summary(comparisons: list[Comparison]) -> str | None:
    """One line naming each drifted value with its difference; None when nothing drifted."""
    drifted = [c for c in comparisons if c.status == "DRIFT"]
    if not drifted:
        return None
    named = ", ".join(
        f"{c.category}/{c.metric} {'n/a' if math.isnan(c.difference) else f'{round(c.difference, 4) + 0.0:+.4f}'}"
        for c in drifted
    )
    return f"drift in {len(drifted)} of {len(comparisons)} values: {named}"


def make_baseline(run: str | Path, previous: dict | None = None, metrics: list[str] | None = None) -> dict:
    """A baseline from a run's per-category means and spreads over seeds; tolerances carried over from `previous`."""
    records = load_records(run)
    names = metrics or sorted({m for r in records for m in r.get("metrics", {})})
    stats = run_stats(records, names)
    definitions = {}
    for record in records:
        for name in names:
            definitions.setdefault(name, record.get("metrics", {}).get(name, {}).get("definition"))
    first = records[0]
    previous = previous or {}

    def entry(value: Stats) -> dict:  # unrounded: a baseline can demand the same bits (--atol 0 --rtol 0)
        return {"mean": None if math.isnan(value.mean) else value.mean, "std": value.std, "n": value.n}

    return {
        **({"about": previous["about"]} if "about" in previous else {}),
        "schema": 2,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "tolerance": DEFAULT_TOLERANCE | previous.get("tolerance", {}),
        "metric_tolerance": previous.get("metric_tolerance", {}),
        "values": {c: {m: entry(v) for m, v in row.items()} for c, row in stats.items()},
        "seeds": seeds_by_category(records),
        "settings": compared_settings(records),
        "machine": machine_of(first),
        "definitions": definitions,
        "source": {
            "run": str(run),
            "dataset": first.get("dataset"),
            "method": first.get("method"),
            "profile": first.get("profile"),
            "settings": first.get("settings"),
            "provenance": first.get("provenance"),
        },
    }


def update_baseline(run: str | Path, path: str | Path, metrics: list[str] | None = None) -> dict:
    previous = read_json(Path(path)) if Path(path).is_file() else None
    baseline = make_baseline(run, previous, metrics)
    write_json(Path(path), baseline)
    return baseline
