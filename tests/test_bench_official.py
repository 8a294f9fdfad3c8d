"""The official-code yardstick of `bench official` computes what the project computes, the official way."""

from __future__ import annotations

import json

import numpy as np
import pytest

from harness import cli
from harness.methods.rd import RDSettings, ReverseDistillation
from harness.methods.rd_official import OfficialRD
from harness.methods.rd_phases import INFER_PHASES, TRAIN_PHASES

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # two shared cores: see tests/conftest.py


def test_official_step_and_test_loop_match_the_project_on_equal_weights():
    images = np.random.default_rng(1).integers(0, 256, (4, 64, 64, 3), dtype=np.uint8)
    model = ReverseDistillation(
        RDSettings(backbone="resnet18", weights="none", image_size=64, batch_size=4, progress=False, seed=3)
    )
    official = OfficialRD("resnet18", seed=3)
    # the official teacher has trainable parameters and a layer4 that the project never builds
    assert all(p.requires_grad for p in official.encoder.parameters()) and hasattr(official.encoder, "layer4")
    missing, _ = official.encoder.load_state_dict(model.teacher.state_dict(), strict=False)
    assert missing and all(key.startswith("layer4.") for key in missing)
    official.bn.load_state_dict(model.bottleneck.state_dict())
    official.decoder.load_state_dict(model.decoder.state_dict())

    with model.trainer(images, cache_teacher="off") as trainer:
        project_losses = [trainer.step(np.arange(4)) for _ in range(3)]
    official_losses = [official.train_step(images) for _ in range(3)]
    assert official_losses[2] < official_losses[0]
    # same steps, Adam included; the layouts differ (channels_last here), and Adam amplifies the rounding
    np.testing.assert_allclose(official_losses[0], project_losses[0], rtol=1e-5)
    np.testing.assert_allclose(official_losses, project_losses, rtol=1e-3)
    official.bn.load_state_dict(model.bottleneck.state_dict())  # the trained student, for equal maps
    official.decoder.load_state_dict(model.decoder.state_dict())
    scores, maps = model.predict(images)
    official_scores, official_maps = official.predict(images)
    assert official_maps.shape == maps.shape == (4, 64, 64)
    np.testing.assert_allclose(official_maps, maps, rtol=0, atol=1e-4)
    np.testing.assert_allclose(official_scores, scores, rtol=0, atol=1e-4)


def test_bench_official_prints_the_ratios_and_writes_them(tmp_path, capsys):
    path = tmp_path / "versus.json"
    argv = [
        "bench",
        "official",
        "--backbone",
        "resnet18",
        "--image-size",
        "32",
        "--batch-size",
        "4",
        "--steps",
        "1",
        "--threads",
        "1",
        "--json",
        str(path),
    ]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "side by side with the official code: resnet18 32 px, batch 4" in out and "inference (map + blur)" in out
    result = json.loads(path.read_text())["versus_official"]
    train, infer = result["train"], result["infer"]
    assert set(train["images_per_s"]) == {
        "official",
        "official_frozen_teacher",
        "project_teacher_on_the_fly",
        "project_cached_teacher",
    }
    for section in (train, infer):
        official = section["images_per_s"]["official"]
        assert all(
            section["ratio"][name] == pytest.approx(rate / official)
            for name, rate in section["images_per_s"].items()
            if name.startswith("project")
        )
    assert cli.main(argv[:2] + ["--method", "rdpp"]) == 2


def test_bench_phases_times_every_phase_of_a_step_and_of_predict(tmp_path, capsys):
    path = tmp_path / "phases.json"
    assert (
        cli.main(
            [
                "bench",
                "phases",
                "--backbone",
                "resnet18",
                "--image-size",
                "32",
                "--batch-size",
                "4",
                "--steps",
                "1",
                "--threads",
                "1",
                "--json",
                str(path),
            ]
        )
        == 0
    )
    result = json.loads(path.read_text())["phases"]
    assert list(result["train_s"]) == list(TRAIN_PHASES) and list(result["infer_s"]) == list(INFER_PHASES)
    assert all(s > 0 for s in [*result["train_s"].values(), *result["infer_s"].values()])
    assert "training step (teacher on the fly)" in capsys.readouterr().out
