"""Expands a sweep into jobs, skips finished ones, hands the rest to a backend and stores their outcomes.

The scheduler is the only writer of results: backends (in-process, child processes, dask workers)
return records and predictions, and it writes them, each job's record last. It turns SIGINT and
SIGTERM into a clean stop: nothing is left half-written, what finished is kept, and the same
command resumes.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from harness.errors import HarnessError
from harness.metrics import LABELS
from harness.store import RECORD, SUPERSEDED, RunStore, read_json
from harness.sweep.backends import Backend
from harness.sweep.job import JobOutcome, store_result
from harness.sweep.plan import UNIFIED, Job, ResolvedSweep
from harness.tracking import SweepEntry, SweepTracking, TrackingSettings


@dataclass
class SweepOutcome:
    finished: list[dict] = field(default_factory=list)  # records of jobs run now
    skipped: list[str] = field(default_factory=list)  # job ids already done
    failed: list[tuple[str, str]] = field(default_factory=list)  # (job id, message)


class SweepInterrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM stopped the sweep; `exit_code` is 128 + the signal's number (130, 143)."""

    def __init__(self, signum: int, outcome: SweepOutcome | None = None) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        self.outcome = outcome
        self.rerun = False  # the stopped sweep was a --rerun
        self.run_dir: Path | None = None  # the run folder it stopped in, once known

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


class StopSignals:
    """Turns SIGINT/SIGTERM into SweepInterrupted in the main thread; inside `deferred()` the stop waits
    until the block is complete, so a signal never leaves a job's files half-written."""

    def __init__(self) -> None:
        self._writing = False
        self._pending: int | None = None
        self._saved: dict = {}

    def _handle(self, signum, frame) -> None:
        if self._writing:
            self._pending = signum
            return
        raise SweepInterrupted(signum)

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._saved[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self._saved.items():
            signal.signal(signum, handler)

    @contextlib.contextmanager
    def deferred(self) -> Iterator[None]:
        """A signal in here takes effect when the block ends (a write, a cluster's start)."""
        self._writing = True
        try:
            yield
        finally:
            self._writing = False
        if self._pending is not None:
            raise SweepInterrupted(self._pending)


def _job_name(job: Job) -> str:
    return f"unified ({len(job.categories)} categories)" if job.protocol == UNIFIED else job.category


def describe_metrics(record: dict, names: tuple[str, ...]) -> str:
    parts = []
    for name in names:
        value = record["metrics"].get(name, {}).get("value")
        parts.append(f"{LABELS.get(name, name)} {'n/a' if value is None else f'{100 * value:.1f}'}")
    return ", ".join(parts)


def jobs_to_run(resolved: ResolvedSweep, store: RunStore, rerun: bool) -> tuple[list[Job], list[Job]]:
    """(to run, already done): a job is done iff its record exists (a unified job's: all of them) and no
    stopped `--rerun` still has to redo it; `rerun` runs every job again and notes them until each is redone,
    so that a rerun stopped halfway resumes without it."""
    pending = store.rerun_pending()
    if rerun:
        store.set_rerun_pending(pending | set(resolved.record_ids))
        return list(resolved.jobs), []
    done = [
        job
        for job in resolved.jobs
        if all(store.is_done(r) for r in job.record_ids) and not pending & set(job.record_ids)
    ]
    done_ids = {job.job_id for job in done}
    return [job for job in resolved.jobs if job.job_id not in done_ids], done


def set_aside_changed_data(resolved: ResolvedSweep, store: RunStore) -> dict[str, tuple[str, str, int]]:
    """Move the folder's jobs that ran on other data than the sweep's now (same data set and category,
    another fingerprint) to superseded/, so the run folder never mixes two versions of the data; their
    jobs then run again. Returns category -> (old fingerprint, new fingerprint, jobs moved)."""
    current = resolved.data_fingerprints
    changed: dict[str, tuple[str, str, int]] = {}
    for job_id, config in store.job_configs().items():
        if config.get("protocol") == UNIFIED or config.get("unified_job"):
            _set_aside_unified(job_id, config, resolved, store, changed)
            continue
        category = str(config.get("category"))
        if config.get("dataset") != resolved.sweep.dataset or not current.get(category):
            continue  # another data set, a category not in this sweep, or data unreadable now (that job fails)
        old = config.get("data_fingerprint")
        if old is None and store.is_done(job_id):  # planned before fingerprints were part of a job's identity
            old = (read_json(store.job_dir(job_id) / RECORD).get("data") or {}).get("fingerprint")
        if old is None or old == current[category]:
            continue
        store.set_aside(job_id)
        moved = changed.get(category, (old, current[category], 0))[2] + 1
        changed[category] = (old, current[category], moved)
    return changed


def _set_aside_unified(
    job_id: str, config: dict, resolved: ResolvedSweep, store: RunStore, changed: dict[str, tuple[str, str, int]]
) -> None:
    """A unified job trained on data of which any category changed: its own folder and every category's
    folder go to superseded/ (its model saw the old data, so none of its records may stay). The folders of
    its categories (config "unified_job") go with it."""
    if config.get("protocol") != UNIFIED or config.get("dataset") != resolved.sweep.dataset:
        return
    current = resolved.data_fingerprints
    old_prints = config.get("data_fingerprints") or {}
    differ = {c: (old, current[c]) for c, old in old_prints.items() if current.get(c) and old and old != current[c]}
    if not differ or not store.job_dir(job_id).is_dir():
        return
    for folder in [job_id, *[r for r in config.get("record_ids", []) if r != job_id]]:
        if store.job_dir(folder).is_dir():
            store.set_aside(folder)
    for category, (old, new) in differ.items():
        changed[category] = (old, new, changed.get(category, (old, new, 0))[2] + 1 + len(config.get("record_ids", [])))


def _write_configs(store: RunStore, job: Job) -> None:
    """config.json of the job's folder, and for a unified job a short one in each category's folder (what
    it is part of, and where its data are: a report's gallery reads the root from it)."""
    config = job.to_dict()
    store.write_config(job.job_id, config)
    if job.protocol == UNIFIED:
        for category, record_id in zip(job.categories, job.record_ids, strict=False):
            store.write_config(
                record_id,
                {
                    "job_id": record_id,
                    "unified_job": job.job_id,
                    "protocol": UNIFIED,
                    "dataset": job.dataset,
                    "category": category,
                    "root": job.root,
                    "seed": job.seed,
                    "data_fingerprint": job.data_fingerprints.get(category, ""),
                },
            )


def _store_outcome(store: RunStore, job: Job, outcome: JobOutcome) -> None:
    if outcome.log is not None:
        store.write_log(job.job_id, outcome.log)
    if outcome.ok:
        assert outcome.result is not None  # ok means a result
        store_result(store, outcome.result)
        pending = store.rerun_pending()
        if pending & set(job.record_ids):
            store.set_rerun_pending(pending - set(job.record_ids))
        return
    if outcome.status != "failed":  # a killed or crashed process could not log why itself
        store.append_log(
            job.job_id, f"{time.strftime('%Y-%m-%d %H:%M:%S')} {outcome.status.upper()}: {outcome.message}"
        )
    store.write_failure(
        job.job_id,
        {
            "job_id": job.job_id,
            "status": outcome.status,
            "message": outcome.message,
            "traceback": outcome.traceback,
            "seconds": round(outcome.seconds, 3),
            "log": str(store.log_path(job.job_id).relative_to(store.run_dir)),
            "category": job.category,
            "seed": job.seed,
        }
        | ({"protocol": UNIFIED, "categories": list(job.categories)} if job.protocol == UNIFIED else {}),
    )


def _start_tracking(
    settings: TrackingSettings, resolved: ResolvedSweep, store: RunStore, backend: Backend, log: Callable[[str], None]
) -> SweepTracking:
    from harness.tracking import open_tracking

    sweep = resolved.sweep
    params = {
        "dataset": sweep.dataset,
        "categories": ",".join(resolved.categories),
        "method": resolved.method,
        "profile": resolved.profile,
        "protocol": resolved.protocol,
        "seeds": ",".join(map(str, resolved.seeds)),
        "metrics": ",".join(resolved.jobs[0].metrics) if resolved.jobs else "",
        "eval_every": str(sweep.eval_every),
        "jobs": str(len(resolved.jobs)),
        "backend": backend.name,
        "run_folder": str(store.run_dir.resolve()),
    }
    description = (
        f"Sweep of {sweep.dataset} [{', '.join(resolved.categories)}]: method {resolved.method}, profile "
        f"{resolved.profile}, protocol {resolved.protocol}, seeds {', '.join(map(str, resolved.seeds))}; "
        f"{len(resolved.jobs)} job(s), one nested run each.\n\nRun folder (the record of truth): "
        f"`{store.run_dir.resolve()}`"
    )
    return open_tracking(settings, store, SweepEntry(store.run_dir, params, description), log)


def _track(tracking: SweepTracking | None, store: RunStore, job: Job, *, only_new: bool = False) -> None:
    if tracking is not None:
        from harness.tracking import job_entries

        for entry in job_entries(store, job.job_id, job.record_ids):
            tracking.job(entry, only_new=only_new)


def _finish_tracking(tracking: SweepTracking, store: RunStore, resolved: ResolvedSweep, status: str) -> None:
    from harness.tracking import sweep_outputs

    metrics = list(resolved.jobs[0].metrics) if resolved.jobs else []
    try:
        files, texts = sweep_outputs(store, resolved.record_ids, metrics)
    except Exception as error:  # the parent run still gets its status
        tracking.log(f"warning: the sweep's results table and report were not logged ({error})")
        files, texts = [], {}
    tracking.finish(status, files, texts)


def run_sweep(
    resolved: ResolvedSweep,
    store: RunStore,
    *,
    backend: Backend | None = None,
    rerun: bool = False,
    log: Callable[[str], None] = print,
    tracking: TrackingSettings | None = None,
) -> SweepOutcome:
    """Run every job not yet done (all of them with `rerun`) on `backend` (default: serial, in this process).

    A job's exception, data error, timeout or crash marks that job failed and the sweep goes on.
    SIGINT/SIGTERM raise SweepInterrupted after stopping the backend; finished jobs stay finished.
    `tracking`: also log every job, and the sweep as a parent run, to MLflow or TensorBoard (after each job,
    from the run folder: the same for every backend; a failing tracker is a warning, never a failed job).
    """
    from harness.sweep.backends.serial import SerialBackend

    backend = backend or SerialBackend()
    outcome = SweepOutcome()
    leftovers = store.remove_stale_temporaries()
    if leftovers:
        log(f"removed {leftovers} temporary file(s) that an interrupted run left")
    for category, (old, new, moved) in set_aside_changed_data(resolved, store).items():
        log(
            f"{category}: the data changed since this folder's jobs ran (fingerprint {old}, now {new}); "
            f"{moved} job folder(s) on the old data moved to {store.run_dir / SUPERSEDED}, its jobs run again"
        )
    todo, done = jobs_to_run(resolved, store, rerun)
    tracked = _start_tracking(tracking, resolved, store, backend, log) if tracking and tracking.trackers else None
    status = "KILLED"  # until the loop ends: an interrupted sweep's parent run says so
    position = {job.job_id: index for index, job in enumerate(resolved.jobs, start=1)}
    total = len(resolved.jobs)
    for job in done:
        outcome.skipped.append(job.job_id)
        log(f"[{position[job.job_id]}/{total}] {_job_name(job)} seed {job.seed}: already done, skipped")
        _track(tracked, store, job, only_new=True)  # logged now only if it never was (tracking was off then)
    by_id = {job.job_id: job for job in todo}

    signals = StopSignals()
    bar = None
    try:
        with signals:
            if todo:
                with signals.deferred():  # a cluster interrupted while it starts cannot be closed cleanly
                    backend.start()
                log(f"running {len(todo)} job(s) on {backend.describe()}")
                # a bar on a terminal only (disable=None): in logs and CI output the per-job lines say it all
                bar = tqdm(
                    total=total,
                    initial=len(done),
                    desc="jobs",
                    unit="job",
                    position=0,
                    leave=False,
                    dynamic_ncols=True,
                    disable=None,
                )
                for job in todo:
                    _write_configs(store, job)
                for result in backend.run(todo, store):
                    job = by_id[result.job_id]
                    with signals.deferred():
                        _store_outcome(store, job, result)
                    _track(tracked, store, job)
                    prefix = f"[{position[job.job_id]}/{total}] {_job_name(job)} seed {job.seed}"
                    if result.ok:
                        assert result.result is not None  # ok means a result
                        outcome.finished.append(result.result.record)
                        mean = " (mean over its categories)" if job.protocol == UNIFIED else ""
                        line = (
                            f"{prefix}: {describe_metrics(result.result.record, job.metrics)}{mean} "
                            f"({result.seconds:.0f} s)"
                        )
                    else:
                        outcome.failed.append((job.job_id, result.message))
                        line = f"{prefix}: FAILED ({result.status}) {result.message}"
                    bar.update(1)
                    bar.clear()  # the line goes above the bar, not through it
                    log(line)
                    bar.refresh()
        status = "FAILED" if outcome.failed else "FINISHED"
    except SweepInterrupted as interrupted:
        interrupted.outcome = outcome
        interrupted.rerun = rerun
        raise
    finally:
        if bar is not None:
            bar.close()
        backend.close()
        with contextlib.suppress(Exception):
            store.write_results_csv()
        if tracked is not None:
            _finish_tracking(tracked, store, resolved, status)
    return outcome


def preflight(job: Job, *, data: bool = True, categories: tuple[str, ...] = ()) -> None:
    """Check once, before anything runs or is written, what every job of the sweep needs: the data set's
    root and the layout of `categories` (default: the job's), with `data`; then the method's settings and
    weights, and the checkpoint to evaluate against the model. Raises HarnessError (one line) instead of
    letting every job fail the same way."""
    from harness import datasets, methods

    if data:
        adapter = datasets.create(job.dataset, job.root, **job.data_options)
        adapter.check_layout(categories or job.categories or (job.category,))
    method_class = methods.get(job.method)
    try:
        method = method_class(method_class.Settings(**job.settings))
    except HarnessError:
        raise
    except Exception as error:  # a method's own complaint about its settings, as one line
        raise HarnessError(f"method '{job.method}' refused its settings: {type(error).__name__}: {error}") from None
    if job.checkpoint:
        method.load_checkpoint(job.checkpoint)


def interrupted_message(interrupted: SweepInterrupted, store: RunStore, command: list[str]) -> str:
    import shlex

    done = len(interrupted.outcome.finished) if interrupted.outcome else 0
    # Without --rerun: the jobs a rerun finished are skipped, those it had not reached are still to redo
    # (rerun-pending.json), so resuming never redoes finished work.
    resume = [word for word in command if not (len(word) > 4 and "--rerun".startswith(word))]
    how = (
        "the same command (finished jobs are skipped)"
        if resume == command
        else "this command, without --rerun (jobs the rerun finished are skipped, those it had not reached run again)"
    )
    if interrupted.rerun and resume == command and "--sweep" in command:
        # the rerun came from the sweep file: as it stands, the file would make the resume redo everything
        sweep_file = command[command.index("--sweep") + 1] if command.index("--sweep") + 1 < len(command) else ""
        how = f"the same command once you set rerun = false in {sweep_file} (finished jobs are then skipped)"
    line = shlex.join([sys.executable, "-m", "harness", *resume])
    return (
        f"\ninterrupted by {signal.Signals(interrupted.signum).name}: {done} job(s) finished in this run and are "
        f"kept in {store.run_dir}; the interrupted job(s) left no record.\n"
        f"resume with {how}:\n  {line}"
    )
