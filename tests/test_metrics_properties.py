"""Property tests: rank metrics depend only on the order of the scores; every value lies in [0, 1]."""

import warnings

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from harness.metrics import METRICS, MetricWarning, evaluate

RANK_METRICS = ("image_auroc", "image_ap", "image_f1_max", "pixel_auroc", "pixel_ap", "pixel_f1_max", "au_pro")

# Strictly increasing maps of small integer levels, computed in float64. Some stay exactly
# representable in float32 (the packed-sort path), others do not (the argsort path).
TRANSFORMS = {
    "identity": lambda k: k.astype(np.float64),
    "cube": lambda k: (k - 3.0) ** 3,
    "exp": lambda k: np.exp(k / 3.0),
    "negative reciprocal": lambda k: -1.0 / (k + 1.0),
    "tiny affine": lambda k: 1e6 + k * 1e-7,
}


@st.composite
def scored_sets(draw):
    n, h, w = draw(st.integers(1, 4)), draw(st.integers(2, 6)), draw(st.integers(2, 6))
    levels = draw(arrays(np.int64, (n, h, w), elements=st.integers(0, draw(st.integers(1, 12)))))
    masks = draw(arrays(np.bool_, (n, h, w)))
    masks |= levels > draw(st.integers(2, 13))  # correlate masks with scores, sometimes
    image_levels = draw(arrays(np.int64, n, elements=st.integers(0, 5)))
    labels = masks.any(axis=(1, 2))
    return image_levels, labels, levels, masks


def values(image_scores, labels, maps, masks, names):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MetricWarning)
        return {k: v.value for k, v in evaluate(image_scores, labels, maps, masks, names=names).items()}


@settings(max_examples=60, deadline=None)
@given(scored_sets(), st.sampled_from(sorted(TRANSFORMS)))
def test_invariant_to_strictly_increasing_transforms(data, transform):
    image_levels, labels, levels, masks = data
    f = TRANSFORMS[transform]
    base = values(image_levels.astype(np.float64), labels, levels.astype(np.float32), masks, RANK_METRICS)
    moved = values(f(image_levels), labels, f(levels), masks, RANK_METRICS)
    np.testing.assert_equal(moved, base)  # bit for bit, NaN where undefined on both sides


@settings(max_examples=60, deadline=None)
@given(scored_sets(), st.floats(0.01, 1.0))
def test_every_value_lies_in_the_unit_interval(data, fpr_limit):
    image_levels, labels, levels, masks = data
    maps = (levels + np.random.default_rng(int(levels.sum())).random(levels.shape)).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MetricWarning)
        results = evaluate(image_levels, labels, maps, masks, names=tuple(METRICS), fpr_limit=fpr_limit)
    for name, result in results.items():
        if result.reason is None:
            assert 0.0 <= result.value <= 1.0, (name, result.value)
        else:
            assert np.isnan(result.value)
