"""pro_rd4ad against a plain transcription of the RD4AD test.py procedure (docs/metrics.md)."""

import statistics
import warnings

import numpy as np
import pytest
from scipy import ndimage
from sklearn.metrics import auc

from harness.metrics import MetricWarning, UndefinedMetricError, au_pro, pro_rd4ad


def rd4ad_transcription(maps, masks, labels):
    """The official per-image compute_pro, binarising the map 200 times, averaged over anomalous images."""
    areas = []
    for amap, mask, label in zip(maps, masks.astype(bool), labels, strict=False):
        if label == 0:
            continue
        amap = np.asarray(amap, dtype=np.float64)  # the official map is float64 (cal_anomaly_map)
        labelled, n_regions = ndimage.label(mask, structure=np.ones((3, 3)))
        rows = []
        min_th, max_th = amap.min(), amap.max()
        for th in np.arange(min_th, max_th, (max_th - min_th) / 200):
            binary = np.zeros(amap.shape, dtype=bool)
            binary[amap <= th] = 0
            binary[amap > th] = 1
            pros = [binary[labelled == r].sum() / (labelled == r).sum() for r in range(1, n_regions + 1)]
            inverse = ~mask
            fpr = np.logical_and(inverse, binary).sum() / inverse.sum()
            rows.append((statistics.mean(pros), fpr))
        pro, fpr = np.array(rows).T
        kept = fpr < 0.3
        areas.append(auc(fpr[kept] / fpr[kept].max(), pro[kept]))
    return np.mean(areas)


def random_case(seed, n_images=5, size=24):
    rng = np.random.default_rng(seed)
    masks = ndimage.gaussian_filter(rng.standard_normal((n_images, size, size)), (0, 2, 2)) > 0.25
    masks[-1] = False  # a normal image
    labels = masks.any(axis=(1, 2))
    maps = ndimage.gaussian_filter(rng.random(masks.shape), (0, 1, 1)) + rng.uniform(0, 0.3) * masks
    return maps.astype(np.float32), masks, labels


@pytest.mark.parametrize("seed", range(4))
def test_equals_the_transcription(seed):
    maps, masks, labels = random_case(seed)
    assert labels.sum() >= 2
    expected = rd4ad_transcription(maps, masks, labels)
    assert pro_rd4ad(maps, masks, labels) == pytest.approx(expected, abs=1e-12)
    assert pro_rd4ad(maps, masks) == pytest.approx(expected, abs=1e-12)  # anomalous = non-empty mask


def test_float64_maps_and_ties_equal_the_transcription():
    maps, masks, labels = random_case(9)
    maps = np.round(maps.astype(np.float64) * 7) / 7 + 1e-13  # coarse levels: thresholds land on ties
    assert pro_rd4ad(maps, masks, labels) == pytest.approx(rd4ad_transcription(maps, masks, labels), abs=1e-12)


def test_normal_images_are_ignored():
    maps, masks, labels = random_case(4)
    assert (~labels).any()
    first = pro_rd4ad(maps, masks, labels)
    normal = ~labels
    maps[normal] = 100.0 * np.random.default_rng(0).random(maps[normal].shape)  # wild false positives
    assert pro_rd4ad(maps, masks, labels) == first
    assert au_pro(maps, masks) < au_pro(*random_case(4)[:2])  # whereas the MVTec AU-PRO sees them


def test_anomalous_image_with_empty_mask_is_skipped_with_a_warning():
    maps, masks, labels = random_case(2)
    expected = rd4ad_transcription(maps, masks, labels)
    normal = int(np.flatnonzero(~labels)[0])
    labels = labels.copy()
    labels[normal] = True  # labelled anomalous, but its mask is empty (e.g. lost in resizing)
    with pytest.warns(MetricWarning, match=r"skipped 1 anomalous image\(s\): 1 empty mask"):
        assert pro_rd4ad(maps, masks, labels) == pytest.approx(expected, abs=1e-12)


def test_degenerate_images_are_skipped_and_all_skipped_is_undefined():
    masks = np.zeros((2, 8, 8), dtype=bool)
    masks[:, 2:4, 2:4] = True
    maps = np.full(masks.shape, 0.5, dtype=np.float32)
    with (
        pytest.warns(MetricWarning, match="2 constant map"),
        pytest.raises(UndefinedMetricError, match="no anomalous image"),
    ):
        pro_rd4ad(maps, masks)
    maps[1] = np.random.default_rng(0).random((8, 8))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = pro_rd4ad(maps, masks)
    assert len(caught) == 1 and "1 constant map" in str(caught[0].message)
    assert value == pytest.approx(rd4ad_transcription(maps[1:], masks[1:], [1]), abs=1e-12)


def test_thresholds_equal_to_scores_are_not_exceeded():
    # Integer maps from 0 to 200 make the thresholds 0, 1, ..., 199 exactly: a pixel scoring t
    # counts as anomalous only for thresholds strictly below t (score > threshold, as in test.py).
    rng = np.random.default_rng(8)
    masks = np.zeros((2, 20, 20), dtype=bool)
    masks[:, 5:12, 6:10] = True
    maps = rng.integers(0, 201, masks.shape) + masks * rng.integers(0, 60, masks.shape)
    maps = np.clip(maps, 0, 200).astype(np.float32)
    maps[:, 0, 0], maps[:, 0, 1] = 0, 200
    assert pro_rd4ad(maps, masks) == pytest.approx(rd4ad_transcription(maps, masks, [1, 1]), abs=1e-12)


def test_float64_maps_follow_the_official_float64_path():
    # The official maps are float64 (gaussian_filter of a float64 sum), so thresholds are a float64
    # arange. Maps whose values float32 holds exactly must not be computed in float32 instead.
    maps, masks, labels = random_case(5)
    maps64 = maps.astype(np.float64)
    expected = rd4ad_transcription(maps64, masks, labels)
    lo, hi = maps[0].min(), maps[0].max()  # float32 scalars: a float32 arange gives other thresholds
    lo64, hi64 = np.float64(lo), np.float64(hi)
    assert not np.array_equal(np.arange(lo, hi, (hi - lo) / 200), np.arange(lo64, hi64, (hi64 - lo64) / 200))
    assert pro_rd4ad(maps64, masks, labels) == pytest.approx(expected, abs=1e-12)
    assert pro_rd4ad(maps, masks, labels) == pro_rd4ad(maps64, masks, labels)  # same values, same result
