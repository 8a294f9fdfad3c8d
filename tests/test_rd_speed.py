"""RD speed work changes rounding only: the teacher-feature cache, the CPU paths (channels_last, fused Adam, bf16,
torch.compile for predict), and the settings."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import harness.methods.rd as rd_module
import harness.methods.rd_cache as rd_cache
import harness.methods.rd_cpu as rd_cpu
from harness.errors import HarnessError
from harness.methods.rd import RDSettings, ReverseDistillation
from harness.methods.rd_cache import cache_bytes, feature_shapes, plan_cache
from harness.methods.rd_maps import rd_loss
from harness.sweep.plan import Sweep


def tiny(**overrides) -> RDSettings:
    settings = dict(backbone="resnet18", weights="none", image_size=64, epochs=2, batch_size=4, progress=False, seed=5)
    return RDSettings(**(settings | overrides))


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # two shared cores: see tests/conftest.py


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    rng = np.random.default_rng(0)
    base = rng.integers(60, 200, (1, 64, 64, 3))
    return np.clip(base + rng.normal(0, 20, (10, 64, 64, 3)), 0, 255).astype(np.uint8)  # 10: a last batch of 2


def train(settings: RDSettings, images: np.ndarray, monkeypatch) -> tuple[ReverseDistillation, list[float]]:
    losses: list[float] = []

    def recording(teacher, student):
        loss = rd_loss(teacher, student)
        losses.append(loss.item())
        return loss

    monkeypatch.setattr(rd_module, "rd_loss", recording)
    model = ReverseDistillation(settings)
    model.fit(images)
    monkeypatch.setattr(rd_module, "rd_loss", rd_loss)
    return model, losses


@pytest.fixture(scope="module")
def runs(images):
    with pytest.MonkeyPatch.context() as monkeypatch:
        return {mode: train(tiny(cache_teacher=mode), images, monkeypatch) for mode in ("off", "on")}


def test_cached_and_uncached_training_give_the_same_losses_and_maps(runs, images):
    (plain, plain_losses), (cached, cached_losses) = runs["off"], runs["on"]
    assert plain.describe()["teacher_cache"]["used"] is False
    info = cached.describe()["teacher_cache"]
    assert info["used"] is True and info["location"] == "cpu" and info["dtype"] == "fp32"
    assert len(plain_losses) == len(cached_losses) == 6  # 2 epochs x 3 batches
    np.testing.assert_allclose(cached_losses, plain_losses, rtol=1e-5, atol=1e-6)
    scores_a, maps_a = plain.predict(images[:4])
    scores_b, maps_b = cached.predict(images[:4])
    np.testing.assert_allclose(maps_b, maps_a, rtol=0, atol=1e-4)
    np.testing.assert_allclose(scores_b, scores_a, rtol=0, atol=1e-4)


def test_default_auto_caches_a_small_training_set(runs, images, monkeypatch):
    model, losses = train(tiny(epochs=1), images, monkeypatch)
    assert model.describe()["teacher_cache"]["used"] is True
    np.testing.assert_allclose(losses, runs["off"][1][:3], rtol=1e-5, atol=1e-6)


def test_fp16_cache_is_close_not_required_equal(runs, images, monkeypatch):
    model, losses = train(tiny(cache_teacher="on", teacher_cache_dtype="fp16"), images, monkeypatch)
    info = model.describe()["teacher_cache"]
    assert info["used"] and info["dtype"] == "fp16"
    assert info["mib"] == pytest.approx(cache_bytes("resnet18", 10, 64, 64, "fp16") / 2**20, abs=0.1)
    # the first step sees the same weights: close; later steps drift apart as training amplifies rounding
    assert losses[0] == pytest.approx(runs["off"][1][0], rel=1e-3) and losses[0] != runs["off"][1][0]
    np.testing.assert_allclose(losses, runs["off"][1], rtol=0.15)


def test_auto_falls_back_to_on_the_fly_over_the_budget(images, monkeypatch):
    monkeypatch.setattr(rd_cache, "available_ram", lambda: 1000)
    model, _ = train(tiny(epochs=1), images, monkeypatch)
    info = model.describe()["teacher_cache"]
    assert info["used"] is False and "over 25%" in info["reason"]
    assert plan_cache("on", 10**12, torch.device("cpu")).use  # "on" caches whatever the budget
    assert not plan_cache("off", 1, torch.device("cpu")).use


def test_feature_sizes_match_the_teacher_and_the_paper():
    model = ReverseDistillation(tiny())
    features = model._teacher_features(torch.zeros(1, 3, 64, 96))
    assert [tuple(f.shape[1:]) for f in features] == feature_shapes("resnet18", 64, 96)
    # wide_resnet50_2 at 256 px: 256x64x64, 512x32x32, 1024x16x16 floats per image
    assert feature_shapes("wide_resnet50_2", 256, 256) == [(256, 64, 64), (512, 32, 32), (1024, 16, 16)]
    assert cache_bytes("wide_resnet50_2", 1, 256, 256) == 4 * (256 * 64 * 64 + 512 * 32 * 32 + 1024 * 16 * 16)


def test_compile_on_the_cpu_is_for_predict_only_and_off_without_a_compiler(monkeypatch):
    model = ReverseDistillation(tiny(compile=True, device="cpu"))
    assert model.compiled is True and model.describe()["compiled"] is True
    assert model._networks() == (model.teacher, model.bottleneck, model.decoder)  # training: eager
    with torch.inference_mode():  # predict: the compiled wrappers (not called here: compiling takes a minute)
        assert model._networks() == model._compiled_networks and model._networks()[2] is not model.decoder
    assert ReverseDistillation(tiny(compile=False))._compiled_networks is None
    assert ReverseDistillation(tiny(compile=True, deterministic=True)).compiled is False  # batch-invariant predict
    monkeypatch.setattr(rd_cpu.shutil, "which", lambda name: None)
    model = ReverseDistillation(tiny(compile=True, device="cpu"))
    assert model.compiled is False and model.describe()["compiled"] is False


@pytest.mark.parametrize(
    "field, value", [("cache_teacher", "always"), ("teacher_cache_dtype", "int8"), ("compile", "yes")]
)
def test_bad_speed_settings_name_the_field(field, value):
    with pytest.raises(HarnessError, match=field):
        ReverseDistillation(tiny(**{field: value}))


def test_execution_only_settings_keep_job_ids():
    base = Sweep(categories=("disc",)).resolve().jobs[0].job_id
    assert (
        Sweep(categories=("disc",), overrides={"cache_teacher": "off", "compile": True}).resolve().jobs[0].job_id
        == base
    )
    assert Sweep(categories=("disc",), overrides={"teacher_cache_dtype": "fp16"}).resolve().jobs[0].job_id != base


def test_bf16_on_a_cpu_without_native_bfloat16_is_refused_in_one_line(monkeypatch):
    monkeypatch.setattr(rd_cpu, "cpu_flags", lambda: {"avx2", "avx512f"})
    with pytest.raises(HarnessError, match="bf16 on the CPU needs native bfloat16") as error:
        ReverseDistillation(tiny(precision="bf16", device="cpu"))
    assert "\n" not in str(error.value)


@pytest.mark.skipif(not rd_cpu.cpu_supports_bf16(), reason="this CPU has no native bfloat16")
def test_bf16_on_the_cpu_trains_and_predicts_close_to_fp32(runs, images, monkeypatch):
    model, losses = train(tiny(epochs=1, cache_teacher="off", precision="bf16"), images, monkeypatch)
    assert model.precision == "bf16" and model.describe()["precision"] == "bf16"
    np.testing.assert_allclose(losses, runs["off"][1][:3], rtol=5e-2)
    assert not np.allclose(losses, runs["off"][1][:3], rtol=1e-6, atol=0)  # it did run in bfloat16
    reference = ReverseDistillation(tiny())
    reference.load_state_dict(model.state_dict())
    (scores, maps), (ref_scores, ref_maps) = model.predict(images[:4]), reference.predict(images[:4])
    assert maps.dtype == np.float32 and np.abs(maps - ref_maps).max() < 0.05 * ref_maps.max()
    np.testing.assert_allclose(scores, ref_scores, rtol=5e-2)


def test_onednn_speed_paths_change_rounding_only_and_stay_off_without_onednn(runs, images, monkeypatch):
    model = runs["on"][0]
    assert model._memory_format == torch.channels_last and rd_cpu.cpu_layout() == torch.channels_last
    assert next(model.decoder.parameters()).is_contiguous(memory_format=torch.channels_last)
    monkeypatch.setattr(rd_module, "cpu_layout", lambda: torch.contiguous_format)
    plain = ReverseDistillation(tiny())
    plain.load_state_dict(model.state_dict())
    assert plain._memory_format == torch.contiguous_format
    (scores, maps), (plain_scores, plain_maps) = model.predict(images[:4]), plain.predict(images[:4])
    np.testing.assert_allclose(maps, plain_maps, rtol=0, atol=1e-5)
    np.testing.assert_allclose(scores, plain_scores, rtol=0, atol=1e-5)
    monkeypatch.undo()
    assert ReverseDistillation(tiny(deterministic=True))._memory_format == torch.contiguous_format  # batch invariance
    with model.trainer(images[:4], cache_teacher="off") as trainer:
        assert trainer.optimizer.defaults["fused"] is True
    monkeypatch.setattr(torch.backends.mkldnn, "enabled", False)  # what portable numerics set
    assert rd_cpu.cpu_layout() == torch.contiguous_format
    assert ReverseDistillation(tiny())._memory_format == torch.contiguous_format
    with model.trainer(images[:4], cache_teacher="off") as trainer:  # fused Adam stays: its sqrt is the exact one
        assert trainer.optimizer.defaults["fused"] is True


def test_bf16_is_refused_in_portable_numerics(monkeypatch):
    monkeypatch.setattr(rd_cpu, "cpu_flags", lambda: {"avx512_bf16"})
    monkeypatch.setattr(torch.backends.mkldnn, "enabled", False)
    with pytest.raises(HarnessError, match="portable numerics"):
        ReverseDistillation(tiny(precision="bf16", device="cpu"))
