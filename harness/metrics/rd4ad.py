"""The PRO of the RD4AD paper's test.py (`compute_pro`), a different metric from the MVTec AU-PRO.

For each anomalous test image alone: 200 thresholds `np.arange(min, max, (max - min) / 200)` over
that image's map; a pixel is predicted anomalous when its score is > the threshold (strict, as
in the official code); PRO = mean over the image's 8-connected regions of the overlap fraction;
FPR from that image's negative pixels only; keep the points with FPR < 0.3 (strict), divide FPR by
the largest kept FPR, area by sklearn.metrics.auc. The result is the mean over anomalous images.
Maps are read as float64, whatever their dtype: the official maps are float64 (a float64 sum
smoothed by gaussian_filter), so its thresholds are a float64 arange; a float32 arange over the
same values gives other thresholds and another PRO (by up to ~1e-5).

Instead of binarising the map 200 times, the pixels of each region (and the normal pixels) are
sorted once and the thresholds are looked up in them.

Where the official code would crash or give NaN for an image (empty mask, constant map, no
normal pixel, fewer than two points with FPR < 0.3, or every kept FPR zero) the image is skipped
with a MetricWarning that says how many were skipped and why.
"""

from __future__ import annotations

import warnings
from collections import Counter

import numpy as np
from scipy import ndimage

from .pro import EIGHT_CONNECTED
from .validation import MetricWarning, UndefinedMetricError, as_binary, check_maps_masks, to_numpy

NUM_THRESHOLDS = 200
FPR_BELOW = 0.3


def _sklearn_auc(x: np.ndarray, y: np.ndarray) -> float:
    """sklearn.metrics.auc for a monotone x (here decreasing: thresholds ascend, FPR falls)."""
    dx = np.diff(x)
    direction = -1.0 if np.any(dx < 0) else 1.0
    return float(direction * np.trapezoid(y, x))


def image_pro(amap: np.ndarray, mask: np.ndarray) -> tuple[float | None, str | None]:
    """The RD4AD PRO of one image, or (None, why) where the official procedure is undefined."""
    labelled, n_regions = ndimage.label(mask, structure=EIGHT_CONNECTED, output=np.int32)
    if n_regions == 0:
        return None, "empty mask"
    n_neg = mask.size - int(np.count_nonzero(mask))
    if n_neg == 0:
        return None, "no normal pixel"
    low, high = amap.min(), amap.max()
    if low == high:
        return None, "constant map"
    thresholds = np.arange(low, high, (high - low) / NUM_THRESHOLDS)
    # Pixels grouped by region (0: normal), each group sorted once: the number of its pixels
    # above each threshold is then one searchsorted of the thresholds, not a pass per threshold.
    flat, ids = amap.reshape(-1), labelled.reshape(-1)
    grouped = flat[np.argsort(ids, kind="stable")]
    sizes = np.bincount(ids, minlength=n_regions + 1)
    above = np.empty((n_regions + 1, len(thresholds)), dtype=np.int64)
    start = 0
    for group, size in enumerate(sizes):
        scores = grouped[start : start + size]
        scores.sort()
        above[group] = size - np.searchsorted(scores, thresholds, side="right")  # scores > threshold
        start += size
    fpr = above[0] / n_neg
    pro = (above[1:] / sizes[1:, None]).mean(axis=0)
    kept = fpr < FPR_BELOW
    if np.count_nonzero(kept) < 2:
        return None, "fewer than two thresholds with FPR < 0.3"
    fpr, pro = fpr[kept], pro[kept]
    if fpr.max() == 0:
        return None, "every kept FPR is zero"
    # At most 1 exactly; clipped against an ulp of rounding as in au_pro.
    return min(_sklearn_auc(fpr / fpr.max(), pro), 1.0), None


def pro_rd4ad(maps, masks, labels=None) -> float:
    """Mean per-image PRO of the RD4AD paper over the anomalous images.

    Anomalous images are those with label != 0 when `labels` is given (the official code's rule;
    those with an empty mask are skipped with a warning), otherwise those with a non-empty mask.
    """
    maps, masks = check_maps_masks(maps, masks)
    maps = maps.astype(np.float64, copy=False)  # exact for every float; the official path
    if labels is None:
        anomalous = masks.reshape(len(masks), -1).any(axis=1)
    else:
        labels = to_numpy(labels, "labels")
        if labels.shape != (len(maps),):
            raise ValueError(f"labels must have shape ({len(maps)},) to match maps {maps.shape}, got {labels.shape}")
        anomalous = as_binary(labels, "labels", "labels")
    areas: list[float] = []
    skipped: Counter[str] = Counter()
    for i in np.flatnonzero(anomalous):
        area, why = image_pro(maps[i], masks[i])
        if area is not None:
            areas.append(area)
        else:
            skipped[why or "undefined"] += 1
    if skipped:
        detail = ", ".join(f"{n} {why}" for why, n in sorted(skipped.items()))
        warnings.warn(
            f"pro_rd4ad skipped {sum(skipped.values())} anomalous image(s): {detail}", MetricWarning, stacklevel=2
        )
    if not areas:
        raise UndefinedMetricError("no anomalous image with a usable mask and map; the RD4AD PRO needs at least one")
    return float(np.mean(areas))
