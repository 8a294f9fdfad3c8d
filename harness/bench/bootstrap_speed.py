"""Speed of the paired image bootstrap (`python -m harness bench metrics`): 1,000 paired resamples of
P-AUROC and AU-PRO for two runs' maps of one synthetic category, from the per-image tables of
harness.stats.bootstrap, with one worker thread and with two.

Target: <= 60 s on 2 CPU cores, peak memory <= 2 GB beyond the maps (traced numpy allocations).
"""

from __future__ import annotations

import time
import tracemalloc
from concurrent.futures import ThreadPoolExecutor

import numpy as np

TARGET_S = 60.0
TARGET_BYTES = 2 * 1024**3
RESAMPLES = 1000


def paired_bootstrap_seconds(
    maps_a: np.ndarray, maps_b: np.ndarray, masks: np.ndarray, resamples: int, threads: int
) -> tuple[float, int, np.ndarray]:
    """(seconds, peak traced bytes, (resamples, 2) differences A - B of P-AUROC and AU-PRO)."""
    from harness.stats.bootstrap import PixelTable, stratified_multiplicities

    labels = np.asarray(masks.reshape(len(masks), -1).any(axis=1))
    tracemalloc.start()
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        tables = list(pool.map(lambda maps: PixelTable(maps, masks), [maps_a, maps_b]))
        draws = stratified_multiplicities(labels, resamples, seed=0)

        def chunk(rows: np.ndarray) -> np.ndarray:
            return np.array(
                [
                    [tables[0].pixel_auroc(w) - tables[1].pixel_auroc(w), tables[0].au_pro(w) - tables[1].au_pro(w)]
                    for w in rows
                ]
            )

        differences = np.concatenate(list(pool.map(chunk, np.array_split(draws, threads))))
    seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return seconds, peak, differences


def bench_bootstrap(n_images: int = 150, size: int = 256, resamples: int = RESAMPLES) -> dict:
    from harness.bench.metric_speed import synthetic_test_set

    maps_a, masks = synthetic_test_set(n_images, size, seed=0)
    rng = np.random.default_rng(1)
    maps_b = (maps_a + rng.standard_normal(maps_a.shape).astype(np.float32)).astype(np.float32)  # a weaker run
    found = {}
    differences = np.empty((0, 2))
    for threads in (1, 2):
        seconds, peak, differences = paired_bootstrap_seconds(maps_a, maps_b, masks, resamples, threads)
        found[threads] = {"seconds": seconds, "peak_bytes": peak}
    low, high = np.quantile(differences, [0.025, 0.975], axis=0)
    return {
        "n_images": n_images,
        "size": size,
        "resamples": resamples,
        "maps_bytes": int(maps_a.nbytes + maps_b.nbytes + masks.nbytes),
        "threads": found,
        "difference_interval": {
            "pixel_auroc": [float(low[0]), float(high[0])],
            "au_pro": [float(low[1]), float(high[1])],
        },
        "target_s": TARGET_S,
        "target_bytes": TARGET_BYTES,
    }


def format_bench_bootstrap(result: dict) -> str:
    lines = [
        f"paired image bootstrap: {result['resamples']} resamples of P-AUROC and AU-PRO, two runs of "
        f"{result['n_images']} maps of {result['size']}x{result['size']} (tables of both runs included)"
    ]
    for threads, found in result["threads"].items():
        lines.append(
            f"  {threads} thread{'s' if threads > 1 else ''}: {found['seconds']:.1f} s, peak "
            f"{found['peak_bytes'] / 1024**2:.0f} MiB beyond the maps"
        )
    intervals = ", ".join(f"{k} [{a:+.4f}, {b:+.4f}]" for k, (a, b) in result["difference_interval"].items())
    lines.append(f"  95% intervals of the differences: {intervals}")
    # a measurement of this machine now, shown beside the design budget, never a verdict
    lines.append(f"  (design budget {result['target_s']:g} s on 2 cores, {result['target_bytes'] / 1024**3:g} GB)")
    return "\n".join(lines)
