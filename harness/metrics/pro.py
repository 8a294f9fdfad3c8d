"""AU-PRO, the MVTec AD definition (evaluation code v1.0, pro_curve_util.py and generic_util.py).

- regions: connected components of every ground-truth mask, 8-connected (a 3x3 structure of ones);
- FPR(t) = negatives with score >= t / all negatives of the test set (normal images included);
- PRO(t) = mean over all regions of all images of (region pixels with score >= t / region size);
- exact curve from one global descending sort, the last point of each run of tied scores kept,
  clipped to 1, with (0, 0) prepended and (1, 1) appended;
- area by the trapezoid rule up to the FPR limit, the curve linearly interpolated at the limit,
  divided by the limit so that a perfect map scores 1.0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from .pixels import PixelRanking, rank_pixels
from .validation import UndefinedMetricError, check_fpr_limit, check_maps_masks

EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)


@dataclass(frozen=True)
class Regions:
    ids: np.ndarray  # (N, H, W) int32: 0 on normal pixels, else a global region id 1..count
    sizes: np.ndarray  # (count + 1,) int64 pixel count per id (index 0 unused)


def label_regions(masks: np.ndarray) -> Regions:
    """Global 8-connected region ids of validated bool masks (N, H, W), numbered image by image."""
    ids = np.zeros(masks.shape, dtype=np.int32)
    sizes = [np.zeros(1, dtype=np.int64)]
    offset = 0
    for i in np.flatnonzero(masks.reshape(len(masks), -1).any(axis=1)):
        labelled, count = ndimage.label(masks[i], structure=EIGHT_CONNECTED, output=np.int32)
        sizes.append(np.bincount(labelled.reshape(-1), minlength=count + 1)[1:].astype(np.int64))
        labelled[labelled > 0] += offset
        ids[i] = labelled
        offset += count
    return Regions(ids, np.concatenate(sizes))


def _cumsum_blocked(weights: np.ndarray) -> np.ndarray:
    """Running sum with about 2 sqrt(n) accumulated roundings instead of n (running sums within
    blocks of sqrt(n), plus running block offsets): the 1/|region| weights of millions of pixels
    stay within ~1e-15 relative of the exact sums, where a plain cumsum drifts to ~1e-13."""
    n = len(weights)
    block = int(np.sqrt(n)) + 1
    if n < 64:
        return np.cumsum(weights)
    padded = np.zeros(-(-n // block) * block, dtype=np.float64)
    padded[:n] = weights
    table = padded.reshape(-1, block)
    np.cumsum(table, axis=1, out=table)
    offsets = np.cumsum(table[:-1, -1])
    table[1:] += offsets[:, None]
    return padded[:n]


def pro_points(
    ranking: PixelRanking, sizes: np.ndarray, fpr_limit: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(fpr, pro) at the run ends of a ranking whose payload is region ids, before clipping.

    With `fpr_limit`, only the points needed to integrate up to that limit are built: every point
    with FPR <= limit and the first one beyond it (decided on integer counts, safely).
    """
    counts = ranking.counts
    n_regions = len(sizes) - 1
    if n_regions == 0:
        raise UndefinedMetricError("no anomalous pixel in the masks; PRO needs at least one region")
    if counts.n_neg == 0:
        raise UndefinedMetricError("no normal pixel in the masks; the false-positive rate is undefined")
    tp, fp = counts.tp, counts.fp
    if fpr_limit is not None:
        # fp / n_neg <= limit implies fp <= floor(limit * n_neg) + 1 even after rounding; the first
        # point past that bound lies strictly beyond the limit and is kept for the interpolation.
        bound = int(np.floor(fpr_limit * counts.n_neg)) + 1
        stop = int(np.searchsorted(fp, bound, side="right")) + 1
        tp, fp = tp[:stop], fp[:stop]
    with np.errstate(divide="ignore"):
        weights = 1.0 / sizes
    if ranking.positive_payload is None:
        raise ValueError("AU-PRO needs a ranking made with keep_payload=True (region ids of the positive pixels)")
    running = _cumsum_blocked(weights[ranking.positive_payload[: tp[-1]]])
    pro = np.zeros(len(tp), dtype=np.float64)
    seen = tp > 0
    pro[seen] = running[tp[seen] - 1]
    pro /= n_regions
    return fp / counts.n_neg, pro


def _close_curve(fpr: np.ndarray, pro: np.ndarray, complete: bool) -> tuple[np.ndarray, np.ndarray]:
    fpr = np.minimum(fpr, 1.0)
    pro = np.minimum(pro, 1.0)
    head, tail = [0.0], ([1.0] if complete else [])
    return np.concatenate([head, fpr, tail]), np.concatenate([head, pro, tail])


def area_to_limit(fpr: np.ndarray, pro: np.ndarray, fpr_limit: float) -> float:
    """Trapezoid area of a sorted curve from 0 to `fpr_limit`, interpolating at the limit.

    Written operation for operation as the MVTec evaluator's trapezoid(x, y, x_max).
    """
    ins = int(np.searchsorted(fpr, fpr_limit, side="right"))  # bisect.bisect(fpr, fpr_limit)
    correction = 0.0
    if fpr[ins - 1] != fpr_limit:
        x0, x1, y0, y1 = fpr[ins - 1], fpr[ins], pro[ins - 1], pro[ins]
        y_limit = y0 + (y1 - y0) * (fpr_limit - x0) / (x1 - x0)
        correction = 0.5 * (y_limit + y0) * (fpr_limit - x0)
    x, y = fpr[:ins], pro[:ins]
    return float(np.sum(0.5 * (y[1:] + y[:-1]) * (x[1:] - x[:-1])) + correction)


def _ranked(maps, masks) -> tuple[PixelRanking, Regions]:
    maps, masks = check_maps_masks(maps, masks)
    regions = label_regions(masks)
    return rank_pixels(maps, regions.ids.view(np.uint32), keep_payload=True), regions


def pro_curve(maps, masks) -> tuple[np.ndarray, np.ndarray]:
    """The exact MVTec AD PRO curve (fpr, pro), both ascending, from (0, 0) to (1, 1)."""
    ranking, regions = _ranked(maps, masks)
    return _close_curve(*pro_points(ranking, regions.sizes), complete=True)


def au_pro_from_ranking(ranking: PixelRanking, sizes: np.ndarray, fpr_limit: float) -> float:
    fpr, pro = pro_points(ranking, sizes, fpr_limit)
    complete = len(fpr) == len(ranking.counts.tp)
    fpr, pro = _close_curve(fpr, pro, complete)
    # The exact value is at most 1; rounding in the sum can add an ulp (1.0000000000000002).
    return min(area_to_limit(fpr, pro, fpr_limit) / fpr_limit, 1.0)


def au_pro(maps, masks, fpr_limit: float = 0.3) -> float:
    """Area under the MVTec AD PRO curve up to `fpr_limit`, divided by the limit (perfect map: 1.0)."""
    fpr_limit = check_fpr_limit(fpr_limit)
    ranking, regions = _ranked(maps, masks)
    return au_pro_from_ranking(ranking, regions.sizes, fpr_limit)
