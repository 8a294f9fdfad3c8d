"""Exact anomaly-detection metrics: pure functions, arrays in, numbers out (no I/O, no project imports).

Every metric has a registered name and a definition string; `evaluate` returns both with each value,
so records and reports can say exactly what a number is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
from sklearn.metrics import roc_auc_score


@dataclass(frozen=True)
class MetricSpec:
    name: str
    level: str  # "image" or "pixel"
    definition: str
    compute: Callable[..., float]


@dataclass(frozen=True)
class MetricValue:
    value: float
    definition: str
    reason: str | None = None  # why the value is NaN, when it is

    def to_dict(self) -> dict:
        return {"value": None if math.isnan(self.value) else self.value, "definition": self.definition, "reason": self.reason}


def image_auroc(scores, labels) -> float:
    return float(roc_auc_score(np.asarray(labels), np.asarray(scores)))


def pixel_auroc(maps, masks) -> float:
    return float(roc_auc_score(np.asarray(masks).ravel() != 0, np.asarray(maps).ravel()))


def au_pro(maps, masks, fpr_limit: float = 0.3) -> float:
    from scipy import ndimage

    maps = np.asarray(maps, dtype=np.float32)
    masks = np.asarray(masks) != 0
    regions = np.zeros(maps.shape, dtype=np.float64)
    structure = np.ones((3, 3), dtype=int)
    for i in range(len(masks)):
        labelled, count = ndimage.label(masks[i], structure=structure)
        for r in range(1, count + 1):
            region = labelled == r
            regions[i][region] = 1.0 / region.sum()
    n_regions = sum(ndimage.label(m, structure=structure)[1] for m in masks)
    order = np.argsort(-maps.ravel(), kind="stable")
    s = maps.ravel()[order]
    fpr = np.cumsum(~masks.ravel()[order]) / max((~masks).sum(), 1)
    pro = np.cumsum(regions.ravel()[order]) / max(n_regions, 1)
    keep = np.append(s[1:] != s[:-1], True)
    fpr = np.concatenate([[0.0], np.minimum(fpr[keep], 1), [1.0]])
    pro = np.concatenate([[0.0], np.minimum(pro[keep], 1), [1.0]])
    pro_at = np.interp(fpr_limit, fpr, pro)
    inside = fpr < fpr_limit
    x = np.append(fpr[inside], fpr_limit)
    y = np.append(pro[inside], pro_at)
    return float(np.trapezoid(y, x) / fpr_limit)


METRICS: dict[str, MetricSpec] = {
    "image_auroc": MetricSpec("image_auroc", "image", "I-AUROC, image score = max of anomaly map, sklearn tie handling", image_auroc),
    "pixel_auroc": MetricSpec("pixel_auroc", "pixel", "P-AUROC over all test pixels, exact", pixel_auroc),
    "au_pro": MetricSpec("au_pro", "pixel", "AU-PRO, MVTec AD definition, 8-connected, FPR limit 0.3, normalised", au_pro),
}

DEFAULT_METRICS = ("image_auroc", "pixel_auroc", "au_pro")


def evaluate(scores, labels, maps=None, masks=None, names=DEFAULT_METRICS) -> dict[str, MetricValue]:
    """Compute the named metrics; undefined ones are NaN with the reason, never an exception."""
    labels = np.asarray(labels)
    results = {}
    for name in names:
        spec = METRICS[name]
        if spec.level == "image":
            if len(np.unique(labels)) < 2:
                results[name] = MetricValue(math.nan, spec.definition, "test set has a single class")
                continue
            results[name] = MetricValue(spec.compute(scores, labels), spec.definition)
        else:
            if masks is None:
                results[name] = MetricValue(math.nan, spec.definition, "data set has no pixel masks")
                continue
            if not np.asarray(masks).any():
                results[name] = MetricValue(math.nan, spec.definition, "no anomalous pixel in the test set")
                continue
            results[name] = MetricValue(spec.compute(maps, masks), spec.definition)
    return results
