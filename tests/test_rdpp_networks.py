"""RD++ networks: the official checkpoint layout (proj, bn, decoder), parameter counts, the projection's shape."""

from __future__ import annotations

import ast
import math
from pathlib import Path

import pytest
import torch
from torch import nn

from harness.methods.rd_networks import OneClassBottleneck, StudentDecoder, count_parameters
from harness.methods.rdpp import expected_projection_shapes
from harness.methods.rdpp_networks import MultiProjection, projection_channels

FIXTURES = Path(__file__).resolve().parent / "fixtures"
KEYS_DIR = FIXTURES / "rdpp_checkpoint_keys"  # see its README.md
BUFFERS = ("running_mean", "running_var", "num_batches_tracked")


def key_list(path: Path) -> list[tuple[str, list[int]]]:
    lines = path.read_text().splitlines()
    assert lines[0].split("\t") == ["key", "shape"]
    return [
        (key, list(ast.literal_eval(shape))) for key, shape in (line.split("\t") for line in lines[1:] if line.strip())
    ]


def on_meta(cls, backbone: str) -> nn.Module:
    with torch.device("meta"):
        return cls(backbone)


def test_fixture_lists_are_the_official_wide_resnet_checkpoint():
    assert sorted(p.name for p in KEYS_DIR.glob("*.tsv")) == [
        "wide_resnet50_2_bn.tsv",
        "wide_resnet50_2_decoder.tsv",
        "wide_resnet50_2_proj.tsv",
    ]
    # RD++ reuses RD's bottleneck and decoder unchanged: its lists are RD4AD's
    for part in ("bn", "decoder"):
        assert key_list(KEYS_DIR / f"wide_resnet50_2_{part}.tsv") == key_list(
            FIXTURES / "rd4ad_checkpoint_keys" / f"wide_resnet50_2_{part}.tsv"
        )


@pytest.mark.parametrize(
    "part, cls", [("proj", MultiProjection), ("bn", OneClassBottleneck), ("decoder", StudentDecoder)]
)
def test_state_dict_keys_shapes_and_order_equal_official(part, cls):
    expected = key_list(KEYS_DIR / f"wide_resnet50_2_{part}.tsv")
    got = [(key, list(value.shape)) for key, value in on_meta(cls, "wide_resnet50_2").state_dict().items()]
    assert got == expected


def test_projection_key_list_by_hand():
    # per scale c: four 3x3 convs with bias, c -> c/2 -> c/4 -> c/2 -> c, at indices 0, 3, 6, 9
    expected = []
    for name, c in (("proj_a", 256), ("proj_b", 512), ("proj_c", 1024)):
        for index, (c_in, c_out) in zip(
            (0, 3, 6, 9), ((c, c // 2), (c // 2, c // 4), (c // 4, c // 2), (c // 2, c)), strict=False
        ):
            expected += [(f"{name}.proj.{index}.weight", [c_out, c_in, 3, 3]), (f"{name}.proj.{index}.bias", [c_out])]
    assert key_list(KEYS_DIR / "wide_resnet50_2_proj.tsv") == expected
    assert {k: list(v) for k, v in expected_projection_shapes("wide_resnet50_2").items()} == dict(expected)


def projection_parameters(c: int) -> int:
    """9 (c*c/2 + c/2*c/4 + c/4*c/2 + c/2*c) weights + (c/2 + c/4 + c/2 + c) biases = 11.25 c^2 + 2.25 c."""
    return 9 * (c * c // 2 + c * c // 8 + c * c // 8 + c * c // 2) + (c // 2 + c // 4 + c // 2 + c)


@pytest.mark.parametrize(
    "backbone, total",
    [("wide_resnet50_2", 15_486_912), ("resnet50", 15_486_912), ("resnet18", 968_688), ("resnet34", 968_688)],
)
def test_projection_parameter_counts(backbone, total):
    proj = on_meta(MultiProjection, backbone)
    assert count_parameters(proj) == total == sum(projection_parameters(c) for c in projection_channels(backbone))
    if backbone == "wide_resnet50_2":  # the same count from the official key list
        assert sum(math.prod(shape) for _, shape in key_list(KEYS_DIR / "wide_resnet50_2_proj.tsv")) == total
        for part, count in (("bn", 67_277_824), ("decoder", 24_917_504)):
            rows = key_list(KEYS_DIR / f"wide_resnet50_2_{part}.tsv")
            assert sum(math.prod(shape) for key, shape in rows if not key.endswith(BUFFERS)) == count


def test_projection_layers_and_shapes():
    proj = MultiProjection("resnet18")
    kinds = [type(m).__name__ for m in proj.proj_a.proj]
    assert kinds == ["Conv2d", "InstanceNorm2d", "LeakyReLU"] * 4
    norms = [m for m in proj.modules() if isinstance(m, nn.InstanceNorm2d)]
    assert norms and all(not m.affine and not m.track_running_stats for m in norms)  # no state: same in train/eval
    assert all(m.negative_slope == 0.01 for m in proj.modules() if isinstance(m, nn.LeakyReLU))
    features = [torch.randn(2, 64, 16, 16), torch.randn(2, 128, 8, 8), torch.randn(2, 256, 4, 4)]
    out = proj(features)
    assert [tuple(o.shape) for o in out] == [tuple(f.shape) for f in features]
    proj.eval()
    torch.testing.assert_close(proj(features), out)
