"""Runs one job: load data, fit, predict, score. The only place where data, methods and metrics meet.

`compute_job` returns the record and the prediction arrays without touching the run folder, so a
job can run in another process or on a dask worker without a shared disk; whoever holds the store
(the scheduler, on the client) writes them with `store_result`. `execute_job` wraps `compute_job`
for the backends: it never raises for a job's own failure, logs what the job did and returns a
`JobOutcome` that can be pickled back to the client.
"""

from __future__ import annotations

import math
import os
import platform
import time
import traceback
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Callable

from harness import datasets, methods
from harness.errors import DataError
from harness.metrics import LABELS, evaluate
from harness.store import RunStore, pack_predictions
from harness.sweep import provenance
from harness.sweep.joblog import JobLog
from harness.sweep.numerics import numerics
from harness.sweep.plan import Job

SCORE_POOLING = "max of the anomaly map"


@dataclass
class JobResult:
    record: dict
    predictions: dict  # arrays for predictions.npz (store.pack_predictions)
    checkpoint: bytes | None = None  # the trained model in the method's checkpoint format, when asked for


@dataclass
class JobOutcome:
    """What a backend hands back for one job: a result, or why there is none."""

    job_id: str
    status: str  # "ok" | "failed" (an exception) | "timeout" (killed at --job-timeout) | "crashed" (process died)
    result: JobResult | None = None
    message: str = ""
    traceback: str = ""
    seconds: float = 0.0
    log: str | None = None  # the job's log text when it was not written to the run folder as it ran

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def compute_job(job: Job, *, log: Callable[[str], None] = lambda line: None,
                execution: dict | None = None, ready: Callable[[], None] | None = None) -> JobResult:
    """Run `job` to completion and return its record and predictions; writes nothing.

    Any exception propagates. `execution` (backend, worker, pinned GPU, threads) goes into the
    record's provenance. `ready` is called once the model is built: the job's own work (data,
    training, prediction, metrics) starts there, and so does a --job-timeout.
    """
    with numerics(job.numerics):
        return _compute(job, log, execution, ready)


def _compute(job: Job, log: Callable[[str], None], execution: dict | None,
             ready: Callable[[], None] | None) -> JobResult:
    timings: dict[str, float] = {}
    provenance.reset_peak_memory()
    started = time.perf_counter()

    # The model first: building it (the method's imports, the teacher's weights) is set-up, not the job's work.
    clock = time.perf_counter()
    method_class = methods.get(job.method)
    method = method_class(method_class.Settings(**job.settings))
    timings["build"] = time.perf_counter() - clock
    log(f"model: built in {timings['build']:.1f} s")
    if ready is not None:
        ready()

    clock = time.perf_counter()
    adapter = datasets.create(job.dataset, job.root, **job.data_options)
    data = adapter.load(job.category, int(job.settings["image_size"]))
    timings["load"] = time.perf_counter() - clock
    log(f"load: {len(data.train)} training and {len(data.test)} test images, fingerprint {data.fingerprint} "
        f"({timings['load']:.1f} s)")
    if job.data_fingerprint and data.fingerprint != job.data_fingerprint:
        raise DataError(f"{job.dataset}/{job.category}: the data changed after the sweep was planned (fingerprint "
                        f"{job.data_fingerprint}, now {data.fingerprint}); run the command again to plan the sweep "
                        "on the data as they are now")

    clock = time.perf_counter()
    history = []
    interim: dict[int, dict] = {}  # epoch -> test metrics logged during training (--eval-every)
    if job.checkpoint:
        method.load_checkpoint(job.checkpoint)
        log(f"checkpoint: {job.checkpoint}")
    else:
        def epoch_line(entry) -> None:
            log(f"epoch {entry.epoch}/{entry.epochs}: loss {entry.loss:.6f} ({entry.seconds:.1f} s)")

        def interim_evaluation(entry) -> None:
            # Logged for the learning curve only; the model reported is always the last epoch's.
            if job.eval_every and entry.epoch % job.eval_every == 0 and entry.epoch < entry.epochs:
                scores_now, maps_now = method.predict(data.test.images)
                values = evaluate(scores_now, data.test.labels, maps_now, data.test.masks, names=job.metrics)
                interim[entry.epoch] = {name: value.to_dict()["value"] for name, value in values.items()}
                log(f"epoch {entry.epoch} test metrics (logged, not used for selection): "
                    + ", ".join(f"{LABELS.get(n, n)} {v.value:.4f}" for n, v in values.items()))

        history = method.fit(data.train.images, callbacks=[epoch_line, interim_evaluation])
    timings["fit"] = time.perf_counter() - clock

    clock = time.perf_counter()
    scores, maps = method.predict(data.test.images)
    timings["predict"] = time.perf_counter() - clock
    log(f"predict: {len(scores)} images ({timings['predict']:.1f} s)")

    clock = time.perf_counter()
    metrics = evaluate(scores, data.test.labels, maps, data.test.masks, names=job.metrics)
    timings["metrics"] = time.perf_counter() - clock
    timings["total"] = time.perf_counter() - started
    log("metrics: " + ", ".join(f"{LABELS.get(name, name)} {value.value:.4f}" for name, value in metrics.items()))

    selected = selected_on_test(interim, history[-1].epoch, metrics, job.eval_every) if history and job.eval_every else None
    if selected:
        log(f"best epoch on the test set (the official RD++ script's choice; not the reported value): epoch "
            f"{selected['epoch']}/{history[-1].epoch}, "
            + ", ".join(f"{LABELS.get(n, n)} {v:.4f}" for n, v in selected["metrics"].items() if v is not None))

    settings = method.settings
    device = getattr(method, "device", None)
    described = method.describe()
    device_text = str(device) if device is not None else getattr(settings, "device", None)
    record = {
        "schema": 1,
        "job_id": job.job_id,
        "status": "ok",
        "dataset": job.dataset,
        "category": job.category,
        "method": job.method,
        "profile": job.profile,
        "seed": job.seed,
        "settings": job.settings,
        "checkpoint": job.checkpoint,
        "model": _model_source(job, history),
        "metrics": {name: value.to_dict() for name, value in metrics.items()},
        "evaluation": {
            "image_size": job.settings.get("image_size"),
            "score_pooling": SCORE_POOLING,
            "model_selection": "last epoch (no selection on test data)",
        },
        "data": {
            "fingerprint": data.fingerprint,
            "n_train": len(data.train),
            "n_test": len(data.test),
            "n_test_anomalous": int(data.test.labels.sum()),
            "has_masks": data.test.masks is not None,
            "options": job.data_options,
            **({"provenance": data.provenance} if data.provenance else {}),
        },
        "method_info": described,
        "history": [{"epoch": e.epoch, "loss": e.loss, "seconds": round(e.seconds, 3)}
                    | ({"test_metrics": interim[e.epoch]} if e.epoch in interim else {}) for e in history],
        # Never the reported value: what selecting the epoch on the test set would report (--eval-every)
        **({"selected_on_test": selected} if selected else {}),
        "timings": {name: round(seconds, 3) for name, seconds in timings.items()},
        "memory": provenance.peak_memory(str(device or "cpu")),
        "provenance": provenance.software() | {
            "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),  # when the record was made
            "device": device_text,
            "device_name": provenance.device_name(str(device or "cpu")),
            "seed": job.seed,
            "weights_sha256": described.get("weights_sha256"),
            "data_fingerprint": data.fingerprint,
            "machine": provenance.machine(str(device or "cpu"), described.get("cuda_numerics")),
        } | provenance.execution() | (execution or {}),
    }
    predictions = pack_predictions(scores, data.test.labels, maps, data.test.masks, data.test.paths, data.test.defect_types)
    return JobResult(record, predictions, _checkpoint_bytes(method) if job.save_checkpoint and not job.checkpoint else None)


# The official selection averages I-AUROC, P-AUROC and its per-image PRO (the harness's pro_rd4ad);
# a job without pro_rd4ad uses the MVTec AU-PRO in its place.
SELECTION_METRICS = (("image_auroc",), ("pixel_auroc",), ("pro_rd4ad", "au_pro"))


def selected_on_test(interim: dict[int, dict], last_epoch: int, final: dict, every: int) -> dict | None:
    """The epoch the official RD++ script would report: the best mean of I-AUROC, P-AUROC and PRO
    (those the job computes) over the test-set evaluations (interim ones and the last epoch's); the
    earliest such epoch on ties, as its strict `>` does. None when the job computes none of the three.

    Model selection on the test set: recorded beside the reported (last-epoch) values, never instead.
    """
    evaluations = {epoch: dict(values) for epoch, values in interim.items()}
    evaluations[last_epoch] = {name: value.to_dict()["value"] for name, value in final.items()}

    used = []
    for choices in SELECTION_METRICS:  # per slot, the first metric evaluated every time
        found = next((m for m in choices if all(values.get(m) is not None for values in evaluations.values())), None)
        if found:
            used.append(found)
    if not used:
        return None
    best_epoch, best = None, -math.inf
    for epoch in sorted(evaluations):
        score = sum(evaluations[epoch][m] for m in used) / len(used)
        if score > best:
            best_epoch, best = epoch, score
    cadence = ("after every epoch" if every == 1
               else f"every {every} epochs and after the last (the official script evaluates after every epoch)")
    return {
        "epoch": best_epoch,
        "metrics": evaluations[best_epoch],
        "rule": f"best mean of {', '.join(LABELS.get(m, m) for m in used)} on the test set, evaluated {cadence} "
                "(official RD++ script); model selection on test data, not the reported value",
        "epochs_evaluated": len(evaluations),
        "last_epoch": last_epoch,
    }


def _model_source(job: Job, history: list) -> dict:
    """Where the evaluated model came from: trained here (and for how long), or loaded from a checkpoint."""
    if not job.checkpoint:
        return {"trained": True, "epochs": len(history)}
    import hashlib

    digest = hashlib.sha256()
    with open(job.checkpoint, "rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return {"trained": False, "checkpoint": job.checkpoint, "checkpoint_sha256": digest.hexdigest()}


def _checkpoint_bytes(method) -> bytes:
    """The trained model as the bytes of a checkpoint file, so the client (not a remote worker) writes it."""
    import io

    import torch

    buffer = io.BytesIO()
    torch.save(method.state_dict(), buffer)
    return buffer.getvalue()


def store_result(store: RunStore, result: JobResult) -> None:
    store.write_result(result.record["job_id"], result.record, result.predictions, result.checkpoint)


# the steps of a job (_compute), by the function its traceback enters next: what the job was doing when it failed
_STEPS = {"__init__": "building the model", "load": "loading the data", "fit": "training", "predict": "predicting",
          "evaluate": "computing the metrics"}


def _out_of_memory(error: BaseException) -> bool:
    text = str(error)
    return (isinstance(error, MemoryError) or type(error).__name__ == "OutOfMemoryError"
            or (isinstance(error, RuntimeError) and ("can't allocate memory" in text or "out of memory" in text)))


def failure_message(error: BaseException, job: Job) -> str:
    """`Type: message`; for running out of memory (often a bare "MemoryError"), also which memory, in which
    step, at which sizes, and what to lower."""
    message = f"{type(error).__name__}: {error}"
    if not _out_of_memory(error):
        return message
    frames = [frame.name for frame in traceback.extract_tb(error.__traceback__)]
    step = _STEPS.get(frames[frames.index("_compute") + 1]) if "_compute" in frames[:-1] else None
    memory = "GPU memory" if "CUDA" in str(error) or type(error).__module__.startswith("torch.cuda") else "memory (RAM)"
    s = job.settings
    lower = {"training": "--batch-size or --image-size",
             "predicting": "the setting predict_batch_size (a sweep file's [settings]) or --image-size"}.get(step, "--image-size")
    detail = str(error).strip().splitlines()[0][:200] if str(error).strip() else ""
    return (f"{type(error).__name__}: out of {memory}{f' while {step}' if step else ''} at image_size "
            f"{s.get('image_size')}, batch_size {s.get('batch_size')}, predict_batch_size {s.get('predict_batch_size')}; "
            f"lower {lower}, or run fewer jobs at once" + (f" ({detail})" if detail else ""))


def execute_job(job: Job, *, log_path: str | os.PathLike | None = None, echo: bool = False, capture: bool = True,
                execution: dict | None = None, ready: Callable[[], None] | None = None,
                sink: Callable[[str], None] | None = None) -> JobOutcome:
    """Run `job` and return its outcome; exceptions become a failed outcome, never propagate.

    The job's log (its own lines, plus what it prints and warns when `capture`) streams to
    `log_path` when given (the run folder is on this machine), else it comes back in `outcome.log`;
    `sink` also receives the log's text as it is written (a dask worker sends it to the client, so
    that a job killed at its timeout keeps its log). `echo` also shows the job's output, its epoch
    bar among it, on this process's terminal. `ready` is passed to compute_job.
    KeyboardInterrupt and other BaseExceptions propagate: stopping a sweep is not a job failure.
    """
    started = time.perf_counter()
    with JobLog(log_path, echo=echo, capture=capture, sink=sink) as joblog:
        joblog.line(f"job {job.job_id}: {job.dataset}/{job.category}, method {job.method}, profile {job.profile}, "
                    f"seed {job.seed}; host {platform.node()}, pid {os.getpid()}")
        joblog.line(f"settings: {job.settings}")
        try:
            result = compute_job(job, log=joblog.line, execution=execution, ready=ready)
        except Exception as error:
            message = failure_message(error, job)
            trace = traceback.format_exc()
            joblog.line(f"FAILED after {time.perf_counter() - started:.1f} s: {message}")
            joblog.write(trace)
            return JobOutcome(job.job_id, "failed", message=message, traceback=trace,
                              seconds=time.perf_counter() - started, log=joblog.text())
        joblog.line(f"done in {time.perf_counter() - started:.1f} s")
        return JobOutcome(job.job_id, "ok", result=result, seconds=time.perf_counter() - started, log=joblog.text())
