"""Recompute metrics from stored predictions (predictions.npz), without training.

Used after a metric is added or fixed: every finished job's record gets the recomputed values (other
metrics are kept), is rewritten atomically, and results.csv is rebuilt. predictions.npz holds the
scores and maps as the job evaluated them (float32), so an unchanged metric is reproduced to the
bit. Runs written before that stored float16 maps: their pixel metrics come back close, not equal
(pixel AP shifted by up to ~1.3e-3, visible at 0.1-point precision), and a rescored record names the
dtype it was computed from.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from harness.errors import HarnessError
from harness.report.records import finished_jobs
from harness.store import RunStore, load_predictions, write_json

CHANGE_TOLERANCE = 1e-12  # smaller differences are float noise, not changes


def _names(requested: list[str] | None) -> list[str] | None:
    from harness.metrics import METRICS

    if requested is None:
        return None
    for name in requested:
        if name not in METRICS:
            raise HarnessError(f"unknown metric '{name}'; known metrics: {', '.join(METRICS)}")
    return list(dict.fromkeys(requested))


def rescore(
    run_dir: str | Path, metrics: list[str] | None = None
) -> tuple[int, list[tuple[str, str, float | None, float | None]]]:
    """Recompute `metrics` (default: those each record has) for every finished job of the run.

    Returns the number of jobs and (job id, metric, old value, new value) for every value that
    changed or was added (None: absent or undefined). Every predictions file is checked before any
    record is rewritten.
    """
    from harness.metrics import METRICS, evaluate

    jobs = finished_jobs(run_dir)
    names = _names(metrics)
    missing = [job.folder.name for job in jobs if not job.predictions.is_file()]
    if missing:
        raise HarnessError(f"{run_dir}: no predictions.npz for job(s) {', '.join(missing)}: they cannot be rescored")
    # The run folder's lock: a `run` still writing this folder would otherwise race the rewritten records.
    with RunStore(run_dir).locked():
        RunStore(run_dir).remove_stale_temporaries()  # what a killed rescore (or run) left
        changes = []
        for job in jobs:
            record = job.record
            wanted = names or list(record["metrics"])
            unknown = [n for n in wanted if n not in METRICS]
            if unknown:
                raise HarnessError(
                    f"{job.folder / 'record.json'}: metric '{unknown[0]}' is not known to this version "
                    "of the harness; pass --metrics with known names"
                )
            predictions = load_predictions(job.predictions)
            values = evaluate(
                predictions["scores"], predictions["labels"], predictions["maps"], predictions["masks"], names=wanted
            )
            updated = dict(record["metrics"])
            for name, value in values.items():
                old = (record["metrics"].get(name) or {}).get("value") if name in record["metrics"] else None
                new = value.to_dict()
                if name not in record["metrics"] or _changed(old, new["value"]):
                    changes.append((job.folder.name, name, old, new["value"]))
                updated[name] = new
            if updated != record["metrics"]:
                source = f"predictions.npz ({predictions['maps_stored_as']} maps, {predictions['scores'].dtype} scores)"
                record = record | {
                    "metrics": updated,
                    "rescored": {
                        "at": datetime.now(UTC).isoformat(timespec="seconds"),
                        "metrics": wanted,
                        "from": source,
                    },
                }
                write_json(job.folder / "record.json", record)
        RunStore(run_dir).write_results_csv()
    return len(jobs), changes


def _changed(old, new) -> bool:
    if old is None or new is None:
        return old is not new
    return abs(float(old) - float(new)) > CHANGE_TOLERANCE
