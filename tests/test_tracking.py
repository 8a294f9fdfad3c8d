"""run --track: every job logged to MLflow and TensorBoard, read back with each tracker's own reader.

Tiny sweeps (two categories, two epochs, 64 px, resnet18 with random weights) in this process; the
values the trackers hold must be the records' values exactly.
"""

from __future__ import annotations

import importlib.util
import json
import socket
import time
from pathlib import Path

import pytest

from sweep_fixtures import FAST, make_dataset, records, run_in_process

EPOCHS = ["--epochs", "2"]
needs_mlflow = pytest.mark.skipif(
    any(importlib.util.find_spec(m) is None for m in ("mlflow", "sqlalchemy", "alembic")),
    reason="mlflow (with sqlalchemy and alembic) is not installed: pip install -e .[mlflow]",
)
needs_tensorboard = pytest.mark.skipif(
    importlib.util.find_spec("tensorboard") is None,
    reason="tensorboard is not installed: pip install -e .[tensorboard]",
)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("tracking") / "data")


def _client(run: Path):
    from mlflow import MlflowClient

    uri = f"sqlite:///{run.resolve() / 'mlflow.db'}"
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _mlflow_runs(run: Path) -> dict[str, object]:
    """{run name: run} of the run folder's experiment."""
    client = _client(run)
    experiment = client.get_experiment_by_name(run.name)
    assert experiment is not None and experiment.tags["harness.run_folder"] == str(run.resolve())
    found = client.search_runs([experiment.experiment_id])
    names = [r.info.run_name for r in found]
    assert len(names) == len(set(names)), f"duplicate runs: {names}"
    return {r.info.run_name: r for r in found}


def _history(client, run_id: str, name: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in client.get_metric_history(run_id, name))


@needs_mlflow
def test_mlflow_holds_every_job_as_its_record_says(data, tmp_path):
    run = tmp_path / "run"
    args = [*FAST, *EPOCHS, "--eval-every", "1", "--root", str(data), "--out", str(run)]
    assert run_in_process("run", *args) == 0
    # the sweep ran untracked first: its jobs are logged when a later run of it tracks
    assert run_in_process("run", *args, "--track", "mlflow") == 0
    client = _client(run)
    runs = _mlflow_runs(run)
    sweep = runs.pop("sweep")
    found = records(run)
    assert sorted(runs) == sorted(r["job_id"] for r in found.values())  # done before: logged on the next run
    for record in found.values():
        logged = runs[record["job_id"]]
        assert logged.info.status == "FINISHED"
        assert logged.data.tags["mlflow.parentRunId"] == sweep.info.run_id
        params, tags = logged.data.params, logged.data.tags
        assert params["job_id"] == record["job_id"] and params["category"] == record["category"]
        assert params["settings.epochs"] == "2" and params["settings.backbone"] == "resnet18"
        assert params["eval_every"] == "1"
        assert tags["data.fingerprint"] == record["data"]["fingerprint"]
        assert tags["provenance.torch"] == record["provenance"]["torch"]
        run_id = logged.info.run_id
        assert _history(client, run_id, "loss") == [(e["epoch"], e["loss"]) for e in record["history"]]
        first, last = record["history"]
        for name, metric in record["metrics"].items():
            assert _history(client, run_id, f"test/{name}") == [(last["epoch"], metric["value"])]
            assert tags[f"definition.{name}"] == metric["definition"]
            assert _history(client, run_id, f"interim_test/{name}") == [(1, first["test_metrics"][name])]
        artifacts = {a.path for a in client.list_artifacts(run_id)}
        assert {"record.json", "config.json", "log.txt"} <= artifacts
        local = Path(client.download_artifacts(run_id, "record.json", str(tmp_path / record["job_id"])))
        assert json.loads(local.read_text()) == record
    assert sweep.info.status == "FINISHED"
    assert sweep.data.params["categories"] == "amber,slate" and sweep.data.params["jobs"] == "2"
    assert {"results.csv", "results.md", "report.md", "sweep.json"} <= {
        a.path for a in client.list_artifacts(sweep.info.run_id)
    }
    results = Path(client.download_artifacts(sweep.info.run_id, "results.csv", str(tmp_path / "sweep")))
    assert results.read_text() == (run / "results.csv").read_text()


@needs_mlflow
@needs_tensorboard
def test_a_resumed_sweep_continues_the_same_runs(data, tmp_path):
    """A sweep stopped after its first category (the second left nothing, as a killed job does) and run
    again: one run per job in each tracker, the first job's run the same one."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = tmp_path / "run"
    track = ["--track", "mlflow", "--track", "tensorboard"]
    base = [*FAST, *EPOCHS, "--root", str(data), "--out", str(run), *track]
    assert run_in_process("run", *base, "--categories", "amber") == 0
    first = {name: r.info.run_id for name, r in _mlflow_runs(run).items()}
    assert run_in_process("run", *base, "--categories", "amber,slate") == 0
    second = _mlflow_runs(run)
    assert len(second) == 3  # the sweep and two jobs
    assert {name: second[name].info.run_id for name in first} == first
    for record in records(run).values():
        events = EventAccumulator(str(run / "tensorboard" / record["job_id"]))
        events.Reload()
        assert [(e.step, e.value) for e in events.Scalars("loss")] == [
            (e["epoch"], pytest.approx(e["loss"], rel=1e-6)) for e in record["history"]
        ]
    assert sorted(p.name for p in (run / "tensorboard").iterdir()) == sorted(["sweep", *second.keys() - {"sweep"}])


@needs_tensorboard
def test_tensorboard_from_a_sweep_file_on_the_local_backend(data, tmp_path):
    """The sweep-file key, and a backend of child processes: the main process logs what they stored."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    sweep_file = tmp_path / "sweep.toml"
    sweep_file.write_text('track = ["tensorboard"]\nbackend = "local"\njobs = 2\n')
    run = tmp_path / "run"
    argv = ["run", "--sweep", str(sweep_file), *FAST, *EPOCHS, "--root", str(data), "--out", str(run)]
    assert run_in_process(*argv) == 0
    found = records(run)
    assert len(found) == 2
    for record in found.values():
        events = EventAccumulator(str(run / "tensorboard" / record["job_id"]), size_guidance={"tensors": 0})
        events.Reload()
        assert [(e.step, e.value) for e in events.Scalars("loss")] == [
            (e["epoch"], pytest.approx(e["loss"], rel=1e-6)) for e in record["history"]
        ]
        for name, metric in record["metrics"].items():
            (final,) = events.Scalars(f"test/{name}")
            assert (final.step, final.value) == (2, pytest.approx(metric["value"], rel=1e-6))
        texts = {tag: events.Tensors(tag)[0].tensor_proto.string_val[0].decode() for tag in events.Tags()["tensors"]}
        assert f"| job_id | {record['job_id']} |" in texts["params/text_summary"]
        assert record["data"]["fingerprint"] in texts["tags/text_summary"]
        assert texts["status/text_summary"] == "FINISHED"
        assert events.PluginTagToContent("hparams")  # the HParams dashboard has the job
    assert (run / "tensorboard" / "sweep").is_dir()


@needs_mlflow
def test_an_unreachable_server_changes_no_result_and_warns_once_per_job(data, tmp_path):
    plain = tmp_path / "plain"
    assert run_in_process("run", *FAST, "--root", str(data), "--out", str(plain)) == 0
    with socket.socket() as closed:  # bound, never listening: every connection is refused
        closed.bind(("127.0.0.1", 0))
        uri = f"http://127.0.0.1:{closed.getsockname()[1]}"
        run = tmp_path / "run"
        started = time.monotonic()
        args = [*FAST, "--root", str(data), "--out", str(run), "--track", "mlflow", "--tracking-uri", uri]
        code = run_in_process("run", *args)
        seconds = time.monotonic() - started
    assert code == 0
    assert seconds < 120
    tracked, untracked = records(run), records(plain)
    assert {c: r["metrics"] for c, r in tracked.items()} == {c: r["metrics"] for c, r in untracked.items()}
    assert {c: r["history"][-1]["loss"] for c, r in tracked.items()} == {
        c: r["history"][-1]["loss"] for c, r in untracked.items()
    }
    for record in tracked.values():
        log = (run / "jobs" / record["job_id"] / "log.txt").read_text().splitlines()
        warnings = [line for line in log if "WARNING" in line]
        assert len(warnings) == 1 and "not logged to mlflow" in warnings[0], log
        assert not (run / "jobs" / record["job_id"] / "tracking.json").exists()


@needs_mlflow
def test_a_failed_job_is_a_failed_run(data, tmp_path):
    from sweep_fixtures import break_category, make_category

    broken = make_category(tmp_path / "data", "slate", (90, 110, 140), seed=1)
    break_category(broken)
    run = tmp_path / "run"
    code = run_in_process("run", *FAST, "--root", str(tmp_path / "data"), "--out", str(run), "--track", "mlflow")
    assert code == 1
    (failure_path,) = run.glob("jobs/*/failure.json")
    failure = json.loads(failure_path.read_text())
    runs = _mlflow_runs(run)
    logged = runs[failure["job_id"]]
    assert logged.info.status == "FAILED"
    assert logged.data.tags["failure"] == f"failed: {failure['message']}"
    assert runs["sweep"].info.status == "FAILED"
    assert "failure.json" in {a.path for a in _client(run).list_artifacts(logged.info.run_id)}


def test_bad_tracking_flags_are_one_line_before_anything_is_written(data, tmp_path, capsys, monkeypatch):
    run = tmp_path / "run"
    assert run_in_process("run", *FAST, "--root", str(data), "--out", str(run), "--track", "wandb") == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "error: --track wandb: unknown tracker; choose mlflow or tensorboard"
    ]
    assert run_in_process("run", *FAST, "--root", str(data), "--out", str(run), "--tracking-uri", "http://x") == 2
    assert "add --track mlflow" in capsys.readouterr().err

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "tensorboard" else real(name, *a))
    assert run_in_process("run", *FAST, "--root", str(data), "--out", str(run), "--track", "tensorboard") == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        'error: --track tensorboard needs tensorboard; install it with: pip install -e ".[tensorboard]"'
    ]
    assert not run.exists()


@needs_mlflow
def test_a_failed_job_that_succeeds_when_run_again_is_the_same_run(tmp_path):
    """The run folder as the scheduler leaves it: a failure, then (the sweep run again) a record."""
    from harness.store import RunStore, write_json
    from harness.tracking import SweepEntry, TrackingSettings, job_entries, open_tracking

    store = RunStore(tmp_path / "run")
    store.prepare({"sweep": {}})
    job_id = "disc-s0-0123456789"
    store.write_config(
        job_id, {"job_id": job_id, "dataset": "synthetic", "category": "disc", "settings": {"epochs": 1}}
    )
    store.write_failure(job_id, {"job_id": job_id, "status": "failed", "message": "out of memory"})
    store.write_log(job_id, "started\n")
    warnings: list[str] = []

    def log_the_sweep(status: str) -> None:
        sweep = SweepEntry(store.run_dir, {"dataset": "synthetic"}, "a sweep")
        tracking = open_tracking(TrackingSettings(("mlflow",)), store, sweep, warnings.append)
        for entry in job_entries(store, job_id, [job_id]):
            tracking.job(entry)
        tracking.finish(status, [], {})

    log_the_sweep("FAILED")
    failed = _mlflow_runs(store.run_dir)[job_id]
    assert failed.info.status == "FAILED" and failed.data.tags["failure"] == "failed: out of memory"
    assert failed.data.params["settings.epochs"] == "1"

    record = {
        "job_id": job_id,
        "category": "disc",
        "metrics": {
            "image_auroc": {"value": 0.75, "definition": "I-AUROC: ROC AUC of the image scores"},
            "au_pro": {"value": None, "definition": "AU-PRO", "reason": "no masks"},
        },
        "history": [{"epoch": 1, "loss": 0.5}],
        "data": {"fingerprint": "f00d"},
        "provenance": {"torch": "2.x"},
    }
    write_json(store.job_dir(job_id) / "record.json", record)
    (store.job_dir(job_id) / "failure.json").unlink()
    log_the_sweep("FINISHED")
    runs = _mlflow_runs(store.run_dir)
    assert sorted(runs) == sorted([job_id, "sweep"])
    finished = runs[job_id]
    assert finished.info.run_id == failed.info.run_id and finished.info.status == "FINISHED"
    assert finished.data.metrics == {"loss": 0.5, "test/image_auroc": 0.75}  # an undefined metric is no number
    assert finished.data.tags["undefined.au_pro"] == "no masks"
    assert runs["sweep"].info.status == "FINISHED"
    assert warnings == []


@needs_mlflow
def test_a_tracking_uri_mlflow_cannot_use_is_a_warning_not_an_error(tmp_path):
    from harness.store import RunStore
    from harness.tracking import SweepEntry, TrackingSettings, job_entries, open_tracking

    store = RunStore(tmp_path / "run")
    store.prepare({"sweep": {}})
    job_id = "disc-s0-0123456789"
    store.write_config(job_id, {"job_id": job_id, "settings": {}})
    store.write_failure(job_id, {"job_id": job_id, "status": "failed", "message": "no data"})
    console: list[str] = []
    settings = TrackingSettings(("mlflow",), uri="nosuchscheme://somewhere")
    tracking = open_tracking(settings, store, SweepEntry(store.run_dir, {}, "a sweep"), console.append)
    for entry in job_entries(store, job_id, [job_id]):
        tracking.job(entry)
    tracking.finish("FAILED", [], {})
    assert len(console) == 1 and console[0].startswith(
        "warning: tracking to mlflow is off for this sweep (at the start"
    )
    log = store.log_path(job_id).read_text().splitlines()
    assert len(log) == 1 and "WARNING: not logged to mlflow" in log[0]
