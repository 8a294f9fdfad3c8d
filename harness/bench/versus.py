"""`bench official`: the project's training step and predict beside the official code's, on this machine.

Each round calls every contender once, in turn (official, project, official, ...), so a load that
comes and goes hits all of them alike; the best round of each is kept. The official side is
harness.methods.rd_official (the procedure of the official main.py and test.py); a second, stricter
official side runs its teacher frozen, without layer4, to show what is left once that is removed.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

import numpy as np

from harness.bench.model_speed import random_images
from harness.methods.rd import RDSettings, ReverseDistillation
from harness.methods.rd_official import OfficialRD


def best_of_interleaved(runs: dict[str, Callable[[], object]], rounds: int, warmup: int = 1) -> dict[str, float]:
    """Best wall-clock seconds of each callable over `rounds` rounds, each round calling all of them in turn."""
    for _ in range(warmup):
        for run in runs.values():
            run()
    best = {name: float("inf") for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def bench_versus(settings: RDSettings, *, rounds: int, warmup: int = 1) -> dict:
    """Training images/s (batch_size images a step) and inference images/s (batch_size images; the official
    loop takes them one by one), official and project, with the ratios."""
    size, batch = settings.image_size, settings.batch_size
    images = random_images(batch, size)
    index = np.arange(batch)
    betas = (float(settings.betas[0]), float(settings.betas[1]))
    official, frozen = (
        OfficialRD(settings.backbone, lr=settings.lr, betas=betas, sigma=settings.sigma, seed=settings.seed),
        OfficialRD(
            settings.backbone,
            frozen_teacher=True,
            lr=settings.lr,
            betas=betas,
            sigma=settings.sigma,
            seed=settings.seed,
        ),
    )
    on_the_fly = ReverseDistillation(dataclasses.replace(settings, cache_teacher="off"))
    cached = ReverseDistillation(dataclasses.replace(settings, cache_teacher="on"))
    with on_the_fly.trainer(images) as plain, cached.trainer(images) as with_cache:
        train = best_of_interleaved(
            {
                "official": lambda: official.train_step(images),
                "official_frozen_teacher": lambda: frozen.train_step(images),
                "project_teacher_on_the_fly": lambda: plain.step(index),
                "project_cached_teacher": lambda: with_cache.step(index),
            },
            rounds,
            warmup,
        )
    infer = best_of_interleaved(
        {
            "official": lambda: official.predict(images),
            "official_frozen_teacher": lambda: frozen.predict(images),
            "project": lambda: cached.predict(images),
        },
        rounds,
        warmup,
    )

    def rates(best: dict[str, float]) -> dict:
        per_s = {name: batch / seconds for name, seconds in best.items()}
        return {
            "images_per_s": per_s,
            "ratio": {name: rate / per_s["official"] for name, rate in per_s.items() if name.startswith("project")},
            "ratio_vs_frozen": {
                name: rate / per_s["official_frozen_teacher"]
                for name, rate in per_s.items()
                if name.startswith("project")
            },
        }

    return {
        "rounds": rounds,
        "warmup_rounds": warmup,
        "images": batch,
        "predict_batch_size": settings.predict_batch_size,
        "precision": cached.precision,
        "train": rates(train),
        "infer": rates(infer),
    }


def format_versus(setup: dict, result: dict) -> str:
    head = (
        f"side by side with the official code: {setup['backbone']} {setup['image_size']} px, batch "
        f"{setup['batch_size']}, {setup['device']} {result['precision']}, {setup['torch_threads']} thread(s); best of "
        f"{result['rounds']} interleaved rounds"
    )
    rows = [("", "official", "project", "ratio", "vs frozen teacher")]
    for section, name, label in (
        ("train", "project_teacher_on_the_fly", "train step, teacher on the fly"),
        ("train", "project_cached_teacher", "train step, cached teacher features"),
        ("infer", "project", "inference (map + blur)"),
    ):
        r = result[section]
        rows.append(
            (
                label,
                f"{r['images_per_s']['official']:.2f} img/s",
                f"{r['images_per_s'][name]:.2f} img/s",
                f"x{r['ratio'][name]:.2f}",
                f"x{r['ratio_vs_frozen'][name]:.2f}",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    lines = [head] + [
        f"  {a:<{widths[0]}}  {b:>{widths[1]}}  {c:>{widths[2]}}  {d:>{widths[3]}}  {e:>{widths[4]}}"
        for a, b, c, d, e in rows
    ]
    lines.append(
        "  official: main.py's step (teacher runs layer4, gets gradients) and test.py's loop (batch 1, scipy blur)"
    )
    lines.append("  frozen teacher: the same official code with the teacher cut after layer3 and run under no_grad")
    return "\n".join(lines)
