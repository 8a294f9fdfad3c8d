"""`bench phases`: where a method's training step and `predict` spend their time, phase by phase.

The phases are the method's own (Method.phase_timings); each keeps its best of `steps` repetitions
after `warmup` untimed ones. The sum is close to, not exactly, one real step.
"""

from __future__ import annotations

from typing import Any

from harness import methods
from harness.bench.model_speed import random_images
from harness.errors import HarnessError


def bench_phases(settings: Any, *, steps: int, warmup: int = 1, method: str = "rd") -> dict:
    """Best seconds per phase of a training step (settings.batch_size images) and of predict on as many."""
    method_class = methods.get(method)
    model = method_class(settings)
    images = random_images(settings.batch_size, settings.image_size)
    try:
        return model.phase_timings(images, steps=steps, warmup=warmup)
    except NotImplementedError:
        raise HarnessError(f"method '{method}' does not time its phases (Method.phase_timings)") from None


def format_phases(setup: dict, result: dict) -> str:
    n = result["images"]
    lines = [
        f"phases: {setup['backbone']} {setup['image_size']} px, batch {n}, {setup['device']} {result['precision']}, "
        f"{result['memory_format']}, {setup['torch_threads']} thread(s); best of {result['steps']} per phase"
    ]
    for title, seconds in (("training step (teacher on the fly)", result["train_s"]), ("predict", result["infer_s"])):
        total = sum(seconds.values())
        lines.append(f"  {title}: {total * 1000:.1f} ms per batch, {n / total:.2f} img/s")
        for phase, s in seconds.items():
            lines.append(f"    {phase:<24} {s * 1000:9.1f} ms  {100 * s / total:5.1f} %")
    return "\n".join(lines)
