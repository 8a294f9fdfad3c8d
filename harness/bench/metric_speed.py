"""Metric times against one np.argsort of the same pixel scores (`python -m harness bench metrics`).

The design budget: for 150 maps of 256x256, image AUROC + pixel AUROC + AU-PRO together take at most
2x one np.argsort of the same float32 pixel scores, and pro_rd4ad at most 1 s. The bench reports the
figures beside the budget and passes no verdict: a timing is a measurement of this machine at this moment.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable

import numpy as np
from scipy import ndimage

BENCH_METRICS = ("image_auroc", "pixel_auroc", "au_pro")
TARGET_RATIO = 2.0
TARGET_RD4AD_S = 1.0


def synthetic_test_set(n_images: int = 150, size: int = 256, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(maps float32 (N, H, W), masks bool (N, H, W)) that look like a real test set.

    About 2/3 of the images carry 1 to 3 blob-shaped defects (ellipses with ragged, noisy edges,
    from a few pixels to ~8% of the image); maps are smooth background noise plus a blurred,
    attenuated copy of the mask plus pixel noise, so the defects are found but not perfectly.
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    masks = np.zeros((n_images, size, size), dtype=bool)
    for i in np.flatnonzero(rng.random(n_images) < 2 / 3):
        ragged = ndimage.gaussian_filter(rng.standard_normal((size, size)).astype(np.float32), size / 32)
        ragged *= 0.25 / max(float(np.abs(ragged).max()), 1e-6)
        for _ in range(rng.integers(1, 4)):
            cy, cx = rng.uniform(0.15, 0.85, 2)
            ry, rx = rng.uniform(0.02, 0.16, 2)
            angle = rng.uniform(0, np.pi)
            dy, dx = yy - cy, xx - cx
            u = (dy * np.cos(angle) + dx * np.sin(angle)) / ry
            v = (dx * np.cos(angle) - dy * np.sin(angle)) / rx
            masks[i] |= u * u + v * v + ragged < 1.0
    background = ndimage.gaussian_filter(rng.standard_normal(masks.shape).astype(np.float32), (0, size / 64, size / 64))
    signal = ndimage.gaussian_filter(masks.astype(np.float32), (0, size / 128, size / 128))
    strength = rng.uniform(0.5, 3.0, (n_images, 1, 1)).astype(np.float32)
    maps = background * 4.0 + signal * strength + 0.3 * rng.standard_normal(masks.shape).astype(np.float32)
    return maps.astype(np.float32, copy=False), masks


def _seconds(run: Callable[[], object]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def bench_metrics(n_images: int = 150, size: int = 256, seed: int = 0, repeats: int = 3) -> dict:
    """Time the metrics against one np.argsort of the same pixels (best of `repeats` each).

    The argsort and the metrics alternate, so that on a shared machine both see the same load.
    """
    from harness.metrics import evaluate, pro_rd4ad

    maps, masks = synthetic_test_set(n_images, size, seed)
    scores = maps.reshape(n_images, -1).max(axis=1)
    labels = masks.reshape(n_images, -1).any(axis=1)
    flat = maps.reshape(-1)
    values: dict[str, float] = {}

    def run_metrics():
        values.update({k: v.value for k, v in evaluate(scores, labels, maps, masks, names=BENCH_METRICS).items()})

    def run_rd4ad():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # skipped images are reported by the metric itself
            values["pro_rd4ad"] = pro_rd4ad(maps, masks, labels)

    timings = [(_seconds(lambda: np.argsort(flat)), _seconds(run_metrics), _seconds(run_rd4ad)) for _ in range(repeats)]
    argsort_s, metrics_s, rd4ad_s = (min(column) for column in zip(*timings, strict=False))
    ratio = metrics_s / argsort_s
    return {
        "n_images": n_images,
        "size": size,
        "pixels": int(maps.size),
        "anomalous_images": int(labels.sum()),
        "anomalous_pixel_fraction": float(masks.mean()),
        "argsort_s": argsort_s,
        "metrics": list(BENCH_METRICS),
        "metrics_s": metrics_s,
        "ratio": ratio,
        "ratio_target": TARGET_RATIO,
        "pro_rd4ad_s": rd4ad_s,
        "pro_rd4ad_target_s": TARGET_RD4AD_S,
        "values": values,
    }


def format_bench_metrics(result: dict) -> str:
    """A small plain-text table of a bench_metrics() result."""
    rows = [
        ("np.argsort of all pixels", f"{result['argsort_s']:.3f} s", ""),
        (
            " + ".join(result["metrics"]),
            f"{result['metrics_s']:.3f} s",
            f"ratio {result['ratio']:.2f} (design budget {result['ratio_target']:g})",
        ),
        ("pro_rd4ad", f"{result['pro_rd4ad_s']:.3f} s", f"(design budget {result['pro_rd4ad_target_s']:g} s)"),
    ]
    width = max(len(r[0]) for r in rows)
    head = (
        f"metrics benchmark: {result['n_images']} maps of {result['size']}x{result['size']} "
        f"({result['pixels']:,} pixels, {result['anomalous_images']} anomalous images, "
        f"{100 * result['anomalous_pixel_fraction']:.1f}% anomalous pixels)"
    )
    lines = [head] + [f"  {a:<{width}}  {b:>9}  {c}".rstrip() for a, b, c in rows]
    values = ", ".join(f"{k} {v:.4f}" for k, v in result["values"].items())
    lines.append(f"  values: {values}")
    return "\n".join(lines)
