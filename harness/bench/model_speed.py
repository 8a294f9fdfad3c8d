"""Training and inference throughput of Reverse Distillation on random images (no data set needed).

Both run the method's own code: training steps through `ReverseDistillation.trainer` (what `fit`
runs), inference through `predict` (teacher, student, anomaly map, Gaussian blur, copy to host).
Warm-up steps are run first and not timed. Each phase gets a fresh model from the same seed and
its own peak memory: resident set size (the kernel's high-water mark, reset per phase on Linux)
and, on CUDA, the maximum allocated GPU memory.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch

from harness import methods
from harness.errors import HarnessError
from harness.methods.rd import RDSettings, ReverseDistillation, resolve_device
from harness.methods.rd_cpu import cpu_can_compile, cpu_precision
from harness.sweep.provenance import reset_rss_peak, rss_peak_mib


def random_images(n: int, size: int, seed: int = 0) -> np.ndarray:
    """(n, size, size, 3) uint8 noise: the speed of RD does not depend on the pixels."""
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


@contextmanager
def peak_memory(device: torch.device) -> Iterator[dict]:
    """Peak memory of the block, filled into the yielded dict on exit."""
    memory: dict = {}
    per_phase = reset_rss_peak()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    yield memory
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        memory["cuda_max_allocated_mib"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    memory["peak_rss_mib"] = rss_peak_mib()
    memory["rss_scope"] = "phase" if per_phase else "process"  # process: the peak since the process started


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench_train(
    settings: RDSettings, *, steps: int, warmup: int = 1, cache_teacher: str = "off", method: str = "rd"
) -> dict:
    """Training images/s of `steps` timed steps of settings.batch_size random images, after `warmup` steps.

    With cache_teacher="on" the teacher features are computed once before the steps (timed apart,
    as `cache_build_s`, from which `teacher_images_per_s`); with "off" every step runs the teacher.
    `method` is rd or rdpp (whose steps also run the teacher on the noised images, cached or not).
    """
    model = _model(method, settings)
    size, batch = settings.image_size, settings.batch_size
    images = random_images(batch * (warmup + steps), size)
    batches = [np.arange(i, i + batch) for i in range(0, len(images), batch)]
    losses = []
    with peak_memory(model.device) as memory, model.trainer(images, cache_teacher=cache_teacher) as trainer:
        for index in batches[:warmup]:
            losses.append(trainer.step(index))
        _sync(model.device)
        start = time.perf_counter()
        for index in batches[warmup:]:
            losses.append(trainer.step(index))
        _sync(model.device)
        seconds = time.perf_counter() - start
    result = {
        "cache_teacher": cache_teacher,
        "steps": steps,
        "warmup_steps": warmup,
        "images": steps * batch,
        "seconds": seconds,
        "step_s": seconds / steps,
        "images_per_s": steps * batch / seconds,
        "finite_losses": bool(np.all(np.isfinite(losses))),  # a non-finite loss skips backward: timing invalid
        **memory,
    }
    if trainer.cache is not None:
        result["cache_build_s"] = trainer.cache.seconds
        result["teacher_images_per_s"] = len(images) / trainer.cache.seconds
        result["cache_mib"] = round(trainer.cache.nbytes / 2**20, 1)
    return result


def _model(method: str, settings: RDSettings) -> ReverseDistillation:
    """The method's model; the benchmarks time Reverse Distillation and the methods built on it."""
    model = methods.get(method)(settings)
    if not isinstance(model, ReverseDistillation):
        raise HarnessError(
            f"method '{method}' is not built on Reverse Distillation; the model benchmarks cannot time it"
        )
    return model


def bench_infer(settings: RDSettings, *, steps: int, warmup: int = 1, method: str = "rd") -> dict:
    """Inference images/s of `predict` on `steps` batches of settings.predict_batch_size random images."""
    model = _model(method, settings)
    size, batch = settings.image_size, settings.predict_batch_size
    images = random_images(batch * (warmup + steps), size, seed=1)
    model.predict(images[: batch * warmup])
    with peak_memory(model.device) as memory:
        _sync(model.device)
        start = time.perf_counter()
        model.predict(images[batch * warmup :])
        seconds = time.perf_counter() - start
    return {
        "steps": steps,
        "warmup_steps": warmup,
        "images": steps * batch,
        "seconds": seconds,
        "images_per_s": steps * batch / seconds,
        **memory,
    }


def describe_setup(settings: RDSettings, method: str = "rd") -> dict:
    """The configuration the model figures are measured with, as the method resolves it."""
    device = resolve_device(settings.device)
    return {
        "method": method,
        "backbone": settings.backbone,
        "image_size": settings.image_size,
        "batch_size": settings.batch_size,
        "device": str(device),
        "precision": settings.precision if device.type == "cuda" else cpu_precision(settings.precision),
        "compiled": settings.compile and (device.type == "cuda" or cpu_can_compile(settings.deterministic)),
        "weights": settings.weights,
        "teacher_cache_dtype": settings.teacher_cache_dtype,
        "torch_threads": torch.get_num_threads(),
    }


def _memory(result: dict) -> str:
    text = f"{result['peak_rss_mib']:,.0f} MiB RSS" + (" (process)" if result.get("rss_scope") == "process" else "")
    if "cuda_max_allocated_mib" in result:
        text += f", {result['cuda_max_allocated_mib']:,.0f} MiB CUDA"
    return text


def format_model_table(setup: dict, train: dict | None, infer: dict | None) -> str:
    """Plain-text table of bench_train / bench_infer results."""
    head = (
        f"model benchmark: {setup.get('method', 'rd')} {setup['backbone']} {setup['image_size']} px, "
        f"batch {setup['batch_size']}, "
        f"{setup['device']} {setup['precision']}{', compiled' if setup['compiled'] else ''}, "
        f"{setup['torch_threads']} thread(s)"
    )
    rows = []
    if train:
        for key, label in (("uncached", "train, teacher on the fly"), ("cached", "train, cached teacher features")):
            if key in train:
                r = train[key]
                rows.append((label, f"{r['images_per_s']:.2f} img/s", f"{r['step_s']:.3f} s/step", _memory(r)))
        if "cached" in train:
            c = train["cached"]
            rows.append(
                (
                    "teacher (cache build)",
                    f"{c['teacher_images_per_s']:.2f} img/s",
                    f"{c['cache_build_s']:.3f} s",
                    f"{c['cache_mib']:,.1f} MiB cache",
                )
            )
        if "cache_speedup" in train:
            rows.append(("cache speed-up", f"x{train['cache_speedup']:.3f}", "", ""))
    if infer:
        rows.append(
            (
                "inference (map + blur)",
                f"{infer['images_per_s']:.2f} img/s",
                f"{infer['seconds'] / infer['steps']:.3f} s/batch",
                _memory(infer),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(3)] if rows else [0, 0, 0]
    lines = [head] + [f"  {a:<{widths[0]}}  {b:>{widths[1]}}  {c:>{widths[2]}}  {d}".rstrip() for a, b, c, d in rows]
    if train and not all(train[k]["finite_losses"] for k in ("uncached", "cached") if k in train):
        lines.append("  warning: a loss was not finite, so some steps skipped the backward pass")
    return "\n".join(lines)
