"""Where RD's training step and `predict` spend their time, phase by phase (`bench phases`).

The phases are those of Trainer.step (teacher on the fly) and predict, run one after another with a
clock between them (a device synchronisation first on CUDA); each phase keeps its best of `steps`
repetitions, after `warmup` untimed ones. The sum is close to, not exactly, one real step.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import numpy as np
import torch

from harness.methods.rd_maps import anomaly_map, gaussian_blur, image_scores, rd_loss

if TYPE_CHECKING:
    from harness.methods.rd import ReverseDistillation


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


TRAIN_PHASES = (
    "input to tensor",
    "teacher (no_grad)",
    "bottleneck forward",
    "decoder forward",
    "loss",
    "backward",
    "Adam step",
)
INFER_PHASES = (
    "input to tensor",
    "teacher",
    "bottleneck",
    "decoder",
    "anomaly map",
    "Gaussian blur",
    "scores + copy to host",
)


class _Clock:
    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.seconds: dict[str, float] = {}

    def start(self) -> None:
        _sync(self.device)
        self.last = time.perf_counter()

    def lap(self, phase: str) -> None:
        _sync(self.device)
        now = time.perf_counter()
        self.seconds[phase] = min(self.seconds.get(phase, float("inf")), now - self.last)
        self.last = now


def phase_timings(model: ReverseDistillation, images: np.ndarray, *, steps: int, warmup: int = 1) -> dict:
    """Best seconds per phase of a training step on `images` (one batch) and of predict on as many."""
    from harness.methods.rd import Trainer  # here: rd imports this module

    settings = model.settings
    size = (settings.image_size, settings.image_size)
    train, infer = _Clock(model.device), _Clock(model.device)
    with model.trainer(images, cache_teacher="off") as made, model._determinism():
        assert isinstance(made, Trainer)  # RD's own trainer: one optimizer
        trainer = made
        for i in range(warmup + steps):
            clock = train if i >= warmup else _Clock(model.device)
            clock.start()
            x = model._to_tensor(images)
            clock.lap("input to tensor")
            teacher = model._teacher_features(x)
            clock.lap("teacher (no_grad)")
            with model._autocast():
                code = model._run_bottleneck(teacher)
                clock.lap("bottleneck forward")
                student = model._run_decoder(code)
                clock.lap("decoder forward")
            loss = rd_loss(teacher, student)
            clock.lap("loss")
            trainer.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            clock.lap("backward")
            trainer.optimizer.step()
            loss.item()
            clock.lap("Adam step")
    with torch.inference_mode(), model._determinism(batch_invariant=True):
        for i in range(warmup + steps):
            clock = infer if i >= warmup else _Clock(model.device)
            clock.start()
            x = model._to_tensor(images)
            clock.lap("input to tensor")
            with model._autocast():  # the networks only, as in predict: maps and blur stay float32
                teacher = model._run_teacher(x)
                clock.lap("teacher")
                code = model._run_bottleneck(teacher)
                clock.lap("bottleneck")
                student = model._run_decoder(code)
                clock.lap("decoder")
            maps = anomaly_map(teacher, student, size, settings.map_mode)
            clock.lap("anomaly map")
            smooth = gaussian_blur(maps, settings.sigma)
            clock.lap("Gaussian blur")
            image_scores(smooth).cpu().numpy().astype(np.float32), smooth.cpu().numpy().astype(np.float32)
            clock.lap("scores + copy to host")
    return {
        "images": len(images),
        "steps": steps,
        "warmup_steps": warmup,
        "precision": model.precision,
        "memory_format": "channels_last" if model._memory_format == torch.channels_last else "contiguous",
        "train_s": train.seconds,
        "infer_s": infer.seconds,
    }
