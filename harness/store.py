"""The run folder: one folder per job, written atomically; a job is done iff its record.json exists.

results/runs/<run>/
  sweep.json                     the sweep as resolved (with each category's data fingerprint)
  .lock                          flock held by the `run` using the folder (one at a time)
  superseded/<job-id>/           job folders of jobs whose data changed since they ran
  rerun-pending.json             jobs a stopped `run --rerun` had not redone: the next `run` redoes them
  results.csv                    one row per finished job (aggregated from the records)
  jobs/<job-id>/config.json      the job's resolved configuration (written when the sweep starts)
  jobs/<job-id>/predictions.npz  scores, labels, maps (as evaluated), packed masks, paths
  jobs/<job-id>/record.json      metrics with definitions, timings, provenance (written last)
  jobs/<job-id>/failure.json     why the job failed (removed when it later succeeds)
  jobs/<job-id>/log.txt          what the job did and printed (its last attempt)
  jobs/<job-id>/checkpoint.pth   the trained model in the method's checkpoint format (when asked for)

A unified job (one model for several categories) writes one job folder per category
(jobs/<category>-s<seed>-<digest>/, record.json and predictions.npz) and keeps its config, log,
failure and checkpoint in its own folder (jobs/unified-s<seed>-<digest>/). It is done iff every one
of its records exists; each record lists them all ("unified": {"records": [...]}), and readers
skip a record whose set is incomplete, so a unified job killed between two records shows nothing.

Killed at any moment, a job leaves no record.json unless its record and predictions are complete:
every file is written under a temporary name and renamed, and a rerun removes the old record
before it replaces the predictions, so a record never sits beside another attempt's predictions.
The temporary files a killed writer leaves are removed when the folder is next run.
"""

from __future__ import annotations

import contextlib
import csv
import functools
import json
import math
import os
import platform
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import IO, Any

import numpy as np

from harness.errors import HarnessError
from harness.files import atomic_write, atomic_write_text, remove_stale_temporaries

fcntl: ModuleType | None
try:
    import fcntl
except ImportError:  # not POSIX: runs are not locked
    fcntl = None

RECORD = "record.json"
PREDICTIONS = "predictions.npz"
CONFIG = "config.json"
FAILURE = "failure.json"
CHECKPOINT = "checkpoint.pth"
LOG = "log.txt"
RESULTS_CSV = "results.csv"
LOCK = ".lock"  # held (flock) by the `run` using the folder; the kernel releases it when that process dies
SUPERSEDED = "superseded"  # jobs/<id> folders of jobs that ran on data that have changed since
RERUN_PENDING = "rerun-pending.json"  # record ids a stopped `--rerun` had not redone: not done until redone

# A record lists the settings its method declares execution-only (how fast a job runs or what it prints, never
# its results: Method.execution_settings). Records written before records carried that list are read with
# the list every method then had.
_EARLIER_EXECUTION_SETTINGS = ("device", "progress", "predict_batch_size", "cache_teacher", "compile")


def execution_settings(record: dict) -> frozenset[str]:
    """The settings of `record` that never change results (kept out of comparisons of protocols and baselines)."""
    listed = record.get("execution_settings")
    return frozenset(listed if isinstance(listed, list) else _EARLIER_EXECUTION_SETTINGS)


def result_settings(record: dict) -> dict:
    """The record's settings that change its results (the seed included)."""
    skip = execution_settings(record)
    return {k: v for k, v in (record.get("settings") or {}).items() if k not in skip}


SHARED = "*"  # sweep.json's "settings" entry for what every category of the sweep shares


def record_sweep_settings(record: dict) -> dict:
    """The settings a record shares with every other record of its category in one sweep (seed and
    execution-only settings left out), as one flat dict for `settings_differences`."""
    settings = record.get("settings")
    settings = settings if isinstance(settings, dict) else {}
    machine = ((record.get("provenance") or {}).get("machine") or {}) if isinstance(record, dict) else {}
    found = {key: record.get(key) for key in ("dataset", "method", "profile", "checkpoint")}
    found["protocol"] = record.get("protocol") or "single"
    found["numerics"] = machine.get("numerics", "native") if isinstance(machine, dict) else "native"
    found["checkpoint_sha256"] = (record.get("model") or {}).get("checkpoint_sha256")
    # what tells two sweeps' records of one category apart beyond the seed: a run folder holds one sweep
    skip = execution_settings(record) | {"seed"}
    return found | {k: v for k, v in settings.items() if k not in skip}


def settings_differences(first: dict, second: dict, *, absent: str = "unset") -> list[str]:
    """'key A vs B' for every key whose values differ between two flat settings dicts (nested dicts by
    their dotted keys), in `first`'s order."""
    lines = []
    for key in dict.fromkeys([*first, *second]):
        a, b = first.get(key, absent), second.get(key, absent)
        if isinstance(a, dict) and isinstance(b, dict):
            lines += [f"{key}.{line}" for line in settings_differences(a, b, absent=absent)]
        elif json.dumps(a, sort_keys=True, default=str) != json.dumps(b, sort_keys=True, default=str):
            lines.append(f"{key} {_shown(a)} vs {_shown(b)}")
    return lines


def _shown(value) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str)


def check_one_sweep(run_dir: str | Path, records: list[dict]) -> None:
    """HarnessError (one line) when records of one category differ in more than seed and execution-only
    settings: two sweeps were written into one run folder, and their mean would mean nothing."""
    first_of: dict[str, dict] = {}
    for record in records:
        category = str(record.get("category"))
        if category not in first_of:
            first_of[category] = record
            continue
        differences = settings_differences(record_sweep_settings(first_of[category]), record_sweep_settings(record))
        if differences:
            raise HarnessError(
                f"{run_dir}: its records come from more than one sweep ({category}: "
                f"{'; '.join(differences[:3])}, in {first_of[category].get('job_id')} and {record.get('job_id')}); "
                "a run folder holds one sweep's settings: move one sweep's job folders to a run folder of its own"
            )


def write_json(path: Path, data: dict) -> None:
    text = json.dumps(data, indent=2, sort_keys=False, default=_json_default, allow_nan=False)
    atomic_write_text(path, text + "\n")


def _json_default(value):
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return None if math.isnan(value) else float(value)
    if isinstance(value, (np.ndarray,)):
        return value.tolist()
    if isinstance(value, (Path, tuple, set)):
        return str(value) if isinstance(value, Path) else list(value)
    raise TypeError(f"cannot store {type(value).__name__} in JSON")


def _save_predictions(handle: IO[bytes], arrays: dict[str, np.ndarray]) -> None:
    named: dict[str, Any] = dict(arrays)  # array names only: numpy's signature also has keyword options
    np.savez_compressed(handle, **named)


def read_json(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise HarnessError(f"{path}: file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise HarnessError(f"{path}: not a valid JSON record ({error})") from None


class RunStore:
    """Reads and writes one run folder."""

    def __init__(self, run_dir: str | Path) -> None:
        self.run_dir = Path(run_dir)

    def _create(self) -> None:
        """Create the folder, failing with one clear line when it cannot be written."""
        try:
            (self.run_dir / "jobs").mkdir(parents=True, exist_ok=True)
            probe = self.run_dir / ".write-test"
            probe.write_text("")
            probe.unlink()
        except OSError as error:
            raise HarnessError(f"{self.run_dir}: cannot write the output folder ({error.strerror or error})") from None

    def prepare(self, sweep_description: dict) -> None:
        """Create the folder and save the sweep. A folder that holds a sweep of other settings (its sweep.json's
        "settings": by category, for the categories both have, and what all categories share under "*") is
        refused before anything is written."""
        self._create()
        path = self.run_dir / "sweep.json"
        if path.is_file() and "settings" in sweep_description:
            before = None
            with contextlib.suppress(HarnessError):  # an unreadable sweep.json is rewritten
                before = read_json(path).get("settings")
            if isinstance(before, dict):
                self._refuse_another_sweep(before, sweep_description["settings"])
                # the folder keeps the settings of every category run into it, not only this command's
                sweep_description = sweep_description | {"settings": before | sweep_description["settings"]}
        write_json(path, sweep_description)

    def _refuse_another_sweep(self, before: dict, now: dict) -> None:
        for category in [c for c in now if c in before]:
            differences = settings_differences(now[category], before[category], absent="the default")
            if differences:
                where = "all categories" if category == SHARED else category
                raise HarnessError(
                    f"{self.run_dir} holds a sweep with other settings ({where}: "
                    f"{'; '.join(differences[:3])}, this command vs the folder's); a run folder holds one "
                    "sweep: give another --out, or none to use the folder named after these settings"
                )

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Create the folder and hold its lock meanwhile: one `run` per run folder at a time. Another process
        holding it is a HarnessError naming that process; a killed holder leaves nothing stuck (flock)."""
        self._create()
        with open(self.run_dir / LOCK, "a+", encoding="utf-8") as handle:  # closing it releases the lock
            if fcntl is not None:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    handle.seek(0)
                    holder = handle.read().strip() or "another process"
                    raise HarnessError(
                        f"{self.run_dir}: in use by another run ({holder}); wait until it ends, then run "
                        "the command again to do what it left (finished jobs are skipped), or give "
                        "another --out"
                    ) from None
                except OSError:
                    pass  # a file system without locks (some network mounts): run unlocked, as before locks existed
            handle.seek(0)
            handle.truncate()
            handle.write(f"pid {os.getpid()} on {platform.node()}, since {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
            handle.flush()
            yield

    def remove_stale_temporaries(self) -> int:
        """Delete temporary files that a killed writer left (never a live process's); how many there were."""
        return len(remove_stale_temporaries(self.run_dir))

    def job_configs(self) -> dict[str, dict]:
        """job id -> config.json of every job folder that has one."""
        configs = {}
        for path in sorted((self.run_dir / "jobs").glob(f"*/{CONFIG}")):
            with contextlib.suppress(HarnessError):
                configs[path.parent.name] = read_json(path)
        return configs

    def set_aside(self, job_id: str) -> Path:
        """Move a job's folder to superseded/<job id> (suffixed when taken), out of the run's results."""
        target = self.run_dir / SUPERSEDED / job_id
        number = 1
        while target.exists():
            number += 1
            target = self.run_dir / SUPERSEDED / f"{job_id}.{number}"
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self.job_dir(job_id), target)
        return target

    def job_dir(self, job_id: str) -> Path:
        return self.run_dir / "jobs" / job_id

    def is_done(self, job_id: str) -> bool:
        return (self.job_dir(job_id) / RECORD).is_file()

    def rerun_pending(self) -> set[str]:
        """Record ids that a `--rerun` set out to redo and has not yet: their old records do not count as done."""
        path = self.run_dir / RERUN_PENDING
        if not path.is_file():
            return set()
        with contextlib.suppress(HarnessError):
            pending = read_json(path).get("records")
            if isinstance(pending, list):
                return {str(record_id) for record_id in pending}
        return set()

    def set_rerun_pending(self, record_ids: set[str]) -> None:
        path = self.run_dir / RERUN_PENDING
        if record_ids:
            write_json(path, {"records": sorted(record_ids)})
        else:
            path.unlink(missing_ok=True)

    def write_config(self, job_id: str, config: dict) -> None:
        write_json(self.job_dir(job_id) / CONFIG, config)

    def write_failure(self, job_id: str, failure: dict) -> None:
        write_json(self.job_dir(job_id) / FAILURE, failure)

    def log_path(self, job_id: str) -> Path:
        return self.job_dir(job_id) / LOG

    def write_log(self, job_id: str, text: str) -> None:
        atomic_write_text(self.log_path(job_id), text)

    def append_log(self, job_id: str, text: str) -> None:
        path = self.log_path(job_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(text if text.endswith("\n") else text + "\n")

    def write_results(self, job_id: str, parts: list[tuple[str, dict, dict]], checkpoint: bytes | None = None) -> None:
        """A unified job's results: (record id, record, predictions) per category; the checkpoint goes to the
        job's own folder. Every old record first, then the checkpoint and every predictions file, then the
        records: the set is complete (the job done) when the last record is written."""
        for record_id, _, _ in parts:
            (self.job_dir(record_id) / RECORD).unlink(missing_ok=True)
        if checkpoint is not None:
            atomic_write(self.job_dir(job_id) / CHECKPOINT, lambda handle: handle.write(checkpoint))
        for record_id, _, predictions in parts:
            atomic_write(
                self.job_dir(record_id) / PREDICTIONS, functools.partial(_save_predictions, arrays=predictions)
            )
        for record_id, record, _ in parts:
            write_json(self.job_dir(record_id) / RECORD, record)
        (self.job_dir(job_id) / FAILURE).unlink(missing_ok=True)

    def write_result(self, job_id: str, record: dict, predictions: dict, checkpoint: bytes | None = None) -> None:
        """Predictions (and the checkpoint) first, the record last: the record marks the job as done.

        An old record (a rerun) goes first, so that no moment has it beside the new predictions.
        """
        folder = self.job_dir(job_id)
        (folder / RECORD).unlink(missing_ok=True)
        if checkpoint is not None:
            atomic_write(folder / CHECKPOINT, lambda handle: handle.write(checkpoint))
        atomic_write(folder / PREDICTIONS, lambda handle: np.savez_compressed(handle, **predictions))
        write_json(folder / RECORD, record)
        (folder / FAILURE).unlink(missing_ok=True)

    def records(self) -> list[dict]:
        """Every finished job's record, in job-id order (a unified job's only once all of them exist)."""
        folder = self.run_dir / "jobs"
        if not folder.is_dir():
            return []
        found = [read_json(path) for path in sorted(folder.glob(f"*/{RECORD}"))]
        return [record for record in found if record_set_complete(record, folder)]

    def write_results_csv(self) -> Path:
        rows = [flatten_record(record) for record in self.records()]
        columns: list[str] = []
        for row in rows:
            columns += [key for key in row if key not in columns]
        path = self.run_dir / RESULTS_CSV

        atomic_write_text(path, _csv_text(columns, rows))
        return path


def record_set_complete(record: dict, jobs_folder: Path) -> bool:
    """False for a record of a unified job whose other records do not all exist yet (a job killed, or still
    writing, between two of them): such a job is not done and none of its records counts."""
    unified = record.get("unified") if isinstance(record, dict) else None
    if not isinstance(unified, dict) or not isinstance(unified.get("records"), list):
        return True
    return all((Path(jobs_folder) / str(record_id) / RECORD).is_file() for record_id in unified["records"])


def _csv_text(columns: list[str], rows: list[dict]) -> str:
    import io

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def flatten_record(record: dict) -> dict:
    """One CSV row: identity columns, then one column per metric."""
    row = {key: record.get(key) for key in ("dataset", "category", "method", "profile", "seed", "job_id")}
    for name, metric in record.get("metrics", {}).items():
        row[name] = metric.get("value")
    row["seconds"] = record.get("timings", {}).get("total")
    row["protocol"] = record.get("protocol") or "single"  # records written before protocols existed: single
    return row


def _as_evaluated(values) -> np.ndarray:
    """Floats keep their dtype (float32 from the methods): rescore then sees the values the job scored."""
    values = np.asarray(values)
    return values if values.dtype in (np.float16, np.float32, np.float64) else values.astype(np.float64)


def pack_predictions(scores, labels, maps, masks, paths, defect_types) -> dict:
    """Arrays for predictions.npz: scores and maps exactly as the job evaluated them (so `rescore`
    reproduces the recorded metrics to the bit), bit-packed masks; the file is compressed."""
    data = {
        "scores": _as_evaluated(scores),
        "labels": np.asarray(labels, dtype=np.int8),
        "maps": _as_evaluated(maps),
        "paths": np.asarray(paths, dtype=str),
        "defect_types": np.asarray(defect_types, dtype=str),
    }
    if masks is not None:
        masks = np.asarray(masks, dtype=bool)
        data["masks_packed"] = np.packbits(masks.reshape(len(masks), -1), axis=1)
        data["masks_shape"] = np.asarray(masks.shape, dtype=np.int64)
    return data


def load_predictions(path: str | Path) -> dict:
    """The inverse of pack_predictions: masks unpacked to bool (or None); maps as stored, except that
    float16 maps (runs written before maps were stored as evaluated) come back as float32.
    `maps_stored_as` names the stored dtype."""
    try:
        with np.load(path) as data:
            arrays = {key: data[key] for key in data.files}
    except (OSError, ValueError) as error:
        raise HarnessError(f"{path}: cannot read predictions ({error})") from None
    masks = None
    if "masks_packed" in arrays:
        shape = tuple(int(s) for s in arrays.pop("masks_shape"))
        flat = np.unpackbits(arrays.pop("masks_packed"), axis=1, count=int(np.prod(shape[1:])))
        masks = flat.reshape(shape).astype(bool)
    arrays["masks"] = masks
    arrays["maps_stored_as"] = str(arrays["maps"].dtype)
    if arrays["maps"].dtype == np.float16:
        arrays["maps"] = arrays["maps"].astype(np.float32)
    return arrays
