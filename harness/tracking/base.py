"""What every tracker is given, and the guard that keeps a failing tracker away from the jobs.

Trackers are fed from the run folder after the scheduler has written a job's outcome there: the same
files whichever backend ran the job, so every backend logs the same, and the folder stays the record
of truth. A tracker that raises is turned off for the rest of the sweep (an unreachable server costs
one timeout, not one per job); every job it misses gets one warning line in its log.
"""

from __future__ import annotations

import contextlib
import functools
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from harness.files import atomic_write_text

# Per job folder: each tracker's run id there, so a resumed or rerun job continues the same run
TRACKING_FILE = "tracking.json"
FIGURE_SUFFIXES = (".png", ".svg", ".pdf", ".jpg")


@dataclass
class SweepEntry:
    """The sweep as its parent run shows it."""

    run_dir: Path
    params: dict[str, str]  # what the sweep was asked (data set, categories, method, profile, seeds, ...)
    description: str  # Markdown


@dataclass
class JobEntry:
    """One tracker run: a finished job (one record) or a failed one."""

    run_id: str  # the record id (a job id; a unified job has one per category)
    folder: Path  # the record's folder in the run folder, where the tracker's run id is kept
    status: str  # "FINISHED" | "FAILED"
    params: dict[str, str]  # the job id and its resolved settings
    tags: dict[str, str]  # data fingerprint, provenance, definitions, failure message
    losses: list[tuple[int, float]]  # (epoch, training loss)
    interim: list[tuple[int, str, float]]  # (epoch, metric, value): --eval-every, logged and never selected
    final: dict[str, float]  # metric -> value (missing where the metric is undefined)
    final_step: int  # the epoch the final metrics belong to
    definitions: dict[str, str]  # metric -> its definition
    files: list[Path] = field(default_factory=list)  # artifacts: record, config, failure, log, figures
    log_path: Path | None = None  # the job's log, where a tracker's failure is reported

    def description(self) -> str:
        lines = [f"Job `{self.params.get('job_id', self.run_id)}`: {self.status.lower()}."]
        if self.tags.get("failure"):
            lines.append(f"\nFailure: {self.tags['failure']}")
        if self.definitions:
            lines.append("\nMetric definitions:\n")
            lines += [f"- **{name}**: {text}" for name, text in self.definitions.items()]
        if self.interim:
            lines.append(
                "\n`interim_test/*`: test-set metrics during training (--eval-every), logged for the learning "
                "curve, never used to pick a model; `test/*` are the reported values (last epoch)."
            )
        return "\n".join(lines)


class Tracker:
    """One tracking backend: a parent run per sweep, a run per job."""

    name = ""

    def start_sweep(self, sweep: SweepEntry) -> None:
        raise NotImplementedError

    def log_job(self, entry: JobEntry, state: dict, save: Callable[[dict], None]) -> dict:
        """Log `entry`; `state` is what this tracker stored for it before (empty: never logged). Returns what to
        store now; `save(state)` stores the run id as soon as it exists (a kill meanwhile: no second run)."""
        raise NotImplementedError

    def finish_sweep(self, status: str, files: list[Path], texts: dict[str, str]) -> None:
        raise NotImplementedError

    def same_target(self, state: dict) -> bool:
        """Whether a stored state points where this tracker logs now (the same server, the same folder)."""
        raise NotImplementedError


class Unavailable(Tracker):
    """A tracker that could not even be set up: it logs nothing, and the guard says so in each job's log."""

    def __init__(self, name: str) -> None:
        self.name = name

    def same_target(self, state: dict) -> bool:
        return False


def read_state(folder: Path) -> dict:
    with contextlib.suppress(OSError, ValueError):
        state = json.loads((folder / TRACKING_FILE).read_text(encoding="utf-8"))
        if isinstance(state, dict):
            return state
    return {}


def write_state(folder: Path, name: str, value: dict) -> None:
    state = read_state(folder)
    state[name] = value
    atomic_write_text(folder / TRACKING_FILE, json.dumps(state, indent=2, sort_keys=True) + "\n")


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= 240 else text[:237] + "..."


class SweepTracking:
    """The trackers of one sweep, each guarded: a failure is a warning, never an error."""

    def __init__(self, trackers: list[Tracker], log: Callable[[str], None]) -> None:
        self.trackers = trackers
        self.log = log
        self.off: dict[str, str] = {}  # tracker -> why it is off for this sweep

    def fail(self, tracker: Tracker, error: BaseException, where: str) -> None:
        self.off[tracker.name] = _one_line(error)
        self.log(f"warning: tracking to {tracker.name} is off for this sweep ({where}: {self.off[tracker.name]})")

    def _active(self) -> Iterator[Tracker]:
        yield from (tracker for tracker in self.trackers if tracker.name not in self.off)

    def start(self, sweep: SweepEntry) -> None:
        for tracker in list(self._active()):
            try:
                tracker.start_sweep(sweep)
            except Exception as error:  # an unreachable server, a broken store: the sweep goes on
                self.fail(tracker, error, "at the start")

    def job(self, entry: JobEntry, *, only_new: bool = False) -> None:
        """Log one job with every tracker; `only_new`: skip trackers that already logged it completely (a job
        done before this run: logged now only when tracking was off then, or was interrupted)."""
        for tracker in self.trackers:
            state = read_state(entry.folder).get(tracker.name) or {}
            if not tracker.same_target(state):
                state = {}
            if only_new and state.get("complete"):
                continue
            if tracker.name in self.off:
                self._warn(entry, tracker.name, self.off[tracker.name])
                continue
            try:
                stored = tracker.log_job(entry, state, functools.partial(write_state, entry.folder, tracker.name))
                write_state(entry.folder, tracker.name, stored | {"complete": True})
            except Exception as error:
                self.fail(tracker, error, f"job {entry.run_id}")
                self._warn(entry, tracker.name, self.off[tracker.name])

    def _warn(self, entry: JobEntry, name: str, reason: str) -> None:
        if entry.log_path is None:
            return
        with contextlib.suppress(OSError):
            entry.log_path.parent.mkdir(parents=True, exist_ok=True)
            with open(entry.log_path, "a", encoding="utf-8") as handle:
                handle.write(
                    f"{time.strftime('%Y-%m-%d %H:%M:%S')} WARNING: not logged to {name} ({reason}); "
                    "the run folder has the results\n"
                )

    def finish(self, status: str, files: list[Path], texts: dict[str, str]) -> None:
        for tracker in list(self._active()):
            try:
                tracker.finish_sweep(status, files, texts)
            except Exception as error:
                self.fail(tracker, error, "at the end")


def figures(folder: Path) -> list[Path]:
    """The figures a job left in its folder."""
    if not folder.is_dir():
        return []
    return sorted(path for path in folder.iterdir() if path.suffix.lower() in FIGURE_SUFFIXES)
