"""AUROC, AP and F1-max, image and pixel level, against sklearn and brute force (heavy ties)."""

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from harness.metrics import image_ap, image_auroc, image_f1_max, pixel_ap, pixel_auroc, pixel_f1_max


def tied_scores(rng, shape, levels, dtype=np.float32):
    """Scores on a few levels, so that most pixels tie with many others."""
    return (rng.integers(0, levels, shape) / levels - 0.3).astype(dtype)


def brute_force_f1_max(scores, labels):
    """Best F1 over every distinct threshold t, predicting anomalous iff score >= t."""
    scores, labels = np.ravel(scores), np.ravel(labels).astype(bool)
    best = 0.0
    for t in np.unique(scores):
        predicted = scores >= t
        tp = np.sum(predicted & labels)
        precision, recall = tp / predicted.sum(), tp / labels.sum()
        if tp:
            best = max(best, 2 * precision * recall / (precision + recall))
    return best


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("levels", [2, 5, 40])
def test_image_metrics_equal_sklearn_with_ties(seed, levels):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 200))
    labels = rng.random(n) < rng.uniform(0.1, 0.9)
    labels[:2] = [True, False]
    scores = tied_scores(rng, n, levels, np.float64) + 0.2 * labels * rng.random(n).round(1)
    assert image_auroc(scores, labels) == pytest.approx(roc_auc_score(labels, scores), abs=1e-9)
    assert image_ap(scores, labels) == pytest.approx(average_precision_score(labels, scores), abs=1e-9)
    assert image_f1_max(scores, labels) == pytest.approx(brute_force_f1_max(scores, labels), abs=1e-12)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("levels", [3, 17, 1000])
def test_pixel_metrics_equal_sklearn_with_ties(seed, levels):
    rng = np.random.default_rng(100 + seed)
    masks = rng.random((4, 9, 11)) < 0.2
    maps = tied_scores(rng, masks.shape, levels) + np.float32(0.1) * masks * (rng.random(masks.shape) < 0.5)
    auroc, ap = roc_auc_score(masks.ravel(), maps.ravel()), average_precision_score(masks.ravel(), maps.ravel())
    assert pixel_auroc(maps, masks) == pytest.approx(auroc, abs=1e-9)
    assert pixel_ap(maps, masks) == pytest.approx(ap, abs=1e-9)
    assert pixel_f1_max(maps, masks) == pytest.approx(brute_force_f1_max(maps, masks), abs=1e-12)


def test_float64_maps_that_float32_cannot_hold_are_ranked_exactly():
    rng = np.random.default_rng(7)
    masks = rng.random((3, 8, 8)) < 0.3
    # Distinct in float64, equal after a cast to float32: a lossy cast would create ties.
    maps = 1.0 + rng.integers(0, 4, masks.shape) * 1e-3 + masks * 1e-12
    assert len(np.unique(maps.astype(np.float32))) < len(np.unique(maps))
    assert pixel_auroc(maps, masks) == pytest.approx(roc_auc_score(masks.ravel(), maps.ravel()), abs=1e-9)
    assert pixel_ap(maps, masks) == pytest.approx(average_precision_score(masks.ravel(), maps.ravel()), abs=1e-9)


def test_negative_scores_and_signed_zeros_rank_like_numbers():
    # The float32 fast path sorts integer keys: negative floats and -0.0 must keep numeric order.
    maps = np.array([[[-0.0, 0.0, -1.5, 2.0], [-2.0, 0.0, -0.0, -1e-30]]], dtype=np.float32)
    masks = np.array([[[1, 0, 0, 1], [0, 1, 0, 0]]], dtype=bool)
    assert pixel_auroc(maps, masks) == pytest.approx(roc_auc_score(masks.ravel(), maps.ravel()), abs=1e-12)
    assert pixel_ap(maps, masks) == pytest.approx(average_precision_score(masks.ravel(), maps.ravel()), abs=1e-12)


def test_auroc_is_never_flipped():
    labels = np.array([0, 0, 1, 1])
    assert image_auroc([0.9, 0.8, 0.1, 0.2], labels) == 0.0


def test_hand_derived_values():
    labels = np.array([1, 0, 1, 0, 0])
    scores = np.array([0.9, 0.9, 0.5, 0.4, 0.1])
    # Negatives 0.9, 0.4, 0.1. Positive 0.9 beats two and ties one (2.5), positive 0.5 beats two: 4.5 / 6.
    assert image_auroc(scores, labels) == pytest.approx(4.5 / 6, abs=1e-15)
    # Operating points: t=0.9 -> P 1/2, R 1/2; t=0.5 -> P 2/3, R 1: AP = 0.5*0.5 + 0.5*2/3.
    assert image_ap(scores, labels) == pytest.approx(0.25 + 1 / 3, abs=1e-15)
    assert image_f1_max(scores, labels) == pytest.approx(0.8, abs=1e-15)  # t=0.5: 2*2/(3+2)


def test_perfect_and_constant_maps():
    masks = np.zeros((2, 5, 5), dtype=bool)
    masks[0, 1:3, 1:4] = True
    perfect = np.where(masks, 2.0, np.linspace(0, 1, 50).reshape(2, 5, 5)).astype(np.float32)
    assert pixel_auroc(perfect, masks) == 1.0
    assert pixel_ap(perfect, masks) == 1.0
    assert pixel_f1_max(perfect, masks) == 1.0
    constant = np.full(masks.shape, 0.7, dtype=np.float32)
    assert pixel_auroc(constant, masks) == 0.5
    assert pixel_ap(constant, masks) == pytest.approx(6 / 50, abs=1e-15)


def test_mask_encodings_agree():
    rng = np.random.default_rng(3)
    masks = rng.random((2, 6, 6)) < 0.3
    maps = tied_scores(rng, masks.shape, 6)
    expected = pixel_auroc(maps, masks)
    assert pixel_auroc(maps, masks.astype(np.uint8)) == expected
    assert pixel_auroc(maps, masks.astype(np.uint8) * 255) == expected
    assert pixel_auroc(maps, masks.astype(np.float32)) == expected
    assert pixel_auroc(maps.astype(np.float16), masks) == pixel_auroc(maps.astype(np.float16).astype(np.float32), masks)


@pytest.mark.parametrize("dtype", [np.int64, np.uint64])
def test_integer_maps_beyond_float64_precision_are_ranked_exactly(dtype):
    # 2**60 + k are distinct integers that float64 (53-bit mantissa) and float32 both merge into one value.
    rng = np.random.default_rng(12)
    masks = rng.random((3, 6, 7)) < 0.3
    masks[0, 0, 0], masks[0, 0, 1] = True, False
    maps = (
        np.full(masks.shape, 2**60, dtype=np.uint64)
        + masks.astype(np.uint64) * 2
        + rng.integers(0, 2, masks.shape).astype(np.uint64)
    ).astype(dtype)
    assert len(np.unique(maps.astype(np.float64))) < len(np.unique(maps))
    flat_masks, flat_maps = masks.ravel(), maps.ravel()
    assert roc_auc_score(flat_masks, flat_maps) == 1.0  # positives (2**60 + 2, + 3) above every negative
    assert pixel_auroc(maps, masks) == roc_auc_score(flat_masks, flat_maps)
    assert pixel_ap(maps, masks) == pytest.approx(average_precision_score(flat_masks, flat_maps), abs=1e-12)
    assert pixel_f1_max(maps, masks) == pytest.approx(brute_force_f1_max(maps, masks), abs=1e-12)
    assert image_auroc(flat_maps, flat_masks) == roc_auc_score(flat_masks, flat_maps)


def test_long_double_maps_that_float64_cannot_hold_are_ranked_exactly():
    if np.finfo(np.longdouble).nmant <= np.finfo(np.float64).nmant:
        pytest.skip("long double is float64 on this platform")
    rng = np.random.default_rng(13)
    masks = rng.random((2, 5, 5)) < 0.3
    step = np.longdouble(2) ** -61  # below float64's resolution at 1.0 (2**-52)
    maps = np.longdouble(1) + masks * 2 * step + rng.integers(0, 2, masks.shape) * step
    assert len(np.unique(maps.astype(np.float64))) < len(np.unique(maps))
    # Oracle: the same ranking as small integers (dense ranks), which every dtype holds exactly.
    ranks = np.unique(maps, return_inverse=True)[1].reshape(maps.shape)
    assert pixel_auroc(maps, masks) == pixel_auroc(ranks, masks) == 1.0
    assert pixel_ap(maps, masks) == pixel_ap(ranks, masks)
