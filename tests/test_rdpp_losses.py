"""RD++ losses against values computed by hand on tiny tensors, and the simplex-noise pseudo-anomalies."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from harness.methods.rdpp_losses import (
    SINKHORN,
    contrast_loss,
    projection_loss,
    reconstruction_loss,
    sinkhorn_divergence,
    ssot_loss,
)
from harness.methods.simplex import AMPLITUDE, PseudoAnomalies, fractal_noise


def test_sinkhorn_has_the_official_parameters():
    loss = sinkhorn_divergence()
    assert (loss.loss, loss.p, loss.blur, loss.scaling, loss.debias, loss.reach) == (
        "sinkhorn",
        2,
        0.05,
        0.95,
        True,
        None,
    )
    assert SINKHORN["diameter"] == 10_000_000 and SINKHORN["truncate"] == 10


def test_sinkhorn_divergence_hand_values():
    loss = sinkhorn_divergence()
    # one point each: S = |x - y|^2 / 2 (the cost of p=2), the self terms being 0
    assert loss(torch.tensor([[1.0, 2.0]]), torch.tensor([[0.0, 0.0]])).item() == pytest.approx(2.5, rel=1e-5)
    # a cloud and its translate by t: the debiased divergence is exactly |t|^2 / 2 for the quadratic cost
    x = torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.5, -0.5], [0.2, -1.0, 0.3], [-0.7, 0.1, 0.9]])
    t = torch.tensor([0.3, -0.2, 0.1])
    assert loss(x, x + t).item() == pytest.approx(0.07, rel=1e-4)


def test_ssot_of_a_batch_and_its_shuffle_is_zero_with_zero_gradient():
    # the official pairing: a batch against a permutation of itself is the same uniform measure
    torch.manual_seed(0)
    projected = [torch.randn(4, 3, 2, 2, requires_grad=True), torch.randn(4, 5, 1, 1, requires_grad=True)]
    value = ssot_loss(projected, torch.tensor([2, 0, 3, 1]))
    value.backward()
    assert abs(value.item()) < 1e-6
    assert max(p.grad.abs().max().item() for p in projected) < 1e-6


def test_reconstruction_loss_hand_value():
    # 1 image, 2 channels, 1 x 2 positions: position 1 vectors (1, 0) and (1, 1) -> cos 1/sqrt 2;
    # position 2 vectors (0, 1) and (0, 2) -> cos 1; mean of 1 - cos over positions
    q = torch.tensor([[[[1.0, 0.0]], [[0.0, 1.0]]]])
    p = torch.tensor([[[[1.0, 0.0]], [[1.0, 2.0]]]])
    expected = ((1 - 1 / math.sqrt(2)) + 0.0) / 2
    assert reconstruction_loss([q], [p]).item() == pytest.approx(expected, abs=1e-6)
    # summed over scales
    assert reconstruction_loss([q, q], [p, p]).item() == pytest.approx(2 * expected, abs=1e-6)


def test_contrast_loss_hand_value():
    # image 1: flattened cos((1, 0, 0, 0), (4, 3, 0, 0)) = 0.8 -> max(0, 0.8 - 0.5) = 0.3
    # image 2: cos((0, 1, 0, 0), (0, 1, 0, 2)) = 1/sqrt 5 ~ 0.447 -> 0; the mean over images is 0.15
    t = torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0]]).view(2, 1, 2, 2)
    p = torch.tensor([[4.0, 3.0, 0.0, 0.0], [0.0, 1.0, 0.0, 2.0]]).view(2, 1, 2, 2)
    assert contrast_loss([t], [p]).item() == pytest.approx(0.15, abs=1e-6)
    # orthogonal or opposite features cost nothing: the loss pushes the cosine below the margin only
    assert contrast_loss([t], [-p]).item() == 0.0


def test_projection_loss_combines_the_terms_as_the_official_code():
    t = torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0]]).view(2, 1, 2, 2)
    p = torch.tensor([[4.0, 3.0, 0.0, 0.0], [0.0, 1.0, 0.0, 2.0]]).view(2, 1, 2, 2)
    q = 2 * p
    q[1, 0, 1, 1] = -2.0  # one position turned round
    # one channel: the cosine at a position is the sign of q * p, and 0 where either is 0; 1 - cos over the
    # 8 positions: image 1 (4, 3, 0, 0) -> 0, 0, 1, 1; image 2 (0, 1, 0, 2) -> 1, 0, 1, 2 (turned round)
    total, terms = projection_loss([t], [q], [p], torch.tensor([1, 0]))
    assert terms["reconstruction"].item() == pytest.approx(6 / 8, abs=1e-6)
    assert terms["contrast"].item() == pytest.approx(0.15, abs=1e-6)
    assert abs(terms["ssot"].item()) < 1e-6
    assert total.item() == pytest.approx((0.01 * 0.75 + 0.1 * 0.15) / 1.11, abs=1e-6)
    skipped, skipped_terms = projection_loss([t], [q], [p], torch.tensor([1, 0]), ssot=False)
    assert skipped_terms["ssot"].item() == 0.0 and skipped.item() == pytest.approx(total.item(), abs=1e-6)


# ---- simplex noise -------------------------------------------------------------------------------


def test_fractal_noise_matches_the_official_generator():
    # values of the official dataset/noise.py, Simplex_CLASS().newSeed(111); rand_3d_octaves((3, 31, 31), 6, 0.6)
    field = fractal_noise(111, (3, 31, 31))
    for index, value in {
        (0, 5, 7): 0.46203295975129643,
        (1, 17, 3): -0.26523766858195724,
        (2, 30, 30): -0.6732604322140737,
        (2, 12, 25): 0.002685730445531479,
    }.items():
        assert field[index] == pytest.approx(value, abs=1e-12), index
    assert fractal_noise(111, (3, 8, 8), frequency=8)[2, 7, 7] == pytest.approx(-0.49921330481893567, abs=1e-12)
    # every patch starts at coordinate 0, so the noise of an h x w patch is the top-left crop of one field
    np.testing.assert_array_equal(fractal_noise(111, (3, 12, 20)), field[:, :12, :20])


def test_rectangles_follow_the_official_ranges_at_256_px():
    noise = PseudoAnomalies(256, 256, np.random.default_rng(0))
    assert noise.rows == noise.columns == (10, 32) and tuple(noise.field.shape) == (3, 31, 31)
    boxes = noise.draw(400)
    hs, ws = [b[2] for b in boxes], [b[3] for b in boxes]
    assert min(hs) == 10 and max(hs) == 31 and min(ws) == 10 and max(ws) == 31
    # top-left corner from randint(1, 256 - h): the box never touches row or column 0 nor 255
    assert all(top >= 1 and top + h <= 255 for top, _, h, _ in boxes)
    assert all(left >= 1 and left + w <= 255 for _, left, _, w in boxes)
    small = PseudoAnomalies(64, 64, np.random.default_rng(0))  # scaled with the image
    assert small.rows == (3, 8)


def test_noise_is_added_inside_the_box_only():
    noise = PseudoAnomalies(64, 64, np.random.default_rng(1))
    images = torch.rand(2, 3, 64, 64)
    original = images.clone()
    boxes = [(5, 9, 4, 6), (20, 1, 7, 3)]
    noised = noise.apply(images, boxes)
    diff = noised - images
    for i, (top, left, h, w) in enumerate(boxes):
        torch.testing.assert_close(diff[i, :, top : top + h, left : left + w], noise.field[:, :h, :w])
        diff[i, :, top : top + h, left : left + w] = 0
    assert diff.abs().max().item() == 0.0 and torch.equal(images, original)  # the input is not changed
    assert noise.field.abs().max().item() <= AMPLITUDE * 2.6  # six octaves, persistence 0.6
