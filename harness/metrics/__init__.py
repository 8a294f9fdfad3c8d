"""Exact anomaly-detection metrics: pure functions, arrays in, numbers out (no I/O, no project imports).

Definitions: docs/metrics.md. Every metric has a registered name and a definition string;
`evaluate` returns both with each value, so records and reports can say exactly what a number is.

Public functions raise ValueError on malformed input and UndefinedMetricError (a ValueError) when
the metric is not defined for the data; `evaluate` turns the latter into NaN with the reason.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .pixels import PixelRanking, pixel_ap, pixel_auroc, pixel_f1_max, rank_pixels
from .pro import Regions, au_pro, au_pro_from_ranking, label_regions, pro_curve
from .ranking import (
    RankCounts,
    ap_from_counts,
    auroc_from_counts,
    f1_max_from_counts,
    image_ap,
    image_auroc,
    image_f1_max,
    rank_counts,
)
from .rd4ad import pro_rd4ad
from .validation import MetricWarning, UndefinedMetricError, check_fpr_limit, check_maps_masks, check_scores_labels

__all__ = [
    "DEFAULT_METRICS",
    "LABELS",
    "METRICS",
    "MetricSpec",
    "MetricValue",
    "MetricWarning",
    "UndefinedMetricError",
    "au_pro",
    "definition",
    "evaluate",
    "image_ap",
    "image_auroc",
    "image_f1_max",
    "pixel_ap",
    "pixel_auroc",
    "pixel_f1_max",
    "pro_curve",
    "pro_rd4ad",
]


DEFAULT_FPR_LIMIT = 0.3  # the MVTec AD AU-PRO integration limit


@dataclass(frozen=True)
class MetricSpec:
    name: str
    level: str  # "image" or "pixel"
    template: str  # the definition; AU-PRO's names {fpr_limit}
    compute: Callable[..., float]  # the public function: (scores, labels) or (maps, masks)
    from_inputs: Callable[[_Inputs], float]  # the same value inside evaluate(), sharing its sorts
    label: str = ""  # how tables and logs name it

    @property
    def definition(self) -> str:
        """The definition at the default FPR limit (definition(name, fpr_limit) gives it at any limit)."""
        return self.template.format(fpr_limit=f"{DEFAULT_FPR_LIMIT:g}")


@dataclass(frozen=True)
class MetricValue:
    value: float
    definition: str
    reason: str | None = None  # why the value is NaN, when it is

    def to_dict(self) -> dict:
        return {
            "value": None if math.isnan(self.value) else self.value,
            "definition": self.definition,
            "reason": self.reason,
        }


class _Inputs:
    """The inputs of one evaluate() call, validated once; each sort is done at most once and shared."""

    def __init__(self, scores, labels, maps, masks, names: tuple[str, ...], fpr_limit: float):
        self.scores, self.labels = check_scores_labels(scores, labels)
        self.fpr_limit = fpr_limit
        self.maps: np.ndarray | None = None
        self.masks: np.ndarray | None = None
        self._why_no_pixels: str | None = None
        if maps is None:
            self._why_no_pixels = "no anomaly maps were given"
        elif masks is None:
            self._why_no_pixels = "the data set has no pixel masks (image-level data set, e.g. CIFAR-10)"
        else:
            self.maps, self.masks = check_maps_masks(maps, masks)
            if len(self.maps) != len(self.scores):
                raise ValueError(
                    "Found input variables with inconsistent numbers of images: "
                    f"scores {len(self.scores)}, maps {len(self.maps)}"
                )
        # AU-PRO needs region ids as the sort's payload; the other pixel metrics read them as "!= 0".
        self._with_regions = "au_pro" in names
        self._image_counts: RankCounts | None = None
        self._ranking: PixelRanking | None = None
        self._regions: Regions | None = None

    def image_counts(self) -> RankCounts:
        if self._image_counts is None:
            self._image_counts = rank_counts(self.scores, self.labels)
        return self._image_counts

    def require_pixels(self) -> None:
        if self._why_no_pixels is not None:
            raise UndefinedMetricError(self._why_no_pixels)

    def pixel_ranking(self) -> PixelRanking:
        self.require_pixels()
        if self._ranking is None:
            assert self.maps is not None and self.masks is not None  # require_pixels passed
            if self._with_regions:
                self._regions = label_regions(self.masks)
                self._ranking = rank_pixels(self.maps, self._regions.ids.view(np.uint32), keep_payload=True)
            else:
                self._ranking = rank_pixels(self.maps, self.masks, keep_payload=False)
        return self._ranking

    def au_pro(self) -> float:
        ranking = self.pixel_ranking()
        assert self._regions is not None  # labelled with the ranking whenever au_pro is asked for
        return au_pro_from_ranking(ranking, self._regions.sizes, self.fpr_limit)

    def pro_rd4ad(self) -> float:
        self.require_pixels()
        return pro_rd4ad(self.maps, self.masks, self.labels)


def definition(name: str, fpr_limit: float = DEFAULT_FPR_LIMIT) -> str:
    """The definition string of a registered metric (AU-PRO's names its FPR limit)."""
    return METRICS[name].template.format(fpr_limit=f"{fpr_limit:g}")


_EXACT = "exact (one sort, no threshold sampling)"
METRICS: dict[str, MetricSpec] = {
    spec.name: spec
    for spec in [
        MetricSpec(
            "image_auroc",
            "image",
            f"I-AUROC: ROC AUC of the image scores against the labels, {_EXACT}, "
            "ties as sklearn roc_auc_score, never flipped",
            image_auroc,
            lambda x: auroc_from_counts(x.image_counts()),
            label="I-AUROC",
        ),
        MetricSpec(
            "pixel_auroc",
            "pixel",
            "P-AUROC: ROC AUC over every pixel of every test image (normal images included), "
            f"{_EXACT}, ties as sklearn roc_auc_score",
            pixel_auroc,
            lambda x: auroc_from_counts(x.pixel_ranking().counts),
            label="P-AUROC",
        ),
        MetricSpec(
            "au_pro",
            "pixel",
            "AU-PRO, MVTec AD definition, 8-connected, FPR limit {fpr_limit}, normalised by the limit; "
            f"FPR over every negative pixel of the test set, {_EXACT}, interpolated at the limit",
            au_pro,
            _Inputs.au_pro,
            label="AU-PRO",
        ),
        MetricSpec(
            "pro_rd4ad",
            "pixel",
            "PRO as in the RD4AD paper's test.py: per anomalous image, 200 thresholds arange(min, max, (max-min)/200), "
            "8-connected, FPR from that image's negatives, points with FPR < 0.3 rescaled by the largest kept FPR, "
            "sklearn auc, mean over anomalous images (images where it is undefined, e.g. empty masks, skipped)",
            pro_rd4ad,
            _Inputs.pro_rd4ad,
            label="PRO (RD4AD)",
        ),
        MetricSpec(
            "image_ap",
            "image",
            f"Image AP: average precision of the image scores, sklearn average_precision_score (step-wise), {_EXACT}",
            image_ap,
            lambda x: ap_from_counts(x.image_counts()),
            label="I-AP",
        ),
        MetricSpec(
            "pixel_ap",
            "pixel",
            "Pixel AP: average precision over every pixel of every test image, "
            f"sklearn average_precision_score (step-wise), {_EXACT}",
            pixel_ap,
            lambda x: ap_from_counts(x.pixel_ranking().counts),
            label="P-AP",
        ),
        MetricSpec(
            "image_f1_max",
            "image",
            "Image F1-max: best F1 over every distinct image-score threshold "
            f"(anomalous iff score >= threshold), {_EXACT}",
            image_f1_max,
            lambda x: f1_max_from_counts(x.image_counts()),
            label="I-F1max",
        ),
        MetricSpec(
            "pixel_f1_max",
            "pixel",
            "Pixel F1-max: best F1 over every distinct pixel threshold over all test pixels "
            f"(anomalous iff score >= threshold), {_EXACT}",
            pixel_f1_max,
            lambda x: f1_max_from_counts(x.pixel_ranking().counts),
            label="P-F1max",
        ),
    ]
}

DEFAULT_METRICS = ("image_auroc", "pixel_auroc", "au_pro")
LABELS = {name: spec.label for name, spec in METRICS.items()}


def evaluate(
    scores, labels, maps=None, masks=None, names=DEFAULT_METRICS, *, fpr_limit: float = DEFAULT_FPR_LIMIT
) -> dict[str, MetricValue]:
    """Compute the named metrics of one test set; pixel metrics share one sort of all pixel scores.

    scores (N,) and labels (N,) per image; maps (N, H, W) and masks (N, H, W) per pixel, or None
    (then the pixel metrics are NaN with the reason). Malformed input raises ValueError; a metric
    that is undefined for the data (one class only, no anomalous pixel) is NaN with the reason.
    """
    names = tuple(names)
    unknown = [name for name in names if name not in METRICS]
    if unknown:
        raise ValueError(f"unknown metric name(s) {unknown}; registered: {sorted(METRICS)}")
    fpr_limit = check_fpr_limit(fpr_limit)
    inputs = _Inputs(scores, labels, maps, masks, names, fpr_limit)
    results = {}
    for name in names:
        spec = METRICS[name]
        text = definition(name, fpr_limit)
        try:
            value = spec.from_inputs(inputs)
        except UndefinedMetricError as undefined:
            results[name] = MetricValue(math.nan, text, str(undefined))
            continue
        results[name] = MetricValue(float(value), text)
    return results
