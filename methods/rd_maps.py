"""Reverse Distillation loss, anomaly maps and the Gaussian smoothing of the official test code.

Everything here is batched torch and runs on the device of its inputs. The Gaussian reproduces
scipy.ndimage.gaussian_filter (mode='reflect', truncate=4.0) so maps match the official numbers.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

MAP_MODES = ("add", "mul")


def _check_pairs(teacher: list[Tensor], student: list[Tensor]) -> None:
    if len(teacher) != len(student) or not teacher:
        raise ValueError(f"expected equally many teacher and student scales, got {len(teacher)} and {len(student)}")
    for i, (t, s) in enumerate(zip(teacher, student, strict=False)):
        if t.shape != s.shape:
            raise ValueError(
                f"scale {i}: teacher features {tuple(t.shape)} and student features {tuple(s.shape)} differ"
            )


def rd_loss(teacher: list[Tensor], student: list[Tensor]) -> Tensor:
    """Official training loss: per scale, 1 - cosine of the whole flattened feature maps of an image,
    averaged over the batch; summed over the scales. Computed in float32."""
    _check_pairs(teacher, student)
    total = teacher[0].new_zeros((), dtype=torch.float32)
    for t, s in zip(teacher, student, strict=False):
        # reshape, not view: features may be channels_last; cosine of the flattened vectors does not
        # depend on the order as long as both sides use the same one.
        t = t.float().reshape(t.shape[0], -1)
        s = s.float().reshape(s.shape[0], -1)
        total = total + (1.0 - F.cosine_similarity(t, s, dim=1)).mean()
    return total


def anomaly_map(teacher: list[Tensor], student: list[Tensor], size: tuple[int, int], mode: str = "add") -> Tensor:
    """Unsmoothed anomaly maps (N, H, W), float32: per scale 1 - cosine along channels, upsampled
    bilinearly (align_corners=True) to `size`, then added ('add', official default) or
    multiplied ('mul')."""
    _check_pairs(teacher, student)
    if mode not in MAP_MODES:
        raise ValueError(f"unknown map mode '{mode}'; expected one of {', '.join(MAP_MODES)}")
    n = teacher[0].shape[0]
    fill = 1.0 if mode == "mul" else 0.0
    combined = torch.full((n, 1, size[0], size[1]), fill, dtype=torch.float32, device=teacher[0].device)
    for t, s in zip(teacher, student, strict=False):
        per_scale = 1.0 - F.cosine_similarity(t.float(), s.float(), dim=1)
        per_scale = F.interpolate(per_scale.unsqueeze(1), size=size, mode="bilinear", align_corners=True)
        combined = combined * per_scale if mode == "mul" else combined + per_scale
    return combined[:, 0]


def gaussian_kernel1d(sigma: float, truncate: float = 4.0) -> Tensor:
    """scipy's Gaussian kernel: radius int(truncate*sigma + 0.5), normalised to sum 1, in float64."""
    if not sigma > 0:
        raise ValueError(f"sigma must be positive, got {sigma}")
    radius = int(truncate * float(sigma) + 0.5)
    # math.exp, not torch.exp: torch's goes to MKL's vector math, whose code path (and last bits) depends on
    # the CPU, and portable numerics keep MKL to its matrix products.
    weights = [math.exp(-0.5 * x * x / (float(sigma) ** 2)) for x in range(-radius, radius + 1)]
    kernel = torch.tensor(weights, dtype=torch.float64)
    return kernel / kernel.sum()


def reflect_indices(length: int, radius: int, device: torch.device | str | None = None) -> Tensor:
    """Source index of each position of a line padded by `radius` on both sides, in scipy's 'reflect'
    mode (half-sample symmetric: d c b a | a b c d | d c b a), repeating for pads longer than the line."""
    i = torch.arange(-radius, length + radius, device=device)
    i = torch.remainder(i, 2 * length)
    return torch.where(i >= length, 2 * length - 1 - i, i)


def gaussian_blur(maps: Tensor, sigma: float = 4.0, truncate: float = 4.0) -> Tensor:
    """Smooth maps (N, H, W) like scipy.ndimage.gaussian_filter(map, sigma) applied to each map.

    Separable: one 1-D pass along H (axis 0, as scipy does first), then along W, with float32
    accumulation on the maps' device.
    """
    if maps.ndim != 3:
        raise ValueError(f"expected maps of shape (N, H, W), got {tuple(maps.shape)}")
    n, h, w = maps.shape
    kernel = gaussian_kernel1d(sigma, truncate).to(device=maps.device, dtype=torch.float32)
    radius = (kernel.numel() - 1) // 2
    x = maps.float().unsqueeze(1)  # (N, 1, H, W)
    x = x.index_select(2, reflect_indices(h, radius, maps.device))
    x = F.conv2d(x, kernel.view(1, 1, -1, 1))
    x = x.index_select(3, reflect_indices(w, radius, maps.device))
    x = F.conv2d(x, kernel.view(1, 1, 1, -1))
    return x[:, 0]


def image_scores(maps: Tensor) -> Tensor:
    """Image anomaly score: the maximum of each (smoothed) map, as in the official test code."""
    return maps.flatten(1).amax(dim=1)
