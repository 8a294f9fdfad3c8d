"""Metric drift check: compare a run with a committed baseline; exit 1 on drift, 2 when they cannot be compared.

Baseline file (JSON, schema 2):
  {"schema": 2, "tolerance": {"atol": 0.005, "rtol": 0.0, "k": 3.0},
   "metric_tolerance": {"au_pro": {"atol": 0.01}},                    optional, per metric
   "values": {"<category>": {"<metric>": {"mean": 0.98, "std": 0.004, "n": 3}, ...}, ...},
   "seeds": {"<category>": [0, 1, 2]}, "settings": {...}, "machine": {...},
   "definitions": {"<metric>": "..."}, "source": {...provenance of the run it was made from}}
Schema 1 baselines (plain numbers in "values", one value per category and metric) are still read.
A metric undefined on the data (NaN in the run) is written {"undefined": true, "n": ...}; a value with
neither a number as its mean nor "undefined" is a broken baseline (exit 2), not drift.
"data_fingerprints" ({"<category>": "<fingerprint>"}, with "fingerprint_scheme") identify the data the
baseline was made from; a run on other data is not compared (exit 2): a different data set is not drift.

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
from harness.order import ordered
from harness.report import check_interval
from harness.report.aggregate import category_cells
from harness.report.records import load_records
from harness.store import read_json, result_settings, write_json

DEFAULT_TOLERANCE = {"atol": 0.005, "rtol": 0.0, "k": 3.0}
# How data fingerprints are made: the datasets' split_fingerprint over every file's sha256 (its content).
# Baselines without this scheme predate it: their fingerprint cannot be compared (refresh with --update).
FINGERPRINT_SCHEME = "content-sha256"
MACHINE_KIND = ("cpu_model", "cpu_capability", "numerics", "torch_threads", "gpu")  # what makes floats differ


class NotComparable(HarnessError):
    """The run and the baseline differ in what they measured; `problems` holds one line per difference."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class DataDiffers(NotComparable):
    """The run was made from other data than the baseline (their data fingerprints differ): not drift."""


@dataclass(frozen=True)
class Tolerance:
    """How far a mean may move: max(atol + rtol * |baseline|, k * pooled seed spread * sqrt(1/n + 1/n))."""

    atol: float
    rtol: float
    k: float


@dataclass(frozen=True)
class Tolerances:
    default: Tolerance
    per_metric: dict[str, Tolerance]

    def of(self, metric: str) -> Tolerance:
        return self.per_metric.get(metric, self.default)


TOLERANCE_KEYS = ("atol", "rtol", "k")


def _found(value: object) -> str:
    """A wrong value as an error message names it: short, with its JSON kind."""
    kinds = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
    kind = kinds.get(type(value), "a number")
    text = repr(value) if not isinstance(value, dict | list) else ""
    return f"{kind} {text}".strip() if kind not in ("an object", "an array", "null") else kind


def tolerance_value(value: object, field: str) -> float:
    """A tolerance or spread: a finite number >= 0 (NaN would report drift everywhere, a negative one too)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise HarnessError(f"{field}: expected a number >= 0, found {_found(value)}")
    if not math.isfinite(value) or value < 0:
        raise HarnessError(f"{field}: expected a finite number >= 0, found {value!r}")
    return float(value)


# "tolerance" only: {"mode": "interval"} compares with the baseline run's own bootstrap interval
# (harness.report.check_interval), drawn with these settings
MODE_KEYS = ("mode", "resamples", "seed", "confidence")
MODES = ("fixed", "interval")


def _check_mode(raw: dict, field: str) -> None:
    mode = raw.get("mode", "fixed")
    if mode not in MODES:
        raise HarnessError(f"{field}.mode: expected one of {', '.join(map(repr, MODES))}, found {_found(mode)}")
    for key, low in (("resamples", 1), ("seed", 0)):
        value = raw.get(key, low)
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise HarnessError(f"{field}.{key}: expected a whole number >= {low}, found {_found(value)}")
    confidence = raw.get("confidence", 0.95)
    if isinstance(confidence, bool) or not isinstance(confidence, int | float) or not 0 < confidence < 1:
        raise HarnessError(f"{field}.confidence: expected a number between 0 and 1, found {_found(confidence)}")


def _tolerance(raw: object, inherited: Tolerance, field: str, *, modes: bool = False) -> Tolerance:
    if not isinstance(raw, dict):
        raise HarnessError(
            f'{field}: expected an object like {{"atol": 0.005, "rtol": 0.0, "k": 3.0}}, found {_found(raw)}'
        )
    known = TOLERANCE_KEYS + (MODE_KEYS if modes else ())
    unknown = [key for key in raw if key not in known]
    if unknown:
        raise HarnessError(f"{field}: unknown key(s) {', '.join(unknown)}; known: {', '.join(known)}")
    if modes:
        _check_mode(raw, field)
    values = {
        key: tolerance_value(raw[key], f"{field}.{key}") if key in raw else getattr(inherited, key)
        for key in TOLERANCE_KEYS
    }
    return Tolerance(**values)


def parse_tolerances(baseline: dict, where: str = "baseline") -> Tolerances:
    """The baseline's "tolerance" (defaults: DEFAULT_TOLERANCE) and "metric_tolerance" (per metric, each key
    falling back to "tolerance"), checked. The one place tolerances are read: a new kind of tolerance
    (another key, or a mode other than fixed bounds) is parsed here and nowhere else."""
    default = _tolerance(
        baseline.get("tolerance", {}), Tolerance(**DEFAULT_TOLERANCE), f"{where}: tolerance", modes=True
    )
    raw = baseline.get("metric_tolerance", {})
    if not isinstance(raw, dict):
        raise HarnessError(
            f'{where}: metric_tolerance: expected an object of metric -> {{"atol": ...}}, found {_found(raw)}'
        )
    per_metric = {
        metric: _tolerance(value, default, f"{where}: metric_tolerance.{metric}") for metric, value in raw.items()
    }
    return Tolerances(default, per_metric)


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


def _stats(entry: object) -> Stats:
    """A checked baseline value: {"mean", "std", "n"} or {"undefined": true} (schema 2) or a plain number
    (schema 1: one seed's worth)."""
    if isinstance(entry, dict):
        mean = math.nan if entry.get("undefined") is True else float(entry["mean"])
        return Stats(mean, float(entry.get("std") or 0.0), int(entry.get("n") or 1))
    return Stats(float(entry), 0.0, 1)  # type: ignore[arg-type]


def _check_value(entry: object, field: str) -> None:
    if isinstance(entry, bool) or not isinstance(entry, int | float | dict):
        raise HarnessError(
            f'{field}: expected {{"mean": ..., "std": ..., "n": ...}} or a number, found {_found(entry)}'
        )
    if not isinstance(entry, dict):
        if not math.isfinite(entry):
            raise HarnessError(f"{field}: expected a finite number, found {entry!r}")
        return
    if entry.get("undefined") not in (None, False, True):
        raise HarnessError(f"{field}.undefined: expected true or false, found {_found(entry['undefined'])}")
    if entry.get("undefined") is not True:
        mean = entry.get("mean")
        if mean is None:
            raise HarnessError(
                f"{field}.mean: {'null' if 'mean' in entry else 'missing'}; give the number, or "
                '"undefined": true for a metric that is undefined on this data'
            )
        if isinstance(mean, bool) or not isinstance(mean, int | float) or not math.isfinite(mean):
            raise HarnessError(f"{field}.mean: expected a finite number, found {_found(mean)}")
    if entry.get("std") is not None:
        tolerance_value(entry["std"], f"{field}.std")
    n = entry.get("n")
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise HarnessError(f"{field}.n: expected a whole number >= 1 (seeds averaged), found {_found(n)}")


OBJECT_FIELDS = ("settings", "machine", "definitions", "source", "data_fingerprints")


def check_baseline(baseline: object, where: str) -> dict:
    """The baseline, every field it uses checked: a broken file is bad input (exit 2) naming the file and the
    field, never a traceback and never drift (exit 1)."""
    if not isinstance(baseline, dict):
        raise HarnessError(f"{where}: not a baseline file (expected a JSON object, found {_found(baseline)})")
    values = baseline.get("values")
    if not isinstance(values, dict) or not values:
        raise HarnessError(
            f"{where}: values: expected an object of category -> metric -> value, found "
            f"{'an empty object' if values == {} else _found(values)}"
            if "values" in baseline
            else f"{where}: not a baseline file (no 'values' object of category -> metric -> value)"
        )
    for category, metrics in values.items():
        if not isinstance(metrics, dict) or not metrics:
            raise HarnessError(
                f"{where}: values.{category}: expected an object of metric -> value, found "
                f"{'an empty object' if metrics == {} else _found(metrics)}"
            )
        for metric, entry in metrics.items():
            _check_value(entry, f"{where}: values.{category}.{metric}")
    for name in OBJECT_FIELDS:
        if baseline.get(name) is not None and not isinstance(baseline[name], dict):
            raise HarnessError(f"{where}: {name}: expected an object, found {_found(baseline[name])}")
    seeds = baseline.get("seeds")
    if seeds is not None and not isinstance(seeds, dict | list):
        raise HarnessError(f"{where}: seeds: expected an object of category -> seeds, found {_found(seeds)}")
    if isinstance(seeds, dict):
        for category, listed in seeds.items():
            if not isinstance(listed, list):
                raise HarnessError(f"{where}: seeds.{category}: expected an array of seeds, found {_found(listed)}")
    parse_tolerances(baseline, where)
    return baseline


def load_baseline(path: str | Path) -> dict:
    path = Path(path)
    if path.is_dir():
        raise HarnessError(
            f"{path}: a folder, not a baseline file (give the JSON file, e.g. results/baselines/ci-synthetic.json)"
        )
    try:
        baseline = read_json(path)
    except OSError as error:
        raise HarnessError(f"{path}: cannot read the baseline ({error.strerror or error})") from None
    return check_baseline(baseline, str(path))


def run_stats(records: list[dict], metrics: list[str]) -> dict[str, dict[str, Stats]]:
    """{category: {metric: Stats over seeds}}; NaN mean where the metric is undefined or absent."""
    cells = category_cells(records, metrics)
    categories = ordered(records[0]["dataset"], [r["category"] for r in records]) if records else []
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
            f"(leave them out with --categories {','.join(c for c in categories if c in baseline['values'])}, "
            "or add them to the baseline with --update)"
        )
    missing_metrics = sorted({m for r in records for m in wanted if m not in r.get("metrics", {})})
    if missing_metrics:
        lines.append(f"metrics missing from the run: {', '.join(missing_metrics)}")
    for category, values in baseline["values"].items():
        absent = [m for m in wanted if m not in values]
        if absent:
            lines.append(f"baseline has no value of {', '.join(absent)} for category '{category}'")
    return lines + _seed_lines(records, baseline) + _settings_lines(records, baseline)


def run_fingerprints(records: list[dict]) -> dict[str, str]:
    """category -> the data fingerprint its records carry ("" where none)."""
    found: dict[str, str] = {}
    for record in records:
        fingerprint = (record.get("data") or {}).get("fingerprint") or (record.get("provenance") or {}).get(
            "data_fingerprint"
        )
        found.setdefault(record["category"], str(fingerprint or ""))
    return found


def baseline_fingerprints(baseline: dict) -> dict[str, str] | None:
    """The baseline's data fingerprints, or None when it has none of the current scheme."""
    if baseline.get("fingerprint_scheme") != FINGERPRINT_SCHEME or not baseline.get("data_fingerprints"):
        return None
    return {str(c): str(f) for c, f in baseline["data_fingerprints"].items()}


def data_lines(records: list[dict], baseline: dict) -> list[str]:
    """One line per category whose data differ from the baseline's (both fingerprints known)."""
    expected = baseline_fingerprints(baseline)
    if expected is None:
        return []
    now = run_fingerprints(records)
    return [
        f"data differ for {category}: the run's data fingerprint is {now[category]}, the baseline's "
        f"{fingerprint} (other files, labels or file contents); a different data set is not drift: use "
        "the baseline's data, or make a baseline for this data with --update"
        for category, fingerprint in expected.items()
        if now.get(category) and now[category] != fingerprint
    ]


def data_note(run: str | Path, baseline: dict, categories: list[str] | None = None) -> str:
    """What the comparison knows about the data: the same, or why it could not tell."""
    records = _only(load_records(run), categories)
    if baseline_fingerprints(baseline) is None:
        return (
            "data not compared: the baseline records no data fingerprints of the current scheme "
            f"({FINGERPRINT_SCHEME}); refresh it with --update from a run you trust"
        )
    unknown = sorted(c for c, f in run_fingerprints(records).items() if not f)
    if unknown:
        return f"data not compared for {', '.join(unknown)}: the run's records carry no data fingerprint"
    return "data: the same fingerprints as the baseline's"


def _only(records: list[dict], categories: list[str] | None) -> list[dict]:
    return records if categories is None else [r for r in records if r["category"] in categories]


def select_categories(records: list[dict], baseline: dict, categories: list[str] | None) -> tuple[list[dict], dict]:
    """The records and the baseline restricted to `categories` (None: all); a name in neither is bad input."""
    if categories is None:
        return records, baseline
    known = {r["category"] for r in records} | set(baseline["values"])
    unknown = [c for c in categories if c not in known]
    if unknown:
        raise HarnessError(
            f"--categories: {', '.join(unknown)} in neither the run nor the baseline "
            f"(they have {', '.join(sorted(known))})"
        )
    kept = _only(records, categories)
    if not kept:
        raise HarnessError(f"--categories: the run has none of {', '.join(categories)}")
    values = {c: v for c, v in baseline["values"].items() if c in categories}
    return kept, baseline | {"values": values}


def compare(
    run: str | Path,
    baseline: dict,
    *,
    metrics: list[str] | None = None,
    atol: float | None = None,
    rtol: float | None = None,
    allow_improvement: bool = False,
    categories: list[str] | None = None,
) -> list[Comparison]:
    """Every (category, metric) of the baseline against the run; DataDiffers when the data differ,
    NotComparable listing whatever else stands in the way."""
    atol = None if atol is None else tolerance_value(atol, "--atol")
    rtol = None if rtol is None else tolerance_value(rtol, "--rtol")
    tolerances = parse_tolerances(baseline)
    records, baseline = select_categories(load_records(run), baseline, categories)
    different_data = data_lines(records, baseline)
    if different_data:
        raise DataDiffers(different_data)
    wanted = metrics or sorted({m for values in baseline["values"].values() for m in values})
    found = problems(records, baseline, wanted)
    if found:
        raise NotComparable(found)
    stats = run_stats(records, wanted)
    comparisons = []
    for category, values in baseline["values"].items():
        for metric in wanted:
            tolerance = tolerances.of(metric)
            comparisons.append(
                Comparison(
                    category,
                    metric,
                    _stats(values[metric]),
                    stats[category][metric],
                    tolerance.atol if atol is None else atol,
                    tolerance.rtol if rtol is None else rtol,
                    tolerance.k,
                    allow_improvement,
                )
            )
    return check_interval.apply(comparisons, baseline)  # {"mode": "interval"}: the baseline's own interval


def machines_differ(run: str | Path, baseline: dict) -> tuple[dict, dict] | None:
    """(baseline's machine, run's machine) when they are of different kinds, else None."""
    base = baseline.get("machine") or {}
    now = machine_of(load_records(run)[0])
    if not base:
        return None
    if any(base.get(key) != now.get(key) for key in MACHINE_KIND):
        return base, now
    return None


def tolerance_lines(comparisons: list[Comparison], baseline: dict, machines: tuple[dict, dict] | None) -> list[str]:
    """What the allowed column means and what to expect from the machines, in words a CI user can act on."""
    if not comparisons:
        return []
    atols = sorted({c.atol for c in comparisons})
    rtols = sorted({c.rtol for c in comparisons})
    ks = sorted({c.k for c in comparisons})

    def listed(values: list[float]) -> str:
        return "/".join(f"{v:g}" for v in values)

    lines = [
        f"tolerance: a value drifts when |now - baseline| > max(atol + rtol * |baseline|, k * pooled seed std * "
        f"sqrt(1/n_run + 1/n_baseline)); atol {listed(atols)}, rtol {listed(rtols)}, k {listed(ks)} "
        "(the baseline's tolerance and metric_tolerance; --atol/--rtol override them)"
    ]
    base = (baseline.get("machine") or {}).get("numerics")
    now = machines[1].get("numerics") if machines else base
    if base == "portable" and now == "portable":
        lines.append(
            "portable numerics on both sides: the same bits are expected on any x86-64 CPU, "
            "given the same package versions and thread count (checked across emulated CPUs, not yet on a second "
            "vendor's), so --atol 0 --rtol 0 should hold; a difference means packages, threads or data changed, or "
            "a CPU difference not yet known (docs/drift-check.md)"
        )
    elif machines:
        lines.append(
            "native numerics on another machine kind: training amplifies last-bit differences, so expect "
            "differences of up to a few hundredths; run with --portable for exact comparisons, or commit a tolerance "
            "covering your runners (docs/drift-check.md)"
        )
    return lines


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


def make_baseline(
    run: str | Path, previous: dict | None = None, metrics: list[str] | None = None, categories: list[str] | None = None
) -> dict:
    """A baseline from a run's per-category means and spreads over seeds (of `categories`, default all);
    about text and tolerances carried over from `previous`."""
    records = _only(load_records(run), categories)
    if not records:
        raise HarnessError(f"{run}: no finished job of {', '.join(categories or [])} to make a baseline from")
    names = metrics or sorted({m for r in records for m in r.get("metrics", {})})
    stats = run_stats(records, names)
    definitions: dict[str, str | None] = {}
    for record in records:
        for name in names:
            definitions.setdefault(name, record.get("metrics", {}).get(name, {}).get("definition"))
    first = records[0]
    previous = previous or {}

    def entry(value: Stats) -> dict:  # unrounded: a baseline can demand the same bits (--atol 0 --rtol 0)
        if math.isnan(value.mean):
            return {"undefined": True, "std": 0.0, "n": max(value.n, 1)}
        return {"mean": value.mean, "std": value.std, "n": value.n}

    return {
        **({"about": previous["about"]} if "about" in previous else {}),
        "schema": 2,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "tolerance": DEFAULT_TOLERANCE | previous.get("tolerance", {}),
        "metric_tolerance": previous.get("metric_tolerance", {}),
        "values": {c: {m: entry(v) for m, v in row.items()} for c, row in stats.items()},
        "seeds": seeds_by_category(records),
        "fingerprint_scheme": FINGERPRINT_SCHEME,
        "data_fingerprints": run_fingerprints(records),
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


def update_baseline(
    run: str | Path, path: str | Path, metrics: list[str] | None = None, categories: list[str] | None = None
) -> dict:
    """Write the baseline from the run; an existing baseline's about text and tolerances are kept (checked
    first: a broken file is not silently replaced)."""
    previous = None
    if Path(path).exists():
        previous = load_baseline(path) if Path(path).is_dir() else read_json(Path(path))
        if not isinstance(previous, dict):
            raise HarnessError(f"{path}: not a baseline file (expected a JSON object, found {_found(previous)})")
        parse_tolerances(previous, str(path))
    baseline = check_interval.add_intervals(make_baseline(run, previous, metrics, categories), run, metrics)
    write_json(Path(path), baseline)
    return baseline
