"""Experiment tracking: every job of a sweep logged to MLflow and/or TensorBoard (docs/tracking.md).

Optional: nothing here is imported unless `--track` is given, and each tracker is an extra
(`pip install -e ".[mlflow]"`, `".[tensorboard]"`). The run folder stays the record of truth:
trackers read from it after each job, and a tracker that fails only costs a warning line.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from harness.errors import HarnessError
from harness.store import RunStore, read_json
from harness.tracking.base import JobEntry, SweepEntry, SweepTracking, Tracker, Unavailable, figures

TRACKERS = ("mlflow", "tensorboard")
# Modules each tracker needs; MLflow's own store under the run folder is SQLite, which needs SQLAlchemy and Alembic
_NEEDS: dict[str, tuple[str, ...]] = {"mlflow": ("mlflow",), "tensorboard": ("tensorboard",)}
_LOCAL_STORE_NEEDS = ("sqlalchemy", "alembic")


@dataclass(frozen=True)
class TrackingSettings:
    """Where a sweep is logged besides its run folder (none of it changes results)."""

    trackers: tuple[str, ...] = ()  # "mlflow", "tensorboard"
    uri: str | None = None  # MLflow tracking URI; None: $MLFLOW_TRACKING_URI, else SQLite in the run folder

    def mlflow_uri(self) -> str | None:
        return self.uri or os.environ.get("MLFLOW_TRACKING_URI") or None


def check_trackers(settings: TrackingSettings) -> None:
    """Unknown trackers and missing packages are one line, before anything runs or is written."""
    for name in settings.trackers:
        if name not in TRACKERS:
            raise HarnessError(f"--track {name}: unknown tracker; choose {' or '.join(TRACKERS)}")
        needs = _NEEDS[name]
        uri = settings.mlflow_uri()
        if name == "mlflow" and (uri is None or uri.startswith("sqlite:")):
            needs += _LOCAL_STORE_NEEDS
        missing = [module for module in needs if importlib.util.find_spec(module) is None]
        if missing:
            raise HarnessError(
                f'--track {name} needs {", ".join(missing)}; install it with: pip install -e ".[{name}]"'
            )
    if settings.uri and "mlflow" not in settings.trackers:
        raise HarnessError("--tracking-uri is MLflow's: add --track mlflow")


def open_tracking(
    settings: TrackingSettings, store: RunStore, sweep: SweepEntry, log: Callable[[str], None]
) -> SweepTracking:
    """The sweep's trackers, its parent run started (or continued, when the run folder has one)."""
    trackers: list[Tracker] = []
    broken: dict[str, Exception] = {}
    for name in dict.fromkeys(settings.trackers):
        try:
            trackers.append(_create(name, settings, store))
        except Exception as error:  # a URI MLflow does not know, a broken install: a warning, like any failure
            trackers.append(Unavailable(name))
            broken[name] = error
    tracking = SweepTracking(trackers, log)
    for tracker in trackers:
        if tracker.name in broken:
            tracking.fail(tracker, broken[tracker.name], "at the start")
    tracking.start(sweep)
    return tracking


def _create(name: str, settings: TrackingSettings, store: RunStore) -> Tracker:
    if name == "mlflow":
        from harness.tracking.mlflow_tracker import MlflowTracker

        return MlflowTracker(settings.mlflow_uri(), store.run_dir)
    from harness.tracking.tensorboard_tracker import TensorBoardTracker

    return TensorBoardTracker(store.run_dir)


def _text(value: object) -> str:
    return value if isinstance(value, str) else "none" if value is None else str(value)


def flatten(prefix: str, values: dict) -> dict[str, str]:
    """{"a": {"b": 1}} -> {"prefix.a.b": "1"}: nested settings and provenance as flat parameters and tags."""
    flat: dict[str, str] = {}
    for key, value in values.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict):
            flat |= flatten(name, value)
        elif isinstance(value, (list, tuple)):
            flat[name] = ",".join(map(_text, value))
        else:
            flat[name] = _text(value)
    return flat


def _params(config: dict) -> dict[str, str]:
    """A job's parameters: its id and identity, and its resolved settings (from its config.json, written before
    it ran: the same for a failed job and for its successful rerun)."""
    identity = {k: v for k, v in config.items() if k not in ("settings", "data_options", "data_fingerprints")}
    return (
        flatten("", identity)
        | flatten("settings", config.get("settings") or {})
        | flatten("data_options", config.get("data_options") or {})
    )


def job_entries(store: RunStore, job_id: str, record_ids: tuple[str, ...] | list[str]) -> list[JobEntry]:
    """What the run folder says about a job now: an entry per record when it finished, one failed entry when
    it failed, none when it left nothing (killed before it could write)."""
    config = _read(store.job_dir(job_id) / "config.json")
    log_path = store.log_path(job_id)
    entries = []
    for record_id in record_ids:
        folder = store.job_dir(record_id)
        record = _read(folder / "record.json")
        if not record:
            continue
        params = _params(config) | {"job_id": record_id, "category": _text(record.get("category"))}
        if record_id != job_id:
            params["unified_job"] = job_id
        metrics = record.get("metrics") or {}
        history = record.get("history") or []
        tags = flatten("data", record.get("data") or {}) | flatten("provenance", record.get("provenance") or {})
        tags |= {f"definition.{name}": _text(m.get("definition")) for name, m in metrics.items()}
        tags |= {f"undefined.{name}": _text(m.get("reason")) for name, m in metrics.items() if m.get("value") is None}
        entries.append(
            JobEntry(
                run_id=record_id,
                folder=folder,
                status="FINISHED",
                params=params,
                tags=tags,
                losses=[(int(e["epoch"]), float(e["loss"])) for e in history],
                interim=[
                    (int(e["epoch"]), name, float(value))
                    for e in history
                    for name, value in (e.get("test_metrics") or {}).items()
                    if value is not None
                ],
                final={name: float(m["value"]) for name, m in metrics.items() if m.get("value") is not None},
                final_step=int(history[-1]["epoch"]) if history else 0,
                definitions={name: _text(m.get("definition")) for name, m in metrics.items()},
                files=[
                    p for p in (folder / "record.json", store.job_dir(job_id) / "config.json", log_path) if p.is_file()
                ]
                + figures(folder),
                log_path=log_path,
            )
        )
    if entries:
        return entries
    failure = _read(store.job_dir(job_id) / "failure.json")
    if not failure:
        return []
    folder = store.job_dir(job_id)
    return [
        JobEntry(
            run_id=job_id,
            folder=folder,
            status="FAILED",
            params=_params(config) | {"job_id": job_id},
            tags={"failure": f"{failure.get('status', 'failed')}: {_text(failure.get('message'))}"},
            losses=[],
            interim=[],
            final={},
            final_step=0,
            definitions={},
            files=[p for p in (folder / "failure.json", folder / "config.json", log_path) if p.is_file()]
            + figures(folder),
            log_path=log_path,
        )
    ]


def sweep_outputs(store: RunStore, record_ids: list[str], metrics: list[str]) -> tuple[list[Path], dict[str, str]]:
    """What the parent run keeps at the end: the sweep description and results table as files, and as
    Markdown the results table and the report (the same as `python -m harness report RUN`)."""
    from harness.report.build import build_report
    from harness.report.summary import summary_table
    from harness.report.tables import markdown

    files = [path for path in (store.run_dir / "sweep.json", store.run_dir / "results.csv") if path.is_file()]
    order = {record_id: position for position, record_id in enumerate(record_ids)}
    records = sorted((r for r in store.records() if r["job_id"] in order), key=lambda r: order[r["job_id"]])
    texts: dict[str, str] = {}
    if records:
        texts["results.md"] = summary_table(records, metrics) + "\n"
        try:
            texts["report.md"] = markdown(build_report([store.run_dir], metrics=metrics))
        except HarnessError as error:  # a report that cannot be built leaves the table
            texts["report.md"] = f"no report: {error}\n"
    return files, texts


def _read(path: Path) -> dict:
    try:
        return read_json(path)
    except (HarnessError, OSError):
        return {}


__all__ = [
    "TRACKERS",
    "JobEntry",
    "SweepEntry",
    "SweepTracking",
    "TrackingSettings",
    "check_trackers",
    "flatten",
    "job_entries",
    "open_tracking",
    "sweep_outputs",
]
