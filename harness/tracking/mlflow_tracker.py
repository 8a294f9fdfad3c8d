"""MLflow: one experiment per run folder, a parent run per sweep, a nested run per job.

Without a tracking URI the store is SQLite in the run folder (mlflow.db, artifacts in mlartifacts/):
no server needed, and `mlflow ui --backend-store-uri sqlite:///RUN/mlflow.db` shows it. MLflow's
file store (./mlruns) is not used: MLflow has put it in maintenance mode.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

from harness.tracking.base import JobEntry, SweepEntry, Tracker, read_state, write_state

# A server that does not answer costs one short wait, not MLflow's default minutes of retries
_HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}
_TEXT_LIMIT = 5000  # MLflow's limits: 6000 characters for a parameter, 8000 for a tag
_BATCH = 900  # metrics per log_batch call (MLflow takes at most 1000)


def _short(text: str) -> str:
    return text if len(text) <= _TEXT_LIMIT else text[: _TEXT_LIMIT - 3] + "..."


class MlflowTracker(Tracker):
    name = "mlflow"

    def __init__(self, uri: str | None, run_dir: Path) -> None:
        for variable, value in _HTTP_DEFAULTS.items():
            os.environ.setdefault(variable, value)
        from mlflow import MlflowClient

        # After the import, which sets MLflow's own level: its INFO lines (database setup) would go through the
        # sweep's output
        for logger in ("mlflow", "alembic"):
            logging.getLogger(logger).setLevel(logging.WARNING)

        self.run_dir = run_dir.resolve()
        self.uri = uri or f"sqlite:///{self.run_dir / 'mlflow.db'}"
        self.client = MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)
        self.experiment_id = ""
        self.parent_id = ""

    def same_target(self, state: dict) -> bool:
        return bool(state) and state.get("uri") == self.uri

    def _local_artifacts(self) -> str | None:
        """Artifacts of a store without a server go beside it in the run folder (MLflow's default would be
        ./mlruns in whatever folder the command runs from); a server keeps its own."""
        return (
            None if self.uri.startswith(("http:", "https:", "databricks")) else (self.run_dir / "mlartifacts").as_uri()
        )

    def _experiment(self) -> str:
        """The run folder's experiment: named after the folder (and its path when another folder has the name).
        Its kind is model training: MLflow's UI then opens on its runs, not on its GenAI views."""
        from mlflow.entities import LifecycleStage

        folder = str(self.run_dir)
        for name in (self.run_dir.name, f"{self.run_dir.name} ({folder})"):
            found = self.client.get_experiment_by_name(name)
            if found is None:
                return self.client.create_experiment(
                    name,
                    artifact_location=self._local_artifacts(),
                    tags={"harness.run_folder": folder, "mlflow.experimentKind": "custom_model_development"},
                )
            if found.tags.get("harness.run_folder") == folder:
                if found.lifecycle_stage == LifecycleStage.DELETED:
                    self.client.restore_experiment(found.experiment_id)
                return found.experiment_id
        raise RuntimeError(f"experiments named {self.run_dir.name!r} belong to other run folders")

    def _existing(self, run_id: str) -> bool:
        from mlflow.exceptions import MlflowException

        if not run_id:
            return False
        try:
            run = self.client.get_run(run_id)
        except MlflowException:
            return False
        return run.info.experiment_id == self.experiment_id and run.info.lifecycle_stage == "active"

    def start_sweep(self, sweep: SweepEntry) -> None:
        state = read_state(self.run_dir).get(self.name) or {}
        self.experiment_id = self._experiment()
        if self.same_target(state) and self._existing(state.get("run_id", "")):
            self.parent_id = state["run_id"]
            self.client.update_run(self.parent_id, status="RUNNING")
        else:
            run = self.client.create_run(
                self.experiment_id,
                run_name="sweep",
                tags={"mlflow.note.content": _short(sweep.description), "harness.kind": "sweep"},
            )
            self.parent_id = run.info.run_id
            self._params(self.parent_id, sweep.params)
            write_state(self.run_dir, self.name, {"uri": self.uri, "run_id": self.parent_id})

    def _params(self, run_id: str, params: dict[str, str]) -> None:
        from mlflow.entities import Param

        items = [Param(key, _short(value)) for key, value in params.items()]
        for start in range(0, len(items), 100):  # MLflow takes at most 100 parameters per call
            self.client.log_batch(run_id, params=items[start : start + 100])

    def log_job(self, entry: JobEntry, state: dict, save: Callable[[dict], None]) -> dict:
        from mlflow.entities import Metric, RunTag

        run_id = state.get("run_id", "")
        if self._existing(run_id):
            self.client.update_run(run_id, status="RUNNING")
        else:
            tags = {"mlflow.parentRunId": self.parent_id, "harness.kind": "job"}
            run_id = self.client.create_run(self.experiment_id, run_name=entry.run_id, tags=tags).info.run_id
            self._params(run_id, entry.params)
            save({"uri": self.uri, "run_id": run_id, "complete": False})
        tags = entry.tags | {"mlflow.note.content": entry.description(), "harness.status": entry.status.lower()}
        now = int(time.time() * 1000)
        metrics = [Metric("loss", value, now, epoch) for epoch, value in entry.losses]
        metrics += [Metric(f"interim_test/{name}", value, now, epoch) for epoch, name, value in entry.interim]
        metrics += [Metric(f"test/{name}", value, now, entry.final_step) for name, value in entry.final.items()]
        self.client.log_batch(run_id, tags=[RunTag(k, _short(v)) for k, v in tags.items()])
        for start in range(0, len(metrics), _BATCH):
            self.client.log_batch(run_id, metrics=metrics[start : start + _BATCH])
        for path in entry.files:
            self.client.log_artifact(run_id, str(path))
        self.client.set_terminated(run_id, entry.status)
        return {"uri": self.uri, "run_id": run_id}

    def finish_sweep(self, status: str, files: list[Path], texts: dict[str, str]) -> None:
        for path in files:
            self.client.log_artifact(self.parent_id, str(path))
        for name, text in texts.items():
            self.client.log_text(self.parent_id, text, name)
        self.client.set_terminated(self.parent_id, status)
