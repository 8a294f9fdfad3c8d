"""Finished jobs of a run folder, validated, for the commands that read the store (report, rescore, plots).

A record that cannot be used (not JSON, or missing what a report needs) is one clear error naming
the file, never a traceback halfway through a table.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from harness.errors import HarnessError
from harness.store import CONFIG, PREDICTIONS, RECORD, check_one_sweep, read_json, record_set_complete


@dataclass(frozen=True)
class FinishedJob:
    folder: Path
    record: dict

    @property
    def predictions(self) -> Path:
        return self.folder / PREDICTIONS

    @property
    def config_path(self) -> Path:
        return self.folder / CONFIG


def finished_jobs(run_dir: str | Path) -> list[FinishedJob]:
    """Every job of the run whose record.json exists, in job-id order; HarnessError when there is none."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise HarnessError(f"{run_dir}: run folder not found")
    paths = sorted((run_dir / "jobs").glob(f"*/{RECORD}"))
    if not paths:
        raise HarnessError(
            f"{run_dir}: no finished jobs (no jobs/*/{RECORD}); is this a run folder of `python -m harness run`?"
        )
    jobs = [FinishedJob(path.parent, check_record(read_json(path), path)) for path in paths]
    # a unified job's records count once all of them exist (it is done then)
    jobs = [job for job in jobs if record_set_complete(job.record, run_dir / "jobs")]
    if not jobs:
        raise HarnessError(f"{run_dir}: no finished jobs (a unified job's records are still incomplete)")
    check_one_sweep(run_dir, [job.record for job in jobs])
    return jobs


def load_records(run_dir: str | Path) -> list[dict]:
    return [job.record for job in finished_jobs(run_dir)]


def check_record(record, path: Path) -> dict:
    """The record itself when it has what reports rely on; otherwise HarnessError naming the file."""

    def bad(what: str) -> HarnessError:
        return HarnessError(f"{path}: corrupt record ({what})")

    if not isinstance(record, dict):
        raise bad("not a JSON object")
    for key in ("dataset", "category"):
        if not isinstance(record.get(key), str) or not record[key]:
            raise bad(f"'{key}' missing or not a name")
    metrics = record.get("metrics")
    if not isinstance(metrics, dict):
        raise bad("'metrics' missing or not an object")
    for name, metric in metrics.items():
        value = metric.get("value") if isinstance(metric, dict) else "?"
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value)):
            raise bad(f"metric '{name}' has no numeric 'value'")
    for key, kind in (("settings", dict), ("method_info", dict), ("history", list)):
        if record.get(key) is not None and not isinstance(record[key], kind):
            raise bad(f"'{key}' is not a JSON {'object' if kind is dict else 'list'}")
    return record


def metric_value(record: dict, name: str) -> float | None:
    """The stored value as a float (NaN when undefined), or None when the record lacks the metric."""
    metric = record.get("metrics", {}).get(name)
    if metric is None:
        return None
    value = metric.get("value")
    return math.nan if value is None else float(value)


def uses_random_teacher(record: dict) -> bool:
    """Random-weight teachers make results incomparable to every published number."""
    info = record.get("method_info") or {}
    weights = str((record.get("settings") or {}).get("weights", "")).lower()
    return info.get("comparable_to_published") is False or weights == "none"
