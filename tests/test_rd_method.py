"""RD maps, loss, training, inference, checkpoints and weights handling (tiny resnet18, random weights, CPU)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import scipy.ndimage
import torch
from image_fixtures import stripes, stripes_with_squares
from torchvision import models
from torchvision.transforms import functional as TF

from harness.errors import CheckpointError, HarnessError
from harness.methods import get
from harness.methods.base import EpochLog
from harness.methods.rd import RDSettings, ReverseDistillation, TrainingDiverged
from harness.methods.rd_maps import anomaly_map, gaussian_blur, gaussian_kernel1d, rd_loss

KEYS_DIR = Path(__file__).resolve().parent / "fixtures" / "rd4ad_checkpoint_keys"


def tiny(**overrides) -> RDSettings:
    settings = dict(backbone="resnet18", weights="none", image_size=64, epochs=4, batch_size=8, progress=False)
    settings.update(overrides)
    return RDSettings(**settings)


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # two shared cores: see tests/conftest.py


@pytest.fixture(scope="module")
def trained():
    rng = np.random.default_rng(0)
    train, test = stripes_with_squares(24, 12, 6, 64, rng)  # the first six test images are anomalous
    model = ReverseDistillation(tiny())
    seen: list[EpochLog] = []
    logs = model.fit(train, callbacks=[seen.append])
    return model, logs, seen, test


# ---------------------------------------------------------------------------------------------
# maps and loss


@pytest.mark.parametrize("shape", [(16, 16), (7, 5), (1, 1), (40, 64)])
def test_gaussian_matches_scipy_reflect(shape):
    rng = np.random.default_rng(sum(shape))
    maps = (rng.random((3, *shape)) * 3).astype(np.float32)
    expected = np.stack([scipy.ndimage.gaussian_filter(m.astype(np.float64), sigma=4) for m in maps])
    got = gaussian_blur(torch.from_numpy(maps), sigma=4.0).numpy()
    assert got.dtype == np.float32 and got.shape == maps.shape
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)


def test_gaussian_kernel_is_scipys_33_taps():
    kernel = gaussian_kernel1d(4.0)
    assert kernel.numel() == 33
    impulse = np.zeros(65)
    impulse[32] = 1.0
    np.testing.assert_allclose(kernel.numpy(), scipy.ndimage.gaussian_filter1d(impulse, 4)[16:49], atol=1e-12)


def test_loss_is_global_flattened_cosine_summed_over_scales():
    gen = torch.Generator().manual_seed(0)
    shapes = [(3, 4, 6, 6), (3, 8, 3, 3), (3, 16, 2, 2)]
    teacher = [torch.randn(s, generator=gen) for s in shapes]
    student = [t + torch.randn(t.shape, generator=gen) for t in teacher]
    expected = 0.0
    for t, s in zip(teacher, student, strict=False):
        a, b = t.reshape(3, -1).double().numpy(), s.reshape(3, -1).double().numpy()
        cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
        expected += np.mean(1 - cos)
    assert rd_loss(teacher, student).item() == pytest.approx(expected, rel=1e-5)
    assert rd_loss(teacher, [t.clone() for t in teacher]).item() == pytest.approx(0.0, abs=1e-5)


def bilinear_aligned(maps: np.ndarray, size: int) -> np.ndarray:
    """Reference bilinear resize of (N, h, h) maps with align_corners=True: output o samples o*(h-1)/(size-1)."""
    h = maps.shape[-1]
    src = np.arange(size) * (h - 1) / (size - 1)
    low = np.minimum(np.floor(src).astype(int), h - 2)
    frac = src - low
    rows = maps[:, low, :] * (1 - frac)[None, :, None] + maps[:, low + 1, :] * frac[None, :, None]
    return rows[:, :, low] * (1 - frac)[None, None, :] + rows[:, :, low + 1] * frac[None, None, :]


def test_anomaly_map_per_position_cosine_upsampled_with_aligned_corners():
    gen = torch.Generator().manual_seed(1)
    teacher = [torch.randn(2, c, h, h, generator=gen) for c, h in ((4, 8), (8, 4), (16, 2))]
    student = [torch.randn(t.shape, generator=gen) for t in teacher]
    per_scale = []
    for t, s in zip(teacher, student, strict=False):
        a, b = t.double().numpy(), s.double().numpy()
        per_scale.append(1 - (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)))
    upsampled = [bilinear_aligned(p, 30) for p in per_scale]
    added = anomaly_map(teacher, student, (30, 30), mode="add").numpy()
    multiplied = anomaly_map(teacher, student, (30, 30), mode="mul").numpy()
    assert added.shape == (2, 30, 30) and added.dtype == np.float32
    np.testing.assert_allclose(added, sum(upsampled), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(multiplied, np.prod(upsampled, axis=0), rtol=1e-5, atol=1e-6)
    # at the input size of the finest scale, that scale is not interpolated at all
    only = anomaly_map(teacher[:1], student[:1], (8, 8)).numpy()
    np.testing.assert_allclose(only, per_scale[0], rtol=1e-5)


# ---------------------------------------------------------------------------------------------
# training and inference


def test_registry_and_settings():
    assert get("rd") is ReverseDistillation and ReverseDistillation.Settings is RDSettings
    defaults = RDSettings()
    assert (defaults.backbone, defaults.weights, defaults.image_size, defaults.epochs, defaults.batch_size) == (
        "wide_resnet50_2",
        "imagenet",
        256,
        200,
        16,
    )
    assert (defaults.lr, tuple(defaults.betas), defaults.seed, defaults.sigma, defaults.map_mode) == (
        0.005,
        (0.5, 0.999),
        111,
        4.0,
        "add",
    )
    with pytest.raises(HarnessError, match="backbone"):
        ReverseDistillation(tiny(backbone="vgg16"))
    with pytest.raises(HarnessError, match="precision"):
        ReverseDistillation(tiny(precision="fp8"))


def test_training_lowers_loss_and_separates_anomalies(trained):
    model, logs, seen, test = trained
    assert [log.epoch for log in logs] == [1, 2, 3, 4] and seen == logs
    assert all(np.isfinite(log.loss) and log.epochs == 4 for log in logs)
    assert logs[-1].loss < 0.7 * logs[0].loss
    scores, maps = model.predict(test)
    assert scores.shape == (12,) and maps.shape == (12, 64, 64)
    assert scores.dtype == np.float32 and maps.dtype == np.float32
    np.testing.assert_array_equal(scores, maps.reshape(12, -1).max(1))
    assert scores[:6].mean() > scores[6:].mean() + 0.05


def test_batched_maps_equal_batch_of_one(trained):
    model, _, _, test = trained
    test = test[3:9]  # three anomalous, three normal
    scores, maps = model.predict(test)
    singles = [model.predict(test[i : i + 1]) for i in range(len(test))]
    # oneDNN's CPU kernels depend on the batch size: equal to float32 precision
    np.testing.assert_allclose(np.concatenate([m for _, m in singles]), maps, rtol=0, atol=1e-5)
    # deterministic mode makes them bitwise equal
    exact = ReverseDistillation(tiny(deterministic=True, predict_batch_size=4))
    exact.load_state_dict(model.state_dict())
    scores, maps = exact.predict(test)
    one_by_one = [exact.predict(test[i : i + 1]) for i in range(len(test))]
    np.testing.assert_array_equal(np.concatenate([m for _, m in one_by_one]), maps)
    np.testing.assert_array_equal(np.concatenate([s for s, _ in one_by_one]), scores)
    assert not torch.are_deterministic_algorithms_enabled() and torch.backends.mkldnn.enabled  # restored


@pytest.mark.parametrize("tf32", [False, True])
def test_numeric_flags_follow_the_settings_and_are_restored(tf32):
    cudnn, matmul = torch.backends.cudnn, torch.backends.cuda.matmul
    before = (cudnn.allow_tf32, matmul.allow_tf32, cudnn.deterministic, cudnn.benchmark)
    cudnn.allow_tf32 = matmul.allow_tf32 = not tf32  # the opposite of what the job asks for
    model = ReverseDistillation(tiny(deterministic=True, tf32=tf32))
    with model._determinism():
        assert cudnn.allow_tf32 is tf32 and matmul.allow_tf32 is tf32
        assert cudnn.deterministic and not cudnn.benchmark and torch.are_deterministic_algorithms_enabled()
    assert cudnn.allow_tf32 is (not tf32) and matmul.allow_tf32 is (not tf32)
    cudnn.allow_tf32, matmul.allow_tf32, cudnn.deterministic, cudnn.benchmark = before


def test_paper_profile_uses_the_official_gpu_settings():
    from harness.sweep.profiles import get as profile

    settings = RDSettings(**profile("paper").settings)
    assert settings.deterministic and not settings.tf32  # cudnn.deterministic=True, benchmark=False; fp32 is fp32


def test_cuda_numerics_are_described_and_recorded_in_the_machine_provenance(monkeypatch):
    # Runs without a GPU: the model is told its device is CUDA after construction, and provenance sees a
    # fake GPU, so what a CUDA job records (TF32, cuDNN switches) is checked on any machine.
    from harness.sweep import provenance

    model = ReverseDistillation(tiny(deterministic=True, tf32=False))
    monkeypatch.setattr(model, "device", torch.device("cuda"))
    numerics = model.describe()["cuda_numerics"]
    assert numerics == {"cudnn_deterministic": True, "cudnn_benchmark": False, "tf32": False}
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Fake GPU")
    recorded = provenance.machine("cuda:0", numerics)
    assert recorded["gpu"] == "Fake GPU" and {k: recorded[k] for k in numerics} == numerics
    assert provenance.machine("cpu", numerics)["gpu"] is None and "tf32" not in provenance.machine("cpu", numerics)


def test_official_checkpoint_round_trip_is_strict_and_exact(trained, tmp_path):
    model, _, _, test = trained
    path = tmp_path / "rd.pth"
    model.save_checkpoint(path)
    raw = torch.load(path, map_location="cpu", weights_only=True)
    assert set(raw) == {"bn", "decoder"}
    expected_keys = [line.split("\t")[0] for line in (KEYS_DIR / "resnet18_bn.tsv").read_text().splitlines()[1:]]
    assert list(raw["bn"]) == expected_keys
    # Same seed: with weights="none" the random teacher (not part of the official format) comes from
    # the seed; bottleneck and decoder are still untrained before loading.
    fresh = ReverseDistillation(tiny())
    before, _ = fresh.predict(test[:2])
    fresh.load_checkpoint(path)
    for part in ("bn", "decoder"):
        for key, value in model.state_dict()[part].items():
            assert torch.equal(fresh.state_dict()[part][key], value), key
    np.testing.assert_array_equal(fresh.predict(test)[1], model.predict(test)[1])
    assert not np.array_equal(before, fresh.predict(test[:2])[0])


def test_inputs_are_normalised_like_torchvision():
    model = ReverseDistillation(tiny())
    image = np.random.default_rng(3).integers(0, 256, (1, 64, 64, 3), dtype=np.uint8)
    expected = TF.normalize(TF.to_tensor(image[0]), [0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
    assert torch.equal(model._to_tensor(image)[0], expected)
    with pytest.raises(HarnessError, match="uint8"):
        model.predict(image.astype(np.float32))
    with pytest.raises(HarnessError, match="multiples of 32"):
        model.predict(image[:, :48])


def test_non_finite_loss_stops_training_naming_the_epoch(monkeypatch):
    import harness.methods.rd as rd_module

    calls = {"n": 0}

    def poisoned(teacher, student):
        calls["n"] += 1
        loss = rd_loss(teacher, student)
        return loss * float("nan") if calls["n"] == 3 else loss

    monkeypatch.setattr(rd_module, "rd_loss", poisoned)
    model = ReverseDistillation(tiny(epochs=3, batch_size=2))
    images = stripes(4, 64, np.random.default_rng(0))  # two steps per epoch: call 3 is epoch 2
    with pytest.raises(TrainingDiverged, match=r"epoch 2/3") as error:
        model.fit(images)
    assert isinstance(error.value, RuntimeError)


def test_cpu_runs_fp16_as_fp32_and_describe_records_random_weights():
    model = ReverseDistillation(tiny(precision="fp16", device="cpu"))
    info = model.describe()
    assert model.precision == "fp32" and info["precision"] == "fp32"
    assert info["backbone"] == "resnet18" and info["weights"] == "none"
    assert info["weights_sha256"] is None and info["comparable_to_published"] is False
    assert info["parameters"]["bottleneck"] == 12_205_312 and info["parameters"]["decoder"] == 3_703_168
    if not torch.cuda.is_available():
        with pytest.raises(HarnessError, match="CUDA is not available"):
            ReverseDistillation(tiny(device="cuda"))


# ---------------------------------------------------------------------------------------------
# weights and checkpoint errors


def test_missing_imagenet_weights_fail_at_construction(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))
    with pytest.raises(CheckpointError) as error:
        ReverseDistillation(tiny(weights="imagenet"))
    message = str(error.value)
    assert "resnet18-f37072fd.pth" in message
    assert str(tmp_path / "empty" / "hub" / "checkpoints") in message
    assert "--weights PATH" in message and "\n" not in message


def test_corrupt_imagenet_file_is_rejected_by_its_hash(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    folder = tmp_path / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    torch.save(models.resnet18(weights=None).state_dict(), folder / "resnet18-f37072fd.pth")
    with pytest.raises(CheckpointError, match="sha256"):
        ReverseDistillation(tiny(weights="imagenet"))


def test_teacher_weights_from_a_file(tmp_path):
    torch.manual_seed(7)
    reference = models.resnet18(weights=None)
    path = tmp_path / "teacher.pth"
    torch.save(reference.state_dict(), path)
    model = ReverseDistillation(tiny(weights=str(path)))
    assert torch.equal(model.teacher.layer3[1].conv2.weight, reference.layer3[1].conv2.weight)
    assert torch.equal(model.teacher.bn1.running_var, reference.bn1.running_var)
    info = model.describe()
    assert info["weights"] == str(path) and info["weights_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert info["comparable_to_published"] is False
    with pytest.raises(CheckpointError, match="layer1.2.conv1.weight"):  # resnet18 file for a resnet34 teacher
        ReverseDistillation(tiny(backbone="resnet34", weights=str(path)))


def test_wrong_backbone_checkpoint_names_keys_and_backbone(trained, tmp_path):
    model = trained[0]
    path = tmp_path / "r18.pth"
    model.save_checkpoint(path)
    with pytest.raises(CheckpointError) as error:
        ReverseDistillation(tiny(backbone="resnet34")).load_checkpoint(path)
    message = str(error.value)
    assert str(path) in message and "backbone resnet18" in message
    assert "84 missing keys" in message and "layer1.2.conv1.weight" in message and "\n" not in message

    state = model.state_dict()
    state["bn"]["conv1.weight"] = torch.zeros(1, 2, 3, 3)
    state["decoder"]["extra.weight"] = torch.zeros(1)
    with pytest.raises(CheckpointError) as error:
        ReverseDistillation(tiny()).load_state_dict(state)
    message = str(error.value)
    assert "conv1.weight [1, 2, 3, 3] in file vs [128, 64, 3, 3] in model" in message
    assert "1 unexpected keys (extra.weight)" in message


@pytest.mark.parametrize("content", [b"not a checkpoint at all", b"PK\x03\x04" + bytes(64), None])
def test_unreadable_checkpoint_names_the_file(tmp_path, content):
    path = tmp_path / "broken.pth"
    if content is not None:
        path.write_bytes(content)
    model = ReverseDistillation(tiny())
    with pytest.raises(CheckpointError, match="broken.pth") as error:
        model.load_checkpoint(path)
    assert "\n" not in str(error.value)
    torch.save({"state_dict": {}}, path)
    with pytest.raises(CheckpointError, match="'bn' and 'decoder'"):
        model.load_checkpoint(path)
