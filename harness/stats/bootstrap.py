"""Stratified image bootstrap of the pixel metrics, exact per resample (docs/metrics.md, "Intervals").

A resample draws the normal images and the anomalous images separately, with replacement, as many
of each as the test set has (a pixel is not an independent sample; the image is). A resample is a
vector w of image multiplicities; an image drawn twice is in the resampled test set twice.

Instead of sorting every pixel again per resample, `PixelTable` precomputes, from one global sort:

- P-AUROC: T[i, j] = 2 #(negatives of image j below positives of image i) + #(ties). The resampled
  Mann-Whitney count is the quadratic form w' T w, so AUROC(w) = w' T w / (2 Npos(w) Nneg(w)), in
  integers (one rounding, the same as harness.metrics).
- AU-PRO: the area under the PRO curve up to a threshold splits into pairs of images too. Each
  negative pixel of image j adds to the area its FPR step times the mean of the PRO just before and
  just after its score's run, so area(t) = [(w.p_t)(w.f_t) - w' Q_t w] / (Nneg(w) Nregions(w)) with
  f_t, p_t the per-image negatives and region-overlap sums above t and Q_t a per-pair matrix. The
  tables are kept at G checkpoints (run ends of the global sort); the resample's FPR limit falls
  in one checkpoint cell, whose few thousand pixels are walked exactly, run by run, with the
  resample's weights, and the area is closed at the limit as harness.metrics.pro does.

Images with multiplicity 0 still have their runs in the global sort, where they only repeat the
previous point of the curve (a step of zero width): the resampled curve is the exact curve of the
resampled test set, so the value equals harness.metrics on that set up to float summation order
(about 1e-15; tests check 1e-12). P-AP and P-F1max change only at runs that hold anomalous
pixels: per such run the table keeps (with curves=True) each image's normal pixels up to it, so a
resample's operating points are one matrix-vector product of integer counts (exact); the RD4AD PRO
is a mean of per-image values.
"""

from __future__ import annotations

import math
import sys
import warnings
from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from harness.metrics import DEFAULT_FPR_LIMIT
from harness.metrics.pixels import float32_order_key
from harness.metrics.pro import area_to_limit, label_regions
from harness.metrics.ranking import RankCounts, ap_from_counts, f1_max_from_counts
from harness.metrics.rd4ad import image_pro
from harness.metrics.validation import MetricWarning, UndefinedMetricError, check_maps_masks
from harness.stats.options import DEFAULT_RESAMPLES, DEFAULT_SEED

__all__ = ["DEFAULT_RESAMPLES", "DEFAULT_SEED", "PixelTable", "Rd4adTable", "stratified_multiplicities"]

CHECKPOINTS = 512  # AU-PRO cells; memory (G+1) n^2 float64 is capped below


def stratified_multiplicities(labels: np.ndarray, resamples: int, seed: int) -> np.ndarray:
    """(resamples, N) int64 multiplicities: normal and anomalous images drawn apart, with replacement.

    numpy's Generator (PCG64) with integers() is the same on every platform for the same seed.
    """
    labels = np.asarray(labels).astype(bool)
    rng = np.random.default_rng(seed)
    counts = np.zeros((resamples, len(labels)), dtype=np.int64)
    for group in (np.flatnonzero(~labels), np.flatnonzero(labels)):
        if len(group) == 0:
            continue
        drawn = rng.integers(0, len(group), size=(resamples, len(group)))
        rows = np.repeat(np.arange(resamples), len(group))
        np.add.at(counts, (rows, group[drawn.reshape(-1)]), 1)
    return counts


def expand(multiplicity: np.ndarray) -> np.ndarray:
    """Image indices of a resample, each repeated by its multiplicity (for direct recomputation)."""
    return np.repeat(np.arange(len(multiplicity)), multiplicity)


def _order_key(maps: np.ndarray) -> np.ndarray:
    flat = maps.reshape(-1)
    if maps.dtype == np.float32:
        return float32_order_key(flat.copy())
    return np.unique(flat, return_inverse=True)[1].astype(np.uint32).reshape(-1)


class PixelTable:
    """Per-image tables of one test set (maps, masks) from which a resample's P-AUROC, AU-PRO, P-AP
    and P-F1max are computed exactly without sorting pixels again."""

    def __init__(
        self, maps, masks, fpr_limit: float = DEFAULT_FPR_LIMIT, checkpoints: int = CHECKPOINTS, curves: bool = False
    ) -> None:
        """`curves`: also keep what P-AP and P-F1max need (8 bytes per anomalous pixel run and image)."""
        maps, masks = check_maps_masks(maps, masks)
        if maps.size >= 2**32:  # the sort packs a 32-bit pixel index beside the score's key
            raise ValueError(f"{maps.size} pixels: the image bootstrap handles fewer than 2^32 pixels per category")
        self.n_images = n = len(maps)
        self.fpr_limit = fpr_limit
        per_image = maps[0].size
        regions = label_regions(masks)
        region_image = np.zeros(len(regions.sizes), dtype=np.int64)
        for i in range(n):
            region_image[np.unique(regions.ids[i])] = i
        self.regions = np.bincount(region_image[1:], minlength=n).astype(np.int64)

        # One global descending sort: packed (order key, pixel index), ties ordered by index.
        packed = _order_key(maps).astype(np.uint64)
        packed <<= np.uint64(32)
        packed |= np.arange(maps.size, dtype=np.uint64)
        packed.sort()
        words = packed.view(np.uint32).reshape(-1, 2)[::-1]
        high, low = (1, 0) if sys.byteorder == "little" else (0, 1)
        key, index = words[:, high].copy(), words[:, low].astype(np.int64)
        del packed, words
        image = (index // per_image).astype(np.int32)  # int32 halves the memory of the per-pixel arrays
        flat_ids = regions.ids.reshape(-1)[index]
        positive = flat_ids != 0
        with np.errstate(divide="ignore"):
            inverse_size = np.where(positive, 1.0 / regions.sizes[flat_ids], 0.0)
        run_end = np.empty(len(key), dtype=bool)
        np.not_equal(key[1:], key[:-1], out=run_end[:-1])
        run_end[-1] = True
        run = np.zeros(len(key), dtype=np.int32)  # run id of every pixel
        np.cumsum(run_end[:-1], out=run[1:])
        self.neg = np.bincount(image[~positive], minlength=n).astype(np.int64)
        self.pos = np.bincount(image[positive], minlength=n).astype(np.int64)
        self._image, self._positive, self._inverse_size, self._run_end = image, positive, inverse_size, run_end

        # Checkpoints at run ends, about equally many pixels apart; memory of Q capped at ~256 MB.
        g = max(1, min(checkpoints, int(256e6 // (8 * max(n * n, 1))) - 1))
        ends = np.flatnonzero(run_end) + 1  # pixel counts after each run
        wanted = np.linspace(0, len(key), g + 1)[1:]
        bounds = np.unique(np.concatenate([[0], ends[np.minimum(np.searchsorted(ends, wanted), len(ends) - 1)]]))
        self.bounds = bounds  # pixels above each checkpoint
        g = len(bounds) - 1
        cell_of = np.repeat(np.arange(g, dtype=np.int32), np.diff(bounds))  # cell of every pixel

        # Per-image counts above each checkpoint: negatives f[c, j], region-overlap sums p[c, i].
        self.f = np.zeros((g + 1, n), dtype=np.int64)
        self.p = np.zeros((g + 1, n), dtype=np.float64)
        slot = (cell_of + 1) * n + image
        self.f.reshape(-1)[:] = np.bincount(slot[~positive], minlength=(g + 1) * n)
        self.p.reshape(-1)[:] = np.bincount(slot[positive], weights=inverse_size[positive], minlength=(g + 1) * n)
        del slot
        np.cumsum(self.f, axis=0, out=self.f)
        np.cumsum(self.p, axis=0, out=self.p)

        # The pairwise tables from the positives' side: for a positive q and an image j,
        # twice_above_j(q) = 2 #(negatives of j in earlier runs) + #(negatives of j in q's run).
        pos_index = np.flatnonzero(positive)
        n_pos = len(pos_index)
        pos_image, pos_u, pos_cell = image[pos_index], inverse_size[pos_index], cell_of[pos_index]
        n_runs = int(run[-1]) + 1
        run_pos_before = np.zeros(n_runs + 1, dtype=np.int64)  # positives in the runs before each run
        np.cumsum(np.bincount(run[pos_index], minlength=n_runs), out=run_pos_before[1:])
        self.twice_u = np.zeros((n, n), dtype=np.int64)  # [positive image i, negative image j]
        self.q = np.zeros((g + 1, n, n), dtype=np.float64)
        run_of_pixel = np.empty_like(run)  # in the maps' own layout: image j's pixels are one slice
        run_of_pixel[index] = run
        normal_pixel = ~masks.reshape(n, -1)
        # P-AP and P-F1max change only at runs holding positives: per such run, each image's negatives up to it
        pos_runs = run[pos_index]
        self._pos_run_end = np.ones(n_pos, dtype=bool)
        np.not_equal(pos_runs[1:], pos_runs[:-1], out=self._pos_run_end[:-1])
        self._pos_image = pos_image
        self.curves = curves
        self._fp_at_runs = np.zeros((int(self._pos_run_end.sum()), n) if curves else (0, n), dtype=np.float64)
        del run, index, pos_runs
        for j in range(n):
            runs_j = run_of_pixel[j * per_image : (j + 1) * per_image][normal_pixel[j]]
            if len(runs_j) == 0 or n_pos == 0:
                continue
            # a negative in run r is above every positive in later runs, tied with those in run r
            above = np.cumsum(np.bincount(run_pos_before[runs_j + 1], minlength=n_pos + 1))[:n_pos]
            at_or_above = np.cumsum(np.bincount(run_pos_before[runs_j], minlength=n_pos + 1))[:n_pos]
            twice_above = (above + at_or_above).astype(np.float64)
            below = np.bincount(pos_image, weights=twice_above, minlength=n).astype(np.int64)
            self.twice_u[:, j] = 2 * self.neg[j] * self.pos - below
            cell_sums = np.bincount(pos_cell * n + pos_image, weights=pos_u * twice_above / 2, minlength=g * n)
            self.q[1:, :, j] = np.cumsum(cell_sums.reshape(g, n), axis=0)
            if curves:
                self._fp_at_runs[:, j] = at_or_above[self._pos_run_end]

    # ---- per resample ----------------------------------------------------------------------

    def pixel_auroc(self, w: np.ndarray) -> float:
        w = np.asarray(w, dtype=np.int64)
        n_pos, n_neg = int(w @ self.pos), int(w @ self.neg)
        if n_pos == 0 or n_neg == 0:
            return math.nan
        return int(w @ self.twice_u @ w) / (2 * n_pos * n_neg)

    def au_pro(self, w: np.ndarray) -> float:
        w = np.asarray(w, dtype=np.int64)
        n_neg, n_regions = int(w @ self.neg), int(w @ self.regions)
        if n_neg == 0 or n_regions == 0:
            return math.nan
        limit = self.fpr_limit
        fpr_at = (self.f @ w) / n_neg
        c = int(np.searchsorted(fpr_at, limit, side="right")) - 1  # last checkpoint with FPR <= limit
        if c >= len(self.bounds) - 1:  # limit 1: the whole curve
            area = (float(w @ self.p[c]) * int(w @ self.f[c]) - float(w @ self.q[c] @ w)) / (n_neg * n_regions)
            return min(area / limit, 1.0)
        neg_c, pro_c = int(w @ self.f[c]), float(w @ self.p[c])
        base = (pro_c * neg_c - float(w @ self.q[c] @ w)) / (n_neg * n_regions)
        # The cell, exactly: the resample's curve at each run end, from the checkpoint on.
        lo, hi = self.bounds[c], self.bounds[c + 1]
        weight = w[self._image[lo:hi]]
        positive = self._positive[lo:hi]
        negatives = neg_c + np.cumsum(np.where(positive, 0, weight))
        overlap = pro_c + np.cumsum(weight * self._inverse_size[lo:hi])
        ends = self._run_end[lo:hi]
        fpr = np.concatenate([[neg_c / n_neg], negatives[ends] / n_neg])
        pro = np.concatenate([[pro_c / n_regions], overlap[ends] / n_regions])
        return min(base / limit + area_to_limit(np.minimum(fpr, 1.0), np.minimum(pro, 1.0), limit) / limit, 1.0)

    def _weighted_counts(self, w: np.ndarray) -> RankCounts:
        """The resample's operating points at the runs that hold positives (the only points where AP and F1
        can change; a run of zero weight repeats the point before it). Counts below 2^53: float products exact."""
        if not self.curves:
            raise ValueError("this PixelTable was built without curves=True (needed for P-AP and P-F1max)")
        w = np.asarray(w, dtype=np.int64)
        tp = np.cumsum(w[self._pos_image])[self._pos_run_end]
        fp = np.rint(self._fp_at_runs @ w.astype(np.float64)).astype(np.int64)
        if len(tp) == 0 or tp[-1] == 0:
            raise UndefinedMetricError("no anomalous pixel in the resample")
        return RankCounts(tp=tp, fp=fp, n_pos=int(tp[-1]), n_neg=int(w @ self.neg))

    def pixel_ap(self, w: np.ndarray) -> float:
        try:
            return ap_from_counts(self._weighted_counts(w))
        except UndefinedMetricError:
            return math.nan

    def pixel_f1_max(self, w: np.ndarray) -> float:
        try:
            return f1_max_from_counts(self._weighted_counts(w))
        except UndefinedMetricError:
            return math.nan


class Rd4adTable:
    """The RD4AD PRO is a mean of per-image values: a resample's value is their weighted mean."""

    def __init__(self, maps, masks, labels) -> None:
        maps, masks = check_maps_masks(maps, masks)
        maps = maps.astype(np.float64, copy=False)
        anomalous = np.asarray(labels).astype(bool)
        self.values = np.full(len(maps), np.nan)
        for i in np.flatnonzero(anomalous):
            value, _ = image_pro(maps[i], masks[i])
            if value is not None:
                self.values[i] = value

    def value(self, w: np.ndarray) -> float:
        usable = ~np.isnan(self.values)
        total = int(np.asarray(w)[usable].sum())
        return math.nan if total == 0 else float(np.asarray(w)[usable] @ self.values[usable]) / total


@dataclass(frozen=True)
class Interval:
    value: float  # the metric on the test set as it is
    low: float
    high: float
    method: str  # how it was computed, e.g. "stratified image bootstrap, percentile, B=1000, seed 0"
    resamples: int = 0


def percentile_interval(values: np.ndarray, confidence: float = 0.95) -> tuple[float, float]:
    """The percentile interval of bootstrap values (NaN resamples, e.g. no region drawn, left out)."""
    finite = values[~np.isnan(values)]
    if len(finite) == 0:
        return math.nan, math.nan
    alpha = (1 - confidence) / 2
    low, high = np.quantile(finite, [alpha, 1 - alpha])
    return float(low), float(high)


PIXEL_FAST = ("pixel_auroc", "au_pro")
PIXEL_WALK = ("pixel_ap", "pixel_f1_max")


def resampled_values(table: PixelTable | None, rd4ad: Rd4adTable | None, metric: str, draws: np.ndarray) -> np.ndarray:
    """The metric on every resample (rows of `draws`)."""
    if metric == "pro_rd4ad":
        assert rd4ad is not None
        return np.array([rd4ad.value(w) for w in draws])
    assert table is not None
    compute = getattr(table, metric)
    # a bar on a terminal only (disable=None): thousands of resamples of a large category take a while
    rows = tqdm(draws, desc=f"bootstrap {metric}", unit="resample", leave=False, disable=None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MetricWarning)
        return np.array([compute(w) for w in rows])
