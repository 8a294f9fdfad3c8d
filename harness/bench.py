"""Benchmarks the CLI runs (`python -m harness bench`): metric times, data decoding, sweep estimates.

The metrics target: for 150 maps of 256x256, image AUROC + pixel AUROC + AU-PRO together
take at most 2x one np.argsort of the same float32 pixel scores, and pro_rd4ad at most 1 s.
Training and inference throughput are in harness.bench_model; the command in harness.bench_command.
"""

from __future__ import annotations

import os
import time
import warnings
from typing import Callable

import numpy as np
from scipy import ndimage

from harness.errors import HarnessError

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
    argsort_s, metrics_s, rd4ad_s = (min(column) for column in zip(*timings))
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
        "passed": ratio <= TARGET_RATIO and rd4ad_s <= TARGET_RD4AD_S,
        "values": values,
    }


def format_bench_metrics(result: dict) -> str:
    """A small plain-text table of a bench_metrics() result."""
    rows = [
        ("np.argsort of all pixels", f"{result['argsort_s']:.3f} s", ""),
        (" + ".join(result["metrics"]), f"{result['metrics_s']:.3f} s",
         f"ratio {result['ratio']:.2f} (target <= {result['ratio_target']:g})"),
        ("pro_rd4ad", f"{result['pro_rd4ad_s']:.3f} s", f"target <= {result['pro_rd4ad_target_s']:g} s"),
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
    lines.append(f"  {'PASS' if result['passed'] else 'FAIL'}")
    return "\n".join(lines)


# ---- data: decode + resize throughput -------------------------------------------------------------

def data_source(dataset: str = "synthetic", root: str | None = None, category: str | None = None) -> dict:
    """What `bench_data` reads, resolved (and checked) before anything is measured."""
    from harness import datasets
    from harness.datasets.files import FileAdapter

    adapter = datasets.create(dataset, root)
    category = category or adapter.categories[0]
    adapter.check_category(category)
    source: dict = {"dataset": dataset, "root": root, "category": category, "paths": None}
    if isinstance(adapter, FileAdapter):
        listing = adapter.checked_listing(category)
        source["paths"] = [item.path for _, items, _ in listing.splits() for item in items]
    return source


def bench_data(source: dict, image_size: int) -> dict:
    """Images/s of decoding and resizing one category's images, in threads as the adapters load them.

    Image-file data sets: every image of the category (train and test), read from the files, the
    array cache bypassed; one image is decoded first as warm-up. Array data sets (CIFAR, MNIST,
    BraTS): the adapter's whole load of the category, without the array cache.
    """
    from harness import datasets
    from harness.datasets.imageio import image_size_of, load_rgb, parallel_map

    paths = source["paths"]
    result = {"dataset": source["dataset"], "category": source["category"], "image_size": image_size}
    if paths is not None:
        load_rgb(paths[0], image_size)
        start = time.perf_counter()
        parallel_map(lambda path: load_rgb(path, image_size), paths)
        seconds = time.perf_counter() - start
        width, height = image_size_of(paths[0])
        result |= {"images": len(paths), "source_size": f"{width}x{height}", "what": "decode + resize of image files"}
    else:
        adapter_class = datasets.get(source["dataset"])
        options = {"cache": False} if "cache" in adapter_class.option_defaults else {}
        adapter = datasets.create(source["dataset"], source["root"], **options)
        start = time.perf_counter()
        data = adapter.load(source["category"], image_size)
        seconds = time.perf_counter() - start
        n = len(data.train) + len(data.test) + (len(data.valid) if data.valid is not None else 0)
        result |= {"images": n, "source_size": None, "what": "the adapter's load of the category"}
    threads = min(8, os.cpu_count() or 1)
    return result | {"seconds": seconds, "images_per_s": result["images"] / seconds, "threads": threads}


def format_bench_data(result: dict) -> str:
    source = f" from {result['source_size']}" if result["source_size"] else ""
    return (f"data benchmark: {result['dataset']}/{result['category']}, {result['what']}{source} to "
            f"{result['image_size']} px, {result['threads']} thread(s)\n"
            f"  {result['images']} images in {result['seconds']:.3f} s: {result['images_per_s']:.1f} img/s")


# ---- sweep estimate -------------------------------------------------------------------------------

def split_counts(dataset: str, root: str | None = None) -> tuple[dict[str, tuple[int, int]], str]:
    """(training, test) images per category: counted under `root` when given, else the adapter's table."""
    from harness import datasets
    from harness.datasets.files import FileAdapter

    adapter_class = datasets.get(dataset)
    if root is not None:
        adapter = datasets.create(dataset, root)
        if isinstance(adapter, FileAdapter):
            counts = {}
            for category in adapter.categories:
                listing = adapter.checked_listing(category)
                counts[category] = (len(listing.train), len(listing.test))
            return counts, f"counted under {root}"
    known = getattr(adapter_class, "split_counts", None)
    if not known:
        raise HarnessError(f"no image counts known for data set '{dataset}'; pass --root to count its files")
    return dict(known), "published counts"


def estimate_sweep(counts: dict[str, tuple[int, int]], *, epochs: int, seeds: int, cache_used: bool,
                   train: dict | None, infer: dict | None, data: dict | None) -> dict:
    """Seconds a sweep takes at the measured rates: per category, training (epochs x images at the
    cached or on-the-fly rate, plus one teacher pass to fill the cache), inference and, when measured
    on the same data set, decoding. Parts without a measured rate are left out and named."""
    train_run = (train or {}).get("cached" if cache_used else "uncached")
    per_category, missing = {}, []
    if train_run is None:
        missing.append("training")
    if infer is None:
        missing.append("inference")
    if data is None:
        missing.append("data loading")
    for category, (n_train, n_test) in counts.items():
        parts = {}
        if train_run:
            parts["train_s"] = epochs * n_train / train_run["images_per_s"]
            if cache_used:
                parts["cache_s"] = n_train / train_run["teacher_images_per_s"]
        if infer:
            parts["infer_s"] = n_test / infer["images_per_s"]
        if data:
            parts["load_s"] = (n_train + n_test) / data["images_per_s"]
        per_category[category] = {k: v * seeds for k, v in parts.items()} | {"total_s": seeds * sum(parts.values())}
    totals = {key: sum(c.get(key, 0.0) for c in per_category.values()) for key in ("train_s", "cache_s", "infer_s", "load_s", "total_s")}
    return {"epochs": epochs, "seeds": seeds, "teacher_cache": cache_used, "categories": per_category,
            "n_train": sum(n for n, _ in counts.values()), "n_test": sum(n for _, n in counts.values()),
            "totals": totals, "not_included": missing}


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def format_estimate(estimate: dict, header: str) -> str:
    t = estimate["totals"]
    rows = [("training", t["train_s"], f"{estimate['n_train']} images x {estimate['epochs']} epochs"
             + (", cached teacher features" if estimate["teacher_cache"] else ", teacher on the fly")),
            ("teacher cache", t["cache_s"], f"one teacher pass over {estimate['n_train']} images"),
            ("inference", t["infer_s"], f"{estimate['n_test']} test images, map + blur"),
            ("data loading", t["load_s"], "decode + resize of every image")]
    lines = [header]
    lines += [f"  {name:<14} {_duration(s):>9}  {what}" for name, s, what in rows if s > 0]
    largest = max(estimate["categories"].items(), key=lambda kv: kv[1]["total_s"])
    lines.append(f"  {'total':<14} {_duration(t['total_s']):>9}  (longest category: {largest[0]}, "
                 f"{_duration(largest[1]['total_s'])}; metrics not included)")
    if estimate["not_included"]:
        lines.append(f"  not measured, not included: {', '.join(estimate['not_included'])}")
    return "\n".join(lines)
