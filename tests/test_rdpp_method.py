"""RD++ training and inference on tiny synthetic images (resnet18, random weights, CPU), checkpoints, profiles."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from image_fixtures import stripes, stripes_with_squares

from harness.errors import CheckpointError, HarnessError
from harness.methods import get
from harness.methods.rd import RDSettings, ReverseDistillation
from harness.methods.rdpp import RDPPSettings, ReverseDistillationPlusPlus, expected_projection_shapes
from harness.sweep import profiles
from harness.sweep.plan import Sweep


def tiny(**overrides) -> RDPPSettings:
    settings = {
        "backbone": "resnet18",
        "weights": "none",
        "image_size": 64,
        "epochs": 6,
        "batch_size": 4,
        "progress": False,
    }
    settings.update(overrides)
    return RDPPSettings(**settings)


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # two shared cores: see tests/conftest.py


@pytest.fixture(scope="module")
def trained():
    rng = np.random.default_rng(0)
    train, test = stripes_with_squares(16, 12, 6, 64, rng)  # the first six test images are anomalous
    model = ReverseDistillationPlusPlus(tiny())  # official settings: SSOT on, 2 batches per step
    logs = model.fit(train)
    return model, logs, test


def test_registry_and_official_defaults():
    assert get("rdpp") is ReverseDistillationPlusPlus
    s = RDPPSettings()
    assert (s.backbone, s.image_size, s.batch_size, s.lr, s.proj_lr, tuple(s.betas)) == (
        "wide_resnet50_2",
        256,
        16,
        0.005,
        0.001,
        (0.5, 0.999),
    )
    assert (s.proj_loss_weight, s.accumulation_steps, s.ssot, s.map_mode, s.sigma) == (0.2, 2, True, "add", 4.0)
    assert {
        "proj_lr",
        "proj_loss_weight",
        "accumulation_steps",
        "ssot",
        "epochs",
    } <= ReverseDistillationPlusPlus.training_settings
    for bad, message in (
        ({"proj_lr": 0}, "proj_lr"),
        ({"accumulation_steps": 0}, "accumulation_steps"),
        ({"ssot": "yes"}, "ssot"),
        ({"backbone": "vgg16"}, "backbone"),
    ):
        with pytest.raises(HarnessError, match=message):
            ReverseDistillationPlusPlus(tiny(**bad))


def test_training_lowers_loss_and_separates_anomalies(trained):
    model, logs, test = trained
    assert [log.epoch for log in logs] == [1, 2, 3, 4, 5, 6] and all(np.isfinite(log.loss) for log in logs)
    assert logs[-1].loss < 0.5 * logs[0].loss
    terms = model.loss_terms
    assert len(terms) == 6 and terms[-1]["distillation"] < terms[0]["distillation"]
    assert abs(terms[-1]["ssot"]) < 1e-6  # a batch against its own shuffle: zero, as in the official code
    # the logged total is distillation + 0.2 x projection
    assert logs[-1].loss == pytest.approx(terms[-1]["distillation"] + 0.2 * terms[-1]["projection"], rel=1e-5)
    scores, maps = model.predict(test)
    assert scores.shape == (12,) and maps.shape == (12, 64, 64) and maps.dtype == np.float32
    np.testing.assert_array_equal(scores, maps.reshape(12, -1).max(1))
    assert scores[:6].min() > scores[6:].max()  # every anomalous image above every normal one


def test_inference_compares_the_teacher_with_the_student_fed_through_the_projection(trained):
    model, _, test = trained
    from harness.methods.rd_maps import anomaly_map, gaussian_blur

    with torch.no_grad():
        x = model._to_tensor(test[:2])
        teacher = model.teacher(x)
        student = model.decoder(model.bottleneck(model.proj(teacher)))
        expected = gaussian_blur(anomaly_map(teacher, student, (64, 64)), 4.0).numpy()
    np.testing.assert_allclose(model.predict(test[:2])[1], expected, rtol=0, atol=1e-5)


def test_optimisers_step_every_second_batch_and_keep_a_leftover_gradient():
    images = stripes(12, 64, np.random.default_rng(1))  # 3 batches of 4 per epoch
    model = ReverseDistillationPlusPlus(tiny(epochs=1))
    with model.trainer(images) as trainer:
        proj_opt, distill_opt = trainer.optimizers
        assert [g["lr"] for g in proj_opt.param_groups] == [0.001] and distill_opt.param_groups[0]["lr"] == 0.005
        assert distill_opt.param_groups[0]["betas"] == (0.5, 0.999)
        counts = []
        trainer.begin_epoch()
        for index in (np.arange(0, 4), np.arange(4, 8), np.arange(8, 12)):
            trainer.step(index)
            counts.append(len(distill_opt.state))  # Adam keeps state once a parameter was stepped
        assert counts[0] == 0 and counts[1] > 0 and counts[2] == counts[1]
        step = next(iter(distill_opt.state.values()))["step"].item()
        assert step == 1  # one step for three batches
        # the third batch's gradient is still there: the official loop clears gradients only after a step
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.decoder.parameters())
        trainer.begin_epoch()  # the per-epoch counter restarts, the gradient stays
        trainer.step(np.arange(0, 4))
        assert next(iter(distill_opt.state.values()))["step"].item() == 1
        trainer.step(np.arange(4, 8))
        assert next(iter(distill_opt.state.values()))["step"].item() == 2


def test_official_checkpoint_round_trip_is_strict_and_exact(trained, tmp_path):
    model, _, test = trained
    path = tmp_path / "rdpp.pth"
    model.save_checkpoint(path)
    raw = torch.load(path, map_location="cpu", weights_only=True)
    assert list(raw) == ["proj", "decoder", "bn"]
    assert {k: tuple(v.shape) for k, v in raw["proj"].items()} == expected_projection_shapes("resnet18")
    fresh = ReverseDistillationPlusPlus(tiny())  # same seed: the random teacher is the same (not in the file)
    fresh.load_checkpoint(path)
    for part in ("proj", "bn", "decoder"):
        for key, value in model.state_dict()[part].items():
            assert torch.equal(fresh.state_dict()[part][key], value), (part, key)
    np.testing.assert_array_equal(fresh.predict(test)[1], model.predict(test)[1])


def test_checkpoints_of_the_other_method_or_backbone_are_refused(trained, tmp_path):
    model, _, _ = trained
    rdpp_file, rd_file = tmp_path / "rdpp.pth", tmp_path / "rd.pth"
    model.save_checkpoint(rdpp_file)
    rd = ReverseDistillation(RDSettings(backbone="resnet18", weights="none", image_size=64, progress=False))
    rd.save_checkpoint(rd_file)
    with pytest.raises(CheckpointError, match="RD\\+\\+ checkpoint .*method rdpp"):
        rd.load_checkpoint(rdpp_file)  # RD would otherwise drop the projection silently
    with pytest.raises(CheckpointError, match="RD4AD checkpoint .*method rd"):
        model.load_checkpoint(rd_file)
    state = model.state_dict()
    state["proj"].pop("proj_c.proj.9.bias")
    with pytest.raises(CheckpointError, match="proj: 1 missing keys \\(proj_c.proj.9.bias\\)"):
        model.load_state_dict(state)
    with pytest.raises(CheckpointError, match="backbone resnet18, not resnet34"):
        ReverseDistillationPlusPlus(tiny(backbone="resnet34")).load_checkpoint(rdpp_file)


def test_profiles_give_per_category_epochs_and_flags_still_win():
    paper = profiles.get("rdpp-paper")
    assert paper.method == "rdpp" and paper.seeds == (111,)
    resolved = Sweep(dataset="mvtec", profile="rdpp-paper", root="/nonexistent").resolve()
    epochs = {job.category: job.settings["epochs"] for job in resolved.jobs}
    assert resolved.method == "rdpp" and epochs["carpet"] == epochs["leather"] == 10
    assert epochs["grid"] == epochs["tile"] == 260 and epochs["wood"] == 100 and epochs["capsule"] == 300
    assert all(
        job.settings["backbone"] == "wide_resnet50_2" and job.settings["proj_lr"] == 0.001 for job in resolved.jobs
    )
    assert len({job.job_id for job in resolved.jobs}) == 15
    forced = Sweep(dataset="mvtec", profile="rdpp-paper", root="/nonexistent", overrides={"epochs": 3}).resolve()
    assert {job.settings["epochs"] for job in forced.jobs} == {3}
    demo = Sweep(dataset="synthetic", profile="rdpp-demo", categories=("disc",)).resolve()
    assert demo.method == "rdpp" and demo.jobs[0].settings["epochs"] == 10  # not listed: the profile's value
    assert demo.jobs[0].settings["backbone"] == "resnet18" and demo.jobs[0].settings["weights"] == "none"


def test_unknown_category_setting_is_caught(monkeypatch):
    bad = profiles.Profile("broken", "a profile with a typo", method="rdpp", category_settings={"disc": {"epoch": 3}})
    monkeypatch.setitem(profiles.PROFILES, "broken", bad)
    with pytest.raises(HarnessError, match="no setting\\(s\\) epoch"):
        Sweep(dataset="synthetic", profile="broken").resolve()


def test_sweep_estimate_uses_the_per_category_epochs():
    from harness.bench.estimate import estimate_sweep, format_estimate

    train = {"uncached": {"images_per_s": 2.0}}
    counts = {"carpet": (100, 10), "zipper": (100, 10), "other": (100, 10)}
    epochs = {c: o["epochs"] for c, o in profiles.get("rdpp-paper").category_settings.items() if c in counts}
    result = estimate_sweep(
        counts, epochs=200, seeds=1, cache_used=False, train=train, infer=None, data=None, category_epochs=epochs
    )
    assert {c: v["train_s"] for c, v in result["categories"].items()} == {
        "carpet": 10 * 100 / 2.0,
        "zipper": 300 * 100 / 2.0,
        "other": 200 * 100 / 2.0,
    }
    assert "300 images x 10-300 epochs per category" in format_estimate(result, "sweep estimate: test")
