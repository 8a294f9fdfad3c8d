"""Finished jobs of a run folder, validated, for the commands that read the store (report, rescore, plots).

A record that cannot be used (not JSON, or missing what a report needs) is one clear error naming
the file, never a traceback halfway through a table.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from harness.errors import HarnessError
from harness.store import CONFIG, FAILURE, PREDICTIONS, RECORD, check_one_sweep, read_json, record_set_complete


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


@dataclass(frozen=True)
class Progress:
    """How much of what `run` planned has finished: the record ids it planned (sweep.json), the finished ones,
    and the missing ones, those whose job failed first."""

    planned: list[str]
    finished: list[str]
    failed: list[str]  # planned, not finished, with a failure.json

    @property
    def missing(self) -> list[str]:
        done = set(self.finished)
        return [record_id for record_id in self.planned if record_id not in done]

    @property
    def complete(self) -> bool:
        return not self.missing

    def describe(self) -> str:
        """ "k of n planned jobs finished; missing: a, b (failed), c" (the same words in every format)."""
        text = f"{len(set(self.finished) & set(self.planned))} of {len(self.planned)} planned jobs finished"
        if self.missing:
            failed = set(self.failed)
            text += "; missing: " + ", ".join(f"{r} (failed)" if r in failed else r for r in self.missing)
        return text


def run_progress(run_dir: str | Path, finished: list[str]) -> Progress | None:
    """The run's progress against the jobs its sweep.json planned (record ids); None without a readable plan
    (a folder written by hand, or by a version that did not save it)."""
    run_dir = Path(run_dir)
    try:
        sweep = read_json(run_dir / "sweep.json")
    except (HarnessError, OSError):
        return None
    planned = sweep.get("records") or sweep.get("jobs") if isinstance(sweep, dict) else None
    if not isinstance(planned, list) or not all(isinstance(r, str) for r in planned):
        return None
    failed = [r for r in planned if r not in finished and (run_dir / "jobs" / r / FAILURE).is_file()]
    return Progress(list(planned), list(finished), failed)


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
