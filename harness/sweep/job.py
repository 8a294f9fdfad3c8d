"""Runs one job: load data, fit, predict, score. The only place where data, methods and metrics meet.

`compute_job` returns the record and the prediction arrays without touching the run folder, so a
job can run in another process or on a dask worker without a shared disk; whoever holds the store
(the scheduler, on the client) writes them with `store_result`. `execute_job` wraps `compute_job`
for the backends: it never raises for a job's own failure, logs what the job did and returns a
`JobOutcome` that can be pickled back to the client.

A unified job (harness.sweep.plan.UNIFIED) loads every category first (a category whose data are
bad fails the job there, before any training), trains one model on all their training images,
shuffled together (seen as one array, not copied), then evaluates each category's test set in
turn and returns one record and predictions per category.
"""

from __future__ import annotations

import math
import os
import platform
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from harness import datasets, methods
from harness.errors import DataError
from harness.methods.base import ConcatenatedImages
from harness.metrics import LABELS, evaluate
from harness.store import RunStore, pack_predictions
from harness.sweep import provenance
from harness.sweep.joblog import JobLog
from harness.sweep.numerics import numerics
from harness.sweep.plan import UNIFIED, Job

SCORE_POOLING = "max of the anomaly map"


@dataclass
class JobResult:
    # A unified job: a summary (job id, categories, metrics averaged over them) that is never stored; its
    # records and predictions, one per category, are in `parts`.
    record: dict
    predictions: dict  # arrays for predictions.npz (store.pack_predictions)
    checkpoint: bytes | None = None  # the trained model in the method's checkpoint format, when asked for
    parts: list[tuple[dict, dict]] = field(default_factory=list)  # unified: (record, predictions) per category


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


def compute_job(
    job: Job,
    *,
    log: Callable[[str], None] = lambda line: None,
    execution: dict | None = None,
    ready: Callable[[], None] | None = None,
) -> JobResult:
    """Run `job` to completion and return its record and predictions; writes nothing.

    Any exception propagates. `execution` (backend, worker, pinned GPU, threads) goes into the
    record's provenance. `ready` is called once the model is built: the job's own work (data,
    training, prediction, metrics) starts there, and so does a --job-timeout.
    """
    with numerics(job.numerics):
        if job.protocol == UNIFIED:
            return _compute_unified(job, log, execution, ready)
        return _compute(job, log, execution, ready)


def _build(job: Job, log: Callable[[str], None], timings: dict, ready: Callable[[], None] | None):
    """The model first: building it (the method's imports, the teacher's weights) is set-up, not the job's work."""
    clock = time.perf_counter()
    method_class = methods.get(job.method)
    method = method_class(method_class.Settings(**job.settings))
    timings["build"] = time.perf_counter() - clock
    log(f"model: built in {timings['build']:.1f} s")
    if ready is not None:
        ready()
    return method


def _start(job: Job, log: Callable[[str], None], ready: Callable[[], None] | None):
    """What both job paths do first: open the peak-memory window, build the model, make the adapter.
    Returns (timings, start time, method, adapter)."""
    timings: dict[str, float] = {}
    provenance.reset_peak_memory()
    started = time.perf_counter()
    method = _build(job, log, timings, ready)
    return timings, started, method, datasets.create(job.dataset, job.root, **job.data_options)


def _check_fingerprint(job: Job, category: str, planned: str, data) -> None:
    if planned and data.fingerprint != planned:
        raise DataError(
            f"{job.dataset}/{category}: the data changed after the sweep was planned (fingerprint "
            f"{planned}, now {data.fingerprint}); run the command again to plan the sweep "
            "on the data as they are now"
        )


def _epoch_line(log: Callable[[str], None]):
    def line(entry) -> None:
        log(f"epoch {entry.epoch}/{entry.epochs}: loss {entry.loss:.6f} ({entry.seconds:.1f} s)")

    return line


def _metrics_text(values: dict) -> str:
    return ", ".join(f"{LABELS.get(name, name)} {value.value:.4f}" for name, value in values.items())


def _train(job: Job, method, images, tests: dict, log: Callable[[str], None]) -> tuple[list, dict]:
    """Fit `method` (or load the job's checkpoint instead). Returns (history, {epoch: {category: metrics}}): the
    test sets' metrics every --eval-every epochs, logged for the learning curve, never used to pick a model."""
    interim: dict[int, dict] = {}
    if job.checkpoint:
        method.load_checkpoint(job.checkpoint)
        log(f"checkpoint: {job.checkpoint}")
        return [], interim

    def interim_evaluation(entry) -> None:
        if job.eval_every and entry.epoch % job.eval_every == 0 and entry.epoch < entry.epochs:
            for category, test in tests.items():
                scores, maps = method.predict(test.images)
                values = evaluate(scores, test.labels, maps, test.masks, names=job.metrics)
                interim.setdefault(entry.epoch, {})[category] = {n: v.to_dict()["value"] for n, v in values.items()}
                which = f" {category}" if len(tests) > 1 else ""
                log(
                    f"epoch {entry.epoch}{which} test metrics (logged, not used for selection): {_metrics_text(values)}"
                )

    return method.fit(images, callbacks=[_epoch_line(log), interim_evaluation]), interim


def _compute(
    job: Job, log: Callable[[str], None], execution: dict | None, ready: Callable[[], None] | None
) -> JobResult:
    timings, started, method, adapter = _start(job, log, ready)
    clock = time.perf_counter()
    data = adapter.load(job.category, int(job.settings["image_size"]))
    timings["load"] = time.perf_counter() - clock
    log(
        f"load: {len(data.train)} training and {len(data.test)} test images, fingerprint {data.fingerprint} "
        f"({timings['load']:.1f} s)"
    )
    _check_fingerprint(job, job.category, job.data_fingerprint, data)

    clock = time.perf_counter()
    history, by_category = _train(job, method, data.train.images, {job.category: data.test}, log)
    interim = {epoch: values[job.category] for epoch, values in by_category.items()}
    timings["fit"] = time.perf_counter() - clock

    clock = time.perf_counter()
    scores, maps = method.predict(data.test.images)
    timings["predict"] = time.perf_counter() - clock
    log(f"predict: {len(scores)} images ({timings['predict']:.1f} s)")

    clock = time.perf_counter()
    metrics = evaluate(scores, data.test.labels, maps, data.test.masks, names=job.metrics)
    timings["metrics"] = time.perf_counter() - clock
    timings["total"] = time.perf_counter() - started
    log(f"metrics: {_metrics_text(metrics)}")

    selected = _selected(job, interim, history, metrics, log)
    record = _record(
        job,
        job.job_id,
        job.category,
        method,
        metrics,
        history,
        interim,
        selected,
        timings,
        execution,
        data.fingerprint,
        len(data.train),
        data.test,
        data.provenance,
    )
    predictions = pack_predictions(
        scores, data.test.labels, maps, data.test.masks, data.test.paths, data.test.defect_types
    )
    return JobResult(
        record, predictions, _checkpoint_bytes(method) if job.save_checkpoint and not job.checkpoint else None
    )


def _selected(
    job: Job, interim: dict, history: list, metrics: dict, log: Callable[[str], None], category: str = ""
) -> dict | None:
    """selected_on_test for one evaluated category (--eval-every only), logged; None without it."""
    selected = (
        selected_on_test(interim, history[-1].epoch, metrics, job.eval_every) if history and job.eval_every else None
    )
    if selected:
        log(
            f"{category + ': ' if category else ''}best epoch on the test set (the official RD++ script's choice; "
            f"not the reported value): epoch {selected['epoch']}/{history[-1].epoch}, "
            + ", ".join(f"{LABELS.get(n, n)} {v:.4f}" for n, v in selected["metrics"].items() if v is not None)
        )
    return selected


def _record(
    job: Job,
    record_id: str,
    category: str,
    method,
    metrics: dict,
    history: list,
    interim: dict,
    selected: dict | None,
    timings: dict,
    execution: dict | None,
    fingerprint: str,
    n_train: int,
    test,
    data_provenance: dict,
    unified: dict | None = None,
) -> dict:
    """The record of one category's evaluation (a job's only one, or one of a unified job's)."""
    settings = method.settings
    device = getattr(method, "device", None)
    described = method.describe()
    device_text = str(device) if device is not None else getattr(settings, "device", None)
    return {
        "schema": 1,
        "job_id": record_id,
        "status": "ok",
        "dataset": job.dataset,
        "category": category,
        "method": job.method,
        "method_label": getattr(type(method), "label", "") or job.method,
        "profile": job.profile,
        "protocol": job.protocol,
        **({"unified": unified} if unified is not None else {}),
        "seed": job.seed,
        "settings": job.settings,
        "execution_settings": list(job.execution_settings),
        "checkpoint": job.checkpoint,
        "model": _model_source(job, history),
        "metrics": {name: value.to_dict() for name, value in metrics.items()},
        "evaluation": {
            "image_size": job.settings.get("image_size"),
            "score_pooling": SCORE_POOLING,
            "model_selection": "last epoch (no selection on test data)",
        },
        "data": {
            "fingerprint": fingerprint,
            "n_train": n_train,
            "n_test": len(test),
            "n_test_anomalous": int(test.labels.sum()),
            "has_masks": test.masks is not None,
            "options": job.data_options,
            **({"provenance": data_provenance} if data_provenance else {}),
        },
        "method_info": described,
        "history": [
            {"epoch": e.epoch, "loss": e.loss, "seconds": round(e.seconds, 3)}
            | ({"test_metrics": interim[e.epoch]} if e.epoch in interim else {})
            for e in history
        ],
        # Never the reported value: what selecting the epoch on the test set would report (--eval-every)
        **({"selected_on_test": selected} if selected else {}),
        "timings": {name: round(seconds, 3) for name, seconds in timings.items()},
        "memory": provenance.peak_memory(str(device or "cpu")),
        "provenance": provenance.software()
        | {
            "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),  # when the record was made
            "device": device_text,
            "device_name": provenance.device_name(str(device or "cpu")),
            "seed": job.seed,
            "weights_sha256": described.get("weights_sha256"),
            "data_fingerprint": fingerprint,
            "machine": provenance.machine(str(device or "cpu"), described.get("cuda_numerics")),
        }
        | provenance.execution()
        | (execution or {}),
    }


def _compute_unified(
    job: Job, log: Callable[[str], None], execution: dict | None, ready: Callable[[], None] | None
) -> JobResult:
    """One model trained on every category's training images together; each category's test set scored apart."""
    timings, started, method, adapter = _start(job, log, ready)
    # Every category is loaded (and checked) before training: bad data fail the job here, naming the file.
    clock = time.perf_counter()
    size = int(job.settings["image_size"])
    train_parts, tests, loaded = [], {}, {}
    for category in job.categories:
        data = adapter.load(category, size)
        _check_fingerprint(job, category, job.data_fingerprints.get(category, ""), data)
        train_parts.append(data.train.images)
        tests[category] = data.test
        loaded[category] = (data.fingerprint, len(data.train), data.provenance)
        log(
            f"load {category}: {len(data.train)} training and {len(data.test)} test images, fingerprint "
            f"{data.fingerprint}"
        )
        del data  # only its training images (for training) and its test split are kept
    images = ConcatenatedImages(train_parts)
    del train_parts
    timings["load"] = time.perf_counter() - clock
    mapped = all(isinstance(part, np.memmap) for part in images.parts)
    log(
        f"load: {len(images)} training images of {len(job.categories)} categories, trained on together "
        f"({images.nbytes / 2**20:.0f} MiB as uint8, {'mapped from the array cache' if mapped else 'in memory'}); "
        f"{sum(len(t) for t in tests.values())} test images ({timings['load']:.1f} s)"
    )

    clock = time.perf_counter()
    history, interim = _train(job, method, images, tests, log)
    timings["fit"] = time.perf_counter() - clock
    del images  # the training images are not needed any more

    record_ids = dict(zip(job.categories, job.record_ids, strict=False))
    shared = {
        "job_id": job.job_id,
        "categories": list(job.categories),
        "records": list(job.record_ids),
        "n_train": sum(n for _, n, _ in loaded.values()),
        "n_train_by_category": {category: n for category, (_, n, _) in loaded.items()},
    }
    parts: list[tuple[dict, dict]] = []
    means: dict[str, list[float]] = {}
    for category in job.categories:
        test = tests.pop(category)  # scored categories are let go one by one
        clock = time.perf_counter()
        scores, maps = method.predict(test.images)
        own = {"predict": time.perf_counter() - clock}
        clock = time.perf_counter()
        metrics = evaluate(scores, test.labels, maps, test.masks, names=job.metrics)
        own["metrics"] = time.perf_counter() - clock
        log(f"{category}: predict {len(scores)} images ({own['predict']:.1f} s); metrics: {_metrics_text(metrics)}")
        for name, value in metrics.items():
            means.setdefault(name, []).append(value.value)
        fingerprint, n_train, data_provenance = loaded[category]
        part_interim = {
            epoch: by_category[category] for epoch, by_category in interim.items() if category in by_category
        }
        selected = _selected(job, part_interim, history, metrics, log, category)
        record = _record(
            job,
            record_ids[category],
            category,
            method,
            metrics,
            history,
            part_interim,
            selected,
            timings | own | {"total": time.perf_counter() - started},
            execution,
            fingerprint,
            n_train,
            test,
            data_provenance,
            shared,
        )
        parts.append((record, pack_predictions(scores, test.labels, maps, test.masks, test.paths, test.defect_types)))
        del test, scores, maps
    memory = provenance.peak_memory(str(getattr(method, "device", None) or "cpu"))  # the job's peak, in every record
    for record, _ in parts:
        record["memory"] = memory

    summary = {
        "job_id": job.job_id,
        "protocol": UNIFIED,
        "categories": list(job.categories),
        "metrics": {
            name: {"value": float(np.nanmean(values)) if not np.isnan(values).all() else None}
            for name, values in ((n, np.asarray(v, dtype=float)) for n, v in means.items())
        },
    }
    checkpoint = _checkpoint_bytes(method) if job.save_checkpoint and not job.checkpoint else None
    return JobResult(summary, {}, checkpoint, parts)


# The official selection averages I-AUROC, P-AUROC and its per-image PRO (the harness's pro_rd4ad);
# a job without pro_rd4ad uses the MVTec AU-PRO in its place.
SELECTION_METRICS = (("image_auroc",), ("pixel_auroc",), ("pro_rd4ad", "au_pro"))


def selected_on_test(interim: dict[int, dict], last_epoch: int, final: dict, every: int) -> dict | None:
    """The epoch the official RD++ script would report: the best mean of I-AUROC, P-AUROC and PRO
    (those the job computes, each rounded to 4 decimals as it does) over the test-set evaluations
    (interim ones and the last epoch's); the earliest such epoch on ties, as its strict `>` does. None
    when the job computes none of the three.

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
    best_epoch, best = min(evaluations), -math.inf
    for epoch in sorted(evaluations):
        # the official script rounds each metric to 4 decimals before averaging: closer epochs tie
        score = sum(round(evaluations[epoch][m], 4) for m in used) / len(used)
        if score > best:
            best_epoch, best = epoch, score
    if best_epoch is None:  # no epoch has a finite score
        return None
    cadence = (
        "after every epoch"
        if every == 1
        else f"every {every} epochs and after the last (the official script evaluates after every epoch)"
    )
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
    """The trained model as the bytes of its checkpoint file (Method.save_checkpoint), so the client (not a
    remote worker) writes it."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "checkpoint"
        method.save_checkpoint(path)
        return path.read_bytes()


def store_result(store: RunStore, result: JobResult) -> None:
    if result.parts:
        store.write_results(
            result.record["job_id"],
            [(record["job_id"], record, predictions) for record, predictions in result.parts],
            result.checkpoint,
        )
        return
    store.write_result(result.record["job_id"], result.record, result.predictions, result.checkpoint)


# the steps of a job (_compute, _compute_unified), by the function its traceback enters next from there: what the
# job was doing when it failed
_STEPS = {
    "_start": "building the model",
    "load": "loading the data",
    "_train": "training",
    "predict": "predicting",
    "evaluate": "computing the metrics",
}


def _out_of_memory(error: BaseException) -> bool:
    text = str(error)
    return (
        isinstance(error, MemoryError)
        or type(error).__name__ == "OutOfMemoryError"
        or (isinstance(error, RuntimeError) and ("can't allocate memory" in text or "out of memory" in text))
    )


def failure_message(error: BaseException, job: Job) -> str:
    """`Type: message`; for running out of memory (often a bare "MemoryError"), also which memory, in which
    step, at which sizes, and what to lower."""
    message = f"{type(error).__name__}: {error}"
    if not _out_of_memory(error):
        return message
    frames = [frame.name for frame in traceback.extract_tb(error.__traceback__)]
    # the job path's own frame (_compute or _compute_unified; the numerics wrapper sits above it),
    # then the step it called
    path = [i for i, name in enumerate(frames[:-1]) if name in ("_compute", "_compute_unified")]
    step = _STEPS.get(frames[path[-1] + 1]) if path else None
    memory = "GPU memory" if "CUDA" in str(error) or type(error).__module__.startswith("torch.cuda") else "memory (RAM)"
    s = job.settings
    lower = {
        "training": "--batch-size or --image-size",
        "predicting": "the setting predict_batch_size (a sweep file's [settings]) or --image-size",
    }.get(step or "", "--image-size")
    detail = str(error).strip().splitlines()[0][:200] if str(error).strip() else ""
    return (
        f"{type(error).__name__}: out of {memory}{f' while {step}' if step else ''} at image_size "
        f"{s.get('image_size')}, batch_size {s.get('batch_size')}, predict_batch_size {s.get('predict_batch_size')}; "
        f"lower {lower}, or run fewer jobs at once" + (f" ({detail})" if detail else "")
    )


def execute_job(
    job: Job,
    *,
    log_path: str | os.PathLike | None = None,
    echo: bool = False,
    capture: bool = True,
    execution: dict | None = None,
    ready: Callable[[], None] | None = None,
    sink: Callable[[str], None] | None = None,
) -> JobOutcome:
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
        joblog.line(
            f"job {job.job_id}: {job.dataset}/{job.category}, method {job.method}, profile {job.profile}, "
            f"seed {job.seed}; host {platform.node()}, pid {os.getpid()}"
        )
        joblog.line(f"settings: {job.settings}")
        try:
            result = compute_job(job, log=joblog.line, execution=execution, ready=ready)
        except Exception as error:
            message = failure_message(error, job)
            trace = traceback.format_exc()
            joblog.line(f"FAILED after {time.perf_counter() - started:.1f} s: {message}")
            joblog.write(trace)
            return JobOutcome(
                job.job_id,
                "failed",
                message=message,
                traceback=trace,
                seconds=time.perf_counter() - started,
                log=joblog.text(),
            )
        joblog.line(f"done in {time.perf_counter() - started:.1f} s")
        return JobOutcome(job.job_id, "ok", result=result, seconds=time.perf_counter() - started, log=joblog.text())
