"""Networks of Reverse Distillation (RD4AD): frozen teacher encoder, OCBE bottleneck, student decoder.

The bottleneck and decoder reproduce the official architecture (hq-deng/RD4AD, classes `BN_layer`
and `de_*`) module for module, so their state_dicts have exactly the official key names and
shapes and official checkpoints load with strict=True. The teacher is torchvision's ResNet cut
after layer3: layer4 and the classifier are never computed.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torchvision import models
from torchvision.models.resnet import BasicBlock, Bottleneck


@dataclass(frozen=True)
class BackboneSpec:
    """What differs between the backbones the official code supports."""

    block: str  # "basic" or "bottleneck"
    expansion: int  # channels of a stage output = base planes * expansion
    base_width: int  # torchvision's width_per_group (128 for the wide ResNet)
    decoder_blocks: tuple[int, int, int]  # blocks of decoder stages 1, 2, 3 (= encoder layers 1..3 counts)
    bottleneck_blocks: int  # residual blocks of the one-class embedding


BACKBONES: dict[str, BackboneSpec] = {
    "resnet18": BackboneSpec("basic", 1, 64, (2, 2, 2), 2),
    "resnet34": BackboneSpec("basic", 1, 64, (3, 4, 6), 3),  # official BN_layer(AttnBasicBlock, 3)
    "resnet50": BackboneSpec("bottleneck", 4, 64, (3, 4, 6), 3),
    "wide_resnet50_2": BackboneSpec("bottleneck", 4, 128, (3, 4, 6), 3),
}


def backbone_spec(backbone: str) -> BackboneSpec:
    if backbone not in BACKBONES:
        raise ValueError(f"unknown backbone '{backbone}'; expected one of {', '.join(BACKBONES)}")
    return BACKBONES[backbone]


def _conv3x3(in_ch: int, out_ch: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, kernel_size=3, stride=stride, padding=1, bias=False)


def _conv1x1(in_ch: int, out_ch: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, kernel_size=1, stride=stride, bias=False)


def _deconv2x2(in_ch: int, out_ch: int) -> nn.ConvTranspose2d:
    return nn.ConvTranspose2d(in_ch, out_ch, kernel_size=2, stride=2, bias=False)


def _init_conv_and_bn(module: nn.Module) -> None:
    # Official init: kaiming_normal (fan_out, relu) for Conv2d only; ConvTranspose2d is not a
    # Conv2d subclass and keeps PyTorch's default init, as in the official code.
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


# --------------------------------------------------------------------------------------------
# Teacher


class TeacherEncoder(nn.Module):
    """torchvision ResNet stem + layer1..3; returns the three stage outputs. Always frozen, eval mode."""

    def __init__(self, backbone: str) -> None:
        super().__init__()
        backbone_spec(backbone)
        full = models.get_model(backbone, weights=None)
        self.conv1, self.bn1, self.relu, self.maxpool = full.conv1, full.bn1, full.relu, full.maxpool
        self.layer1, self.layer2, self.layer3 = full.layer1, full.layer2, full.layer3
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> TeacherEncoder:
        # BatchNorm statistics of the teacher stay frozen whatever the caller asks.
        return super().train(False)

    def forward(self, x: Tensor) -> list[Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        f1 = self.layer1(x)
        f2 = self.layer2(f1)
        f3 = self.layer3(f2)
        return [f1, f2, f3]


def is_teacher_key(key: str) -> bool:
    """True for torchvision ResNet state_dict keys the teacher uses (everything but layer4 and fc)."""
    return not (key.startswith("layer4.") or key.startswith("fc."))


# --------------------------------------------------------------------------------------------
# OCBE bottleneck (official `BN_layer`)


class OneClassBottleneck(nn.Module):
    """Multi-scale feature fusion + one-class embedding. Input: teacher [f1, f2, f3]; output: the code.

    Attribute names and registration order follow the official `BN_layer`, including `conv4`/`bn4`,
    which the official forward never uses but whose weights are in every official checkpoint.
    """

    def __init__(self, backbone: str) -> None:
        super().__init__()
        spec = backbone_spec(backbone)
        e = spec.expansion
        block = BasicBlock if spec.block == "basic" else Bottleneck
        fused_in = 3 * 256 * e  # [fused layer1, fused layer2, layer3], each 256*e channels
        out_ch = 512 * e
        downsample = nn.Sequential(_conv1x1(fused_in, out_ch, stride=2), nn.BatchNorm2d(out_ch))
        extra = {} if spec.block == "basic" else {"base_width": spec.base_width}
        blocks = [block(fused_in, 512, stride=2, downsample=downsample, **extra)]
        blocks += [block(out_ch, 512, **extra) for _ in range(spec.bottleneck_blocks - 1)]
        self.bn_layer = nn.Sequential(*blocks)

        self.conv1 = _conv3x3(64 * e, 128 * e, stride=2)
        self.bn1 = nn.BatchNorm2d(128 * e)
        self.conv2 = _conv3x3(128 * e, 256 * e, stride=2)
        self.bn2 = nn.BatchNorm2d(256 * e)
        self.conv3 = _conv3x3(128 * e, 256 * e, stride=2)
        self.bn3 = nn.BatchNorm2d(256 * e)
        self.conv4 = _conv1x1(1024 * e, 512 * e)  # unused, kept for checkpoint compatibility
        self.bn4 = nn.BatchNorm2d(512 * e)  # unused, kept for checkpoint compatibility
        self.relu = nn.ReLU(inplace=True)
        _init_conv_and_bn(self)

    def forward(self, features: list[Tensor]) -> Tensor:
        f1, f2, f3 = features
        a = self.relu(self.bn2(self.conv2(self.relu(self.bn1(self.conv1(f1))))))
        b = self.relu(self.bn3(self.conv3(f2)))
        return self.bn_layer(torch.cat([a, b, f3], dim=1))


# --------------------------------------------------------------------------------------------
# Student decoder (official `de_resnet*`)


class DecoderBasicBlock(nn.Module):
    """BasicBlock mirrored: with stride 2 the first conv is a 2x2 transposed conv that upsamples."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, upsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = _deconv2x2(inplanes, planes) if upsample is not None else _conv3x3(inplanes, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.upsample = upsample

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.upsample is None else self.upsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class DecoderBottleneck(nn.Module):
    """Bottleneck mirrored: with stride 2 the middle 3x3 conv becomes a 2x2 transposed conv."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, upsample: nn.Module | None = None, base_width: int = 64) -> None:
        super().__init__()
        width = int(planes * (base_width / 64.0))
        self.conv1 = _conv1x1(inplanes, width)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = _deconv2x2(width, width) if upsample is not None else _conv3x3(width, width)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = _conv1x1(width, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.upsample = upsample

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.upsample is None else self.upsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class StudentDecoder(nn.Module):
    """Restores the teacher's layer3, layer2, layer1 features from the one-class code.

    Returns the features in encoder order, [layer1-sized, layer2-sized, layer3-sized], to be
    compared with the teacher's [f1, f2, f3].
    """

    def __init__(self, backbone: str) -> None:
        super().__init__()
        spec = backbone_spec(backbone)
        self._block = DecoderBasicBlock if spec.block == "basic" else DecoderBottleneck
        self._base_width = spec.base_width
        self._inplanes = 512 * spec.expansion
        self.layer1 = self._make_stage(256, spec.decoder_blocks[0])
        self.layer2 = self._make_stage(128, spec.decoder_blocks[1])
        self.layer3 = self._make_stage(64, spec.decoder_blocks[2])
        _init_conv_and_bn(self)

    def _make_stage(self, planes: int, blocks: int) -> nn.Sequential:
        out_ch = planes * self._block.expansion
        upsample = nn.Sequential(_deconv2x2(self._inplanes, out_ch), nn.BatchNorm2d(out_ch))
        layers = [self._new_block(self._inplanes, planes, upsample)]
        self._inplanes = out_ch
        layers += [self._new_block(out_ch, planes) for _ in range(blocks - 1)]
        return nn.Sequential(*layers)

    def _new_block(self, inplanes: int, planes: int, upsample: nn.Module | None = None) -> nn.Module:
        if self._block is DecoderBasicBlock:
            return DecoderBasicBlock(inplanes, planes, upsample)
        return DecoderBottleneck(inplanes, planes, upsample, base_width=self._base_width)

    def forward(self, code: Tensor) -> list[Tensor]:
        c = self.layer1(code)
        b = self.layer2(c)
        a = self.layer3(b)
        return [a, b, c]


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
