"""`check` in interval mode: a baseline whose tolerance is {"mode": "interval"} (optionally with
"resamples", "seed" and "confidence" of the bootstrap) stores, per category and
metric, the baseline run's own interval over its test images (harness.stats), and a value drifts when
the checked run's mean leaves that interval (or moves by more than atol + rtol |baseline|, if that is
wider). Meant for small test sets, where a fixed tolerance is either too tight (flaky) or too loose.
"""

from __future__ import annotations

import math
from pathlib import Path

from harness.errors import HarnessError

INTERVAL = "interval"


def interval_mode(baseline: dict) -> bool:
    return (baseline.get("tolerance") or {}).get("mode") == INTERVAL


def add_intervals(baseline: dict, run: str | Path, metrics: list[str] | None = None) -> dict:
    """In interval mode, each baseline value gets ci_low, ci_high and ci_method from the run's predictions."""
    if not interval_mode(baseline):
        return baseline
    from harness.stats.intervals import Options, RunIntervals

    settings = baseline.get("tolerance") or {}  # {"mode": "interval", "resamples": B, "seed": S, "confidence": C}
    options = Options(
        int(settings.get("resamples", 1000)), int(settings.get("seed", 0)), float(settings.get("confidence", 0.95))
    )
    stats = RunIntervals(run, options)
    for category, values in baseline["values"].items():
        for metric, entry in values.items():
            if metrics and metric not in metrics or not isinstance(entry, dict) or entry.get("mean") is None:
                continue
            found = stats.interval(category, metric)
            if found.reason is None:
                entry |= {"ci_low": found.low, "ci_high": found.high, "ci_method": found.method}
    baseline["tolerance"] |= {"resamples": options.resamples, "seed": options.seed, "confidence": options.confidence}
    return baseline


class _IntervalComparison:
    """Mixed into check.Comparison: the allowed move is the baseline interval's half on the side the value
    moved to (so |difference| <= allowed is exactly "inside the interval"), or the fixed tolerance if wider."""

    ci_low: float
    ci_high: float

    @property
    def allowed(self) -> float:
        fixed = self.atol + self.rtol * abs(self.baseline.mean)  # type: ignore[attr-defined]
        below = self.difference < 0  # type: ignore[attr-defined]
        half = self.baseline.mean - self.ci_low if below else self.ci_high - self.baseline.mean  # type: ignore[attr-defined]
        return max(half, fixed)


_MIXED: dict[type, type] = {}  # check.Comparison -> its interval-mode subclass (made once)


def apply(comparisons: list, baseline: dict) -> list:
    """The comparisons with interval semantics when the baseline asks for them (unchanged otherwise)."""
    if not interval_mode(baseline):
        return comparisons
    changed = []
    for comparison in comparisons:
        entry = baseline["values"][comparison.category][comparison.metric]
        low, high = (entry.get("ci_low"), entry.get("ci_high")) if isinstance(entry, dict) else (None, None)
        if math.isnan(comparison.baseline.mean):
            changed.append(comparison)
            continue
        if low is None or high is None:
            raise HarnessError(
                f"the baseline is in interval mode but has no interval for {comparison.category}/{comparison.metric}; "
                "remake it with `check --update` from a run with its predictions"
            )
        kind = type(comparison)
        mixed = _MIXED.setdefault(kind, type(f"Interval{kind.__name__}", (_IntervalComparison, kind), {}))
        upgraded = mixed(**{name: getattr(comparison, name) for name in kind.__dataclass_fields__})
        upgraded.ci_low, upgraded.ci_high = float(low), float(high)
        changed.append(upgraded)
    return changed
