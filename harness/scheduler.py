"""Expands a sweep into jobs, skips finished ones, runs the rest and isolates failures."""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass, field
from typing import Callable

from harness.config import Job, ResolvedSweep
from harness.runner import run_job
from harness.store import RunStore


@dataclass
class SweepOutcome:
    finished: list[dict] = field(default_factory=list)  # records of jobs run now
    skipped: list[str] = field(default_factory=list)  # job ids already done
    failed: list[tuple[str, str]] = field(default_factory=list)  # (job id, message)


def describe_metrics(record: dict, names: tuple[str, ...]) -> str:
    from harness.summary import LABELS

    parts = []
    for name in names:
        value = record["metrics"].get(name, {}).get("value")
        parts.append(f"{LABELS.get(name, name)} {'n/a' if value is None else f'{100 * value:.1f}'}")
    return ", ".join(parts)


def run_sweep(resolved: ResolvedSweep, store: RunStore, *, rerun: bool = False,
              log: Callable[[str], None] = print) -> SweepOutcome:
    """Run every job not yet done (all of them with `rerun`), one after the other."""
    outcome = SweepOutcome()
    total = len(resolved.jobs)
    for index, job in enumerate(resolved.jobs, start=1):
        prefix = f"[{index}/{total}] {job.category} seed {job.seed}"
        if store.is_done(job.job_id) and not rerun:
            outcome.skipped.append(job.job_id)
            log(f"{prefix}: already done, skipped")
            continue
        started = time.perf_counter()
        try:
            record = run_job(job, store)
        except Exception as error:  # one job's failure must not stop the sweep
            message = f"{type(error).__name__}: {error}"
            store.write_failure(job.job_id, {"job_id": job.job_id, "status": "failed", "message": message,
                                             "traceback": traceback.format_exc()})
            outcome.failed.append((job.job_id, message))
            log(f"{prefix}: FAILED {message}")
            continue
        outcome.finished.append(record)
        log(f"{prefix}: {describe_metrics(record, job.metrics)} ({time.perf_counter() - started:.0f} s)")
    store.write_results_csv()
    return outcome


def preflight(job: Job) -> None:
    """Build the method once before anything runs, so bad settings or missing weights fail up front."""
    from harness import methods

    method_class = methods.get(job.method)
    method_class(method_class.Settings(**job.settings))
