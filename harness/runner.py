"""Runs one job: load data, fit, predict, score, store. The only place where data, methods and metrics meet."""

from __future__ import annotations

import time
from typing import Callable

from harness import datasets, methods, provenance
from harness.config import Job
from harness.metrics import evaluate
from harness.store import RunStore, pack_predictions

SCORE_POOLING = "max of the anomaly map"


def run_job(job: Job, store: RunStore, *, log: Callable[[str], None] = print) -> dict:
    """Run `job` to completion and write its predictions and record; returns the record.

    Any exception propagates to the scheduler, which records the failure and goes on with other jobs.
    """
    timings: dict[str, float] = {}
    started = time.perf_counter()
    store.write_config(job.job_id, job.to_dict())

    clock = time.perf_counter()
    adapter = datasets.create(job.dataset, job.root, **job.data_options)
    data = adapter.load(job.category, int(job.settings["image_size"]))
    timings["load"] = time.perf_counter() - clock

    method_class = methods.get(job.method)
    method = method_class(method_class.Settings(**job.settings))
    clock = time.perf_counter()
    history = []
    if job.checkpoint:
        method.load_checkpoint(job.checkpoint)
    else:
        history = method.fit(data.train.images)
    timings["fit"] = time.perf_counter() - clock

    clock = time.perf_counter()
    scores, maps = method.predict(data.test.images)
    timings["predict"] = time.perf_counter() - clock

    clock = time.perf_counter()
    metrics = evaluate(scores, data.test.labels, maps, data.test.masks, names=job.metrics)
    timings["metrics"] = time.perf_counter() - clock
    timings["total"] = time.perf_counter() - started

    settings = method.settings
    device = getattr(method, "device", None)
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
        "method_info": method.describe(),
        "history": [{"epoch": e.epoch, "loss": e.loss, "seconds": round(e.seconds, 3)} for e in history],
        "timings": {name: round(seconds, 3) for name, seconds in timings.items()},
        "memory": provenance.peak_memory(),
        "provenance": provenance.software() | {"device": str(device) if device is not None else getattr(settings, "device", None),
                                                "device_name": provenance.device_name(str(device or "cpu"))},
    }
    predictions = pack_predictions(scores, data.test.labels, maps, data.test.masks, data.test.paths, data.test.defect_types)
    store.write_result(job.job_id, record, predictions)
    return record
