"""AU-PRO (MVTec AD definition): sort-based curve against a brute force over every threshold."""

import math

import numpy as np
import pytest
from scipy import ndimage

from harness.metrics import au_pro, pixel_auroc, pro_curve
from harness.metrics.pro import _cumsum_blocked


def brute_force_pro_curve(maps, masks):
    """For every distinct score t (descending): FPR and mean region overlap computed directly."""
    masks = np.asarray(masks, dtype=bool)
    regions = []  # (image index, region mask)
    for i, image_mask in enumerate(masks):
        labelled, count = ndimage.label(image_mask, structure=np.ones((3, 3)))
        regions += [(i, labelled == r) for r in range(1, count + 1)]
    fprs, pros = [0.0], [0.0]
    for t in np.unique(maps)[::-1]:
        above = maps >= t
        fprs.append(np.sum(above & ~masks) / np.sum(~masks))
        pros.append(min(np.mean([np.sum(above[i][region]) / np.sum(region) for i, region in regions]), 1.0))
    return np.array(fprs + [1.0]), np.array(pros + [1.0])


def area_by_interpolation(fpr, pro, limit):
    """Trapezoid area up to the limit with the curve interpolated there, divided by the limit."""
    i = int(np.argmax(fpr >= limit))  # first point at or beyond the limit
    y_at = pro[i - 1] + (pro[i] - pro[i - 1]) * (limit - fpr[i - 1]) / (fpr[i] - fpr[i - 1])
    x, y = np.append(fpr[:i], limit), np.append(pro[:i], y_at)
    return float(np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2) / limit)


def random_case(seed, shape=(4, 10, 12), levels=6):
    rng = np.random.default_rng(seed)
    noise = ndimage.gaussian_filter(rng.standard_normal(shape), (0, 1.2, 1.2))
    masks = noise > 0.35
    masks[rng.random(len(masks)) < 0.3] = False  # some normal images
    masks[0, 0, 0] = True
    maps = (np.round(rng.random(shape) * levels) / levels + 0.4 * masks * rng.random(shape)).astype(np.float32)
    return maps, masks


@pytest.mark.parametrize("seed", range(8))
def test_curve_equals_brute_force_over_every_threshold(seed):
    maps, masks = random_case(seed, levels=[2, 4, 8, 30][seed % 4])
    fpr, pro = pro_curve(maps, masks)
    expected_fpr, expected_pro = brute_force_pro_curve(maps, masks)
    assert len(fpr) == len(expected_fpr)
    np.testing.assert_array_equal(fpr, expected_fpr)
    np.testing.assert_allclose(pro, expected_pro, rtol=0, atol=1e-13)
    for limit in (0.3, 0.05, 1.0):
        expected = area_by_interpolation(expected_fpr, expected_pro, limit)
        assert au_pro(maps, masks, fpr_limit=limit) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("seed", range(3))
def test_float64_path_gives_the_same_curve(seed):
    maps, masks = random_case(50 + seed)
    fpr32, pro32 = pro_curve(maps, masks)
    # +1e-13 * pi is not representable in float32: the float64 argsort path is taken.
    fpr64, pro64 = pro_curve(maps.astype(np.float64) * (1 + 1e-13 * math.pi), masks)
    np.testing.assert_array_equal(fpr32, fpr64)
    np.testing.assert_array_equal(pro32, pro64)


def test_au_pro_integrates_only_the_needed_prefix_exactly():
    rng = np.random.default_rng(11)
    masks = ndimage.gaussian_filter(rng.standard_normal((6, 32, 32)), (0, 2, 2)) > 0.2
    maps = (rng.random(masks.shape) + masks * 0.5).astype(np.float32)
    fpr, pro = pro_curve(maps, masks)
    for limit in (0.3, 0.01, 0.5, 1.0):
        assert au_pro(maps, masks, limit) == pytest.approx(area_by_interpolation(fpr, pro, limit), abs=1e-12)


def test_hand_derived_small_example():
    # Regions: A = {(0,0), (0,1)} of size 2 and B = {(1,3)} of size 1; five negatives.
    maps = np.array([[[0.9, 0.8, 0.1, 0.5], [0.9, 0.2, 0.3, 0.5]]], dtype=np.float32)
    masks = np.array([[[1, 1, 0, 0], [0, 0, 0, 1]]], dtype=bool)
    fpr, pro = pro_curve(maps, masks)
    np.testing.assert_allclose(fpr, [0, 0.2, 0.2, 0.4, 0.6, 0.8, 1, 1], atol=1e-15)
    np.testing.assert_allclose(pro, [0, 0.25, 0.5, 1, 1, 1, 1, 1], atol=1e-15)
    # 0.025 (to FPR 0.2) + 0 (vertical) + 0.5 * (0.5 + 0.75) * 0.1 (PRO 0.75 at FPR 0.3) = 0.0875.
    assert au_pro(maps, masks) == pytest.approx(0.0875 / 0.3, abs=1e-14)
    assert au_pro(maps, masks, fpr_limit=1.0) == pytest.approx(0.775, abs=1e-14)
    assert pixel_auroc(maps, masks) == pytest.approx(12 / 15, abs=1e-15)


def test_perfect_map_scores_one():
    rng = np.random.default_rng(5)
    masks = np.zeros((5, 16, 16), dtype=bool)
    masks[0, 2:6, 3:9] = masks[0, 10:12, 10:15] = masks[2, 4:14, 4:5] = masks[3, 0, 0] = True
    maps = np.where(masks, 1.0 + rng.random(masks.shape), rng.random(masks.shape)).astype(np.float32)
    assert au_pro(maps, masks) == pytest.approx(1.0, abs=1e-12)
    assert pixel_auroc(maps, masks) == 1.0


def test_constant_map_gives_the_diagonal():
    masks = np.zeros((3, 8, 8), dtype=bool)
    masks[1, 2:5, 2:5] = True
    maps = np.full(masks.shape, 0.25, dtype=np.float32)
    fpr, pro = pro_curve(maps, masks)
    np.testing.assert_array_equal(fpr, [0, 1, 1])
    np.testing.assert_array_equal(pro, [0, 1, 1])
    # PRO at FPR 0.3 is 0.3: area 0.5 * 0.3 * 0.3 = 0.045, divided by 0.3.
    assert au_pro(maps, masks) == pytest.approx(0.15, abs=1e-15)
    assert pixel_auroc(maps, masks) == 0.5


def test_diagonal_pixels_form_one_region():
    # 8-connected: (0,0) touches (1,1) diagonally, so the mask is ONE region of 4 pixels. Only
    # (0,0) scores high, so the first point has PRO 1/4 (4-connectivity would give (1 + 0) / 2).
    masks = np.zeros((1, 4, 4), dtype=bool)
    masks[0, 0, 0] = masks[0, 1, 1] = masks[0, 1, 2] = masks[0, 2, 1] = True
    maps = np.zeros(masks.shape, dtype=np.float32)
    maps[0, 0, 0] = 1.0
    fpr, pro = pro_curve(maps, masks)
    np.testing.assert_array_equal(fpr, [0, 0, 1, 1])
    np.testing.assert_array_equal(pro, [0, 0.25, 1, 1])
    # PRO at FPR 0.3 is 0.25 + 0.75 * 0.3 = 0.475; area 0.5 * (0.25 + 0.475) * 0.3.
    assert au_pro(maps, masks) == pytest.approx(0.5 * (0.25 + 0.475), abs=1e-15)


def test_regions_do_not_connect_across_images():
    masks = np.zeros((2, 3, 3), dtype=bool)
    masks[0, 2, 2] = masks[1, 0, 0] = True  # would touch if the images were one 3-D volume
    maps = np.zeros(masks.shape, dtype=np.float32)
    maps[0, 2, 2] = 1.0
    assert pro_curve(maps, masks)[1][1] == 0.5  # two regions of one pixel, one found


def test_running_sum_of_region_weights_is_accurate():
    rng = np.random.default_rng(2)
    weights = 1.0 / rng.integers(1, 5000, 300_000)
    running = _cumsum_blocked(weights)
    for i in (1, 63, 64, 547, 548, 549, 550, 1096, 1097, 123_457, 299_999, 300_000):
        assert running[i - 1] == pytest.approx(math.fsum(weights[:i]), rel=1e-14)
