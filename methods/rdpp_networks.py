"""The multi-scale projection layer of RD++ (Tien et al., CVPR 2023), between teacher and bottleneck.

RD++ keeps RD's teacher, OCBE bottleneck and student decoder (methods/rd_networks.py) and inserts
one projection per teacher scale. Each projection is four 3x3 convolutions (stride 1, padding 1,
with bias), channels c -> c/2 -> c/4 -> c/2 -> c, each followed by InstanceNorm2d (no affine
parameters, no running statistics) and LeakyReLU (slope 0.01). Attribute names follow the official
`MultiProjectionLayer` / `ProjLayer` (tientrandinh/Revisiting-Reverse-Distillation,
utils/utils_train.py), so the 'proj' part of an official checkpoint loads with strict=True:
`proj_a.proj.0.weight`, ... `proj_c.proj.9.bias` (24 entries). Initialisation is PyTorch's default,
as in the official code.

The official code builds the layer for wide_resnet50_2 only (`MultiProjectionLayer(base=64)`:
256, 512 and 1024 channels); for the other backbones the same rule is applied to their layer1..3
channels (base = layer1 channels / 4).
"""

from __future__ import annotations

from itertools import pairwise

from torch import Tensor, nn

from harness.methods.rd_networks import backbone_spec


def projection_channels(backbone: str) -> tuple[int, int, int]:
    """Channels of the teacher's layer1..3 outputs, which each projection keeps."""
    e = backbone_spec(backbone).expansion
    return 64 * e, 128 * e, 256 * e


class ScaleProjection(nn.Module):
    """One scale's projection (official `ProjLayer(c, c)`): c -> c/2 -> c/4 -> c/2 -> c."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        widths = (channels, channels // 2, channels // 4, channels // 2, channels)
        layers: list[nn.Module] = []
        for c_in, c_out in pairwise(widths):
            layers += [
                nn.Conv2d(c_in, c_out, kernel_size=3, stride=1, padding=1),
                nn.InstanceNorm2d(c_out),
                nn.LeakyReLU(),
            ]
        self.proj = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(x)


class MultiProjection(nn.Module):
    """Projects the teacher's [f1, f2, f3] scale by scale (official `MultiProjectionLayer`)."""

    def __init__(self, backbone: str) -> None:
        super().__init__()
        c1, c2, c3 = projection_channels(backbone)
        self.proj_a = ScaleProjection(c1)
        self.proj_b = ScaleProjection(c2)
        self.proj_c = ScaleProjection(c3)

    def forward(self, features: list[Tensor]) -> list[Tensor]:
        f1, f2, f3 = features
        return [self.proj_a(f1), self.proj_b(f2), self.proj_c(f3)]
