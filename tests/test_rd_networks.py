"""RD networks: official state_dict layout, parameter counts, init, teacher truncation."""

from __future__ import annotations

import ast
import math
from pathlib import Path

import pytest
import torch
from torch import nn
from torchvision import models

from harness.methods.rd_networks import BACKBONES, OneClassBottleneck, StudentDecoder, TeacherEncoder, count_parameters

KEYS_DIR = Path(__file__).resolve().parent / "fixtures" / "rd4ad_checkpoint_keys"  # see its README.md


def official_keys(backbone: str, part: str) -> list[tuple[str, list[int]]]:
    lines = (KEYS_DIR / f"{backbone}_{part}.tsv").read_text().splitlines()
    assert lines[0].split("\t") == ["key", "shape"]
    rows = [line.split("\t") for line in lines[1:] if line.strip()]
    return [(key, list(ast.literal_eval(shape))) for key, shape in rows]


def on_meta(cls, backbone: str) -> nn.Module:
    with torch.device("meta"):
        return cls(backbone)


OFFICIAL_BACKBONES = ("resnet18", "resnet34", "resnet50", "wide_resnet50_2")


def test_every_backbone_has_official_key_lists():
    assert tuple(BACKBONES) == OFFICIAL_BACKBONES
    assert sorted(p.name for p in KEYS_DIR.glob("*.tsv")) == sorted(
        f"{b}_{part}.tsv" for b in OFFICIAL_BACKBONES for part in ("bn", "decoder")
    )


@pytest.mark.parametrize("backbone", OFFICIAL_BACKBONES)
@pytest.mark.parametrize("part,cls", [("bn", OneClassBottleneck), ("decoder", StudentDecoder)])
def test_state_dict_keys_and_shapes_equal_official(backbone, part, cls):
    expected = official_keys(backbone, part)
    got = [(key, list(value.shape)) for key, value in on_meta(cls, backbone).state_dict().items()]
    assert len(got) == len(expected)
    assert got == expected  # same keys, same shapes, same order (num_batches_tracked included)


# (bottleneck, decoder, unused conv4 + bn4) parameters of the official networks
OFFICIAL_PARAMETERS = {
    "resnet18": (12_205_312, 3_703_168, 525_312),
    "resnet34": (16_925_952, 5_770_624, 525_312),
    "resnet50": (39_222_272, 15_821_824, 8_392_704),
    "wide_resnet50_2": (67_277_824, 24_917_504, 8_392_704),
}


@pytest.mark.parametrize("backbone", OFFICIAL_BACKBONES)
def test_parameter_counts(backbone):
    bottleneck, decoder, unused = OFFICIAL_PARAMETERS[backbone]
    bn = on_meta(OneClassBottleneck, backbone)
    assert count_parameters(bn) == bottleneck
    assert count_parameters(on_meta(StudentDecoder, backbone)) == decoder
    # the unused conv4 + bn4 are part of the count
    assert count_parameters(bn.conv4) + count_parameters(bn.bn4) == unused
    # the same counts follow from the key lists (parameters: everything but BatchNorm buffers)
    for part, count in (("bn", bottleneck), ("decoder", decoder)):
        buffers = ("running_mean", "running_var", "num_batches_tracked")
        assert (
            sum(math.prod(shape) for key, shape in official_keys(backbone, part) if not key.endswith(buffers)) == count
        )


def test_resnet34_has_resnet18_fusion_three_embedding_blocks_and_its_own_decoder():
    bn18, bn34 = on_meta(OneClassBottleneck, "resnet18"), on_meta(OneClassBottleneck, "resnet34")
    assert (len(bn18.bn_layer), len(bn34.bn_layer)) == (2, 3)  # official BN_layer(AttnBasicBlock, 2) and (.., 3)
    fusion = ("conv1", "bn1", "conv2", "bn2", "conv3", "bn3", "conv4", "bn4")
    assert [getattr(bn18, n).weight.shape for n in fusion] == [getattr(bn34, n).weight.shape for n in fusion]
    decoder = on_meta(StudentDecoder, "resnet34")
    assert [len(decoder.layer1), len(decoder.layer2), len(decoder.layer3)] == [3, 4, 6]


@pytest.mark.parametrize("backbone", list(BACKBONES))
def test_decoder_restores_teacher_feature_shapes(backbone):
    teacher, bn, decoder = (on_meta(cls, backbone) for cls in (TeacherEncoder, OneClassBottleneck, StudentDecoder))
    x = torch.empty(2, 3, 64, 96, device="meta")
    features = teacher(x)
    restored = decoder(bn(features))
    assert [f.shape for f in restored] == [f.shape for f in features]
    spec = BACKBONES[backbone]
    assert [f.shape[1] for f in features] == [64 * spec.expansion, 128 * spec.expansion, 256 * spec.expansion]


def test_official_init_kaiming_for_conv_default_for_transposed_conv():
    torch.manual_seed(0)
    decoder = StudentDecoder("resnet18")
    conv = decoder.layer1[1].conv1  # 3x3, 256 -> 256
    fan_out = conv.weight.shape[0] * 9
    assert conv.weight.std().item() == pytest.approx(math.sqrt(2.0 / fan_out), rel=0.05)
    deconv = decoder.layer1[0].upsample[0]  # ConvTranspose2d weight (in=512, out=256, 2, 2)
    assert isinstance(deconv, nn.ConvTranspose2d)
    # PyTorch default: kaiming_uniform(a=sqrt(5)) -> |w| <= 1/sqrt(fan_in), fan_in = out * 2 * 2 here
    bound = 1.0 / math.sqrt(deconv.weight.shape[1] * 4)
    assert deconv.weight.abs().max().item() <= bound
    assert deconv.weight.abs().max().item() > 0.9 * bound
    bn = OneClassBottleneck("resnet18")
    assert torch.all(bn.bn4.weight == 1) and torch.all(bn.bn4.bias == 0)


def test_teacher_is_truncated_frozen_and_keeps_torchvision_names():
    teacher = TeacherEncoder("resnet18")
    assert not hasattr(teacher, "layer4") and not hasattr(teacher, "fc")
    full = set(models.resnet18(weights=None).state_dict())
    assert set(teacher.state_dict()) == {k for k in full if not k.startswith(("layer4.", "fc."))}
    assert not any(p.requires_grad for p in teacher.parameters())
    teacher.train()
    assert not teacher.training and not teacher.bn1.training
    features = teacher(torch.rand(1, 3, 64, 64))
    assert [tuple(f.shape) for f in features] == [(1, 64, 16, 16), (1, 128, 8, 8), (1, 256, 4, 4)]


def test_unknown_backbone_is_rejected():
    with pytest.raises(ValueError, match="resnet18"):
        OneClassBottleneck("vgg16")
