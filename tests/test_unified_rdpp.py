"""The unified protocol with RD++ and with per-category profile settings: rdpp-paper's epochs refused in one
line (or made one by a flag), RD's schedule and clipping in RD++'s trainer, one RD++ model for two
categories, the estimate's refusal, and the failing step named in either job path."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from harness.bench.estimate import estimate_sweep, unified_epochs
from harness.errors import HarnessError
from harness.methods.rdpp import RDPPSettings, ReverseDistillationPlusPlus
from harness.sweep.job import compute_job, failure_message
from harness.sweep.plan import UNIFIED, Sweep

from sweep_fixtures import make_dataset

TINY = {
    "backbone": "resnet18",
    "weights": "none",
    "image_size": 64,
    "epochs": 1,
    "batch_size": 6,
    "progress": False,
    "ssot": False,
}


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # two shared cores: see tests/conftest.py


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("unified-rdpp") / "data", categories=("amber", "slate"))


# ---- planning: per-category settings ------------------------------------------------------------


def test_unified_refuses_per_category_epochs_in_one_line_and_a_flag_makes_them_one():
    with pytest.raises(HarnessError) as refused:
        Sweep(dataset="mvtec", profile="rdpp-paper", root="/nonexistent", protocol="unified").resolve()
    message = str(refused.value)
    assert "\n" not in message and "the unified protocol trains one model for all categories" in message
    assert "epochs 200 for bottle but 240 for cable" in message and "--epochs N" in message
    assert "--protocol single" in message
    # --epochs wins over every category's value: one model, one count
    forced = Sweep(
        dataset="mvtec", profile="rdpp-paper", root="/nonexistent", protocol="unified", overrides={"epochs": 3}
    ).resolve()
    (job,) = forced.jobs
    assert (
        job.protocol == UNIFIED and job.method == "rdpp" and job.settings["epochs"] == 3 and len(job.categories) == 15
    )
    # categories that share their value need no flag
    shared = Sweep(
        dataset="mvtec", profile="rdpp-paper", root="/nonexistent", protocol="unified", categories=("carpet", "leather")
    ).resolve()
    assert shared.jobs[0].settings["epochs"] == 10


def test_bench_estimate_refuses_the_same_profiles():
    counts = {"carpet": (280, 117), "bottle": (209, 83)}
    with pytest.raises(
        HarnessError, match="different epochs \\(carpet: 10, bottle: 200\\); set one count with --epochs N"
    ):
        estimate_sweep(
            counts,
            epochs=200,
            seeds=1,
            cache_used=False,
            train={"uncached": {"images_per_s": 2.0}},
            infer=None,
            data=None,
            protocol="unified",
            category_epochs={"carpet": 10},
        )
    assert unified_epochs({"carpet": (1, 1), "leather": (1, 1)}, 200, {"carpet": 10, "leather": 10}) == 10
    same = estimate_sweep(
        {"carpet": (100, 1), "leather": (50, 1)},
        epochs=200,
        seeds=1,
        cache_used=False,
        train={"uncached": {"images_per_s": 2.0}},
        infer=None,
        data=None,
        protocol="unified",
        category_epochs={"carpet": 10, "leather": 10},
    )
    assert same["epochs"] == 10 and same["unified"]["train_s"] == 10 * 150 / 2.0 and "category_epochs" not in same


# ---- RD++ with RD's optional training settings ---------------------------------------------------


def test_rdpp_trainer_follows_the_step_schedule_and_clips_all_trained_parameters(monkeypatch):
    images = np.random.default_rng(0).integers(0, 255, (8, 64, 64, 3), dtype=np.uint8)
    model = ReverseDistillationPlusPlus(
        RDPPSettings(**(TINY | {"epochs": 10, "lr_schedule": "step", "grad_clip_norm": 1e-3, "batch_size": 4}))
    )
    assert model.learning_rate(8) == 0.005 and model.learning_rate(9) == pytest.approx(0.0005)
    seen = []
    original = torch.nn.utils.clip_grad_norm_

    def spy(params, max_norm, *args, **kwargs):
        params = list(params)
        total = original(params, max_norm, *args, **kwargs)
        after = torch.linalg.vector_norm(
            torch.stack([torch.linalg.vector_norm(p.grad) for p in params if p.grad is not None])
        )
        seen.append((len(params), max_norm, float(after)))
        return total

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", spy)
    with model.trainer(images) as trainer:
        trainer.set_learning_rate(model.learning_rate(9))  # both optimisers by the same factor
        proj_opt, distill_opt = trainer.optimizers
        assert proj_opt.param_groups[0]["lr"] == pytest.approx(0.0001)
        assert distill_opt.param_groups[0]["lr"] == pytest.approx(0.0005)
        trainer.begin_epoch()
        trainer.step(np.arange(0, 4))
        assert not seen  # gradients of 2 batches are summed before a step: no clipping yet
        trainer.step(np.arange(4, 8))
    trained = sum(1 for module in (model.proj, model.bottleneck, model.decoder) for _ in module.parameters())
    # once per optimiser step, over the projection, bottleneck and decoder together, to the given norm
    assert [(n, limit) for n, limit, _ in seen] == [(trained, 1e-3)] and seen[0][2] <= 1e-3 * 1.001


# ---- one RD++ model for two categories -----------------------------------------------------------


def test_unified_rdpp_job_trains_one_model_and_writes_a_record_per_category(data):
    resolved = Sweep(
        dataset="folder",
        root=str(data),
        profile="rdpp-demo",
        protocol="unified",
        overrides=TINY,
        metrics=("image_auroc",),
    ).resolve()
    (job,) = resolved.jobs
    assert job.method == "rdpp" and job.categories == ("amber", "slate")
    result = compute_job(job)
    records = [record for record, _ in result.parts]
    assert [r["category"] for r in records] == ["amber", "slate"]
    assert {r["method"] for r in records} == {"rdpp"} and {r["protocol"] for r in records} == {"unified"}
    assert records[0]["unified"]["n_train"] == 24 and records[0]["history"] == records[1]["history"]
    assert all(0.0 <= r["metrics"]["image_auroc"]["value"] <= 1.0 for r in records)


def test_the_failing_step_is_named_in_either_job_path(data, monkeypatch):
    def fit(self, images, callbacks=()):
        raise MemoryError()

    monkeypatch.setattr(ReverseDistillationPlusPlus, "fit", fit)
    for protocol in ("single", "unified"):
        (job, *_) = (
            Sweep(dataset="folder", root=str(data), profile="rdpp-demo", protocol=protocol, overrides=TINY)
            .resolve()
            .jobs
        )
        with pytest.raises(MemoryError) as error:
            compute_job(job)
        message = failure_message(error.value, job)
        assert "out of memory (RAM) while training at image_size 64, batch_size 6" in message, (protocol, message)

    def build(self, settings=None):
        raise MemoryError()

    monkeypatch.setattr(ReverseDistillationPlusPlus, "__init__", build)
    with pytest.raises(MemoryError) as error:
        compute_job(job)
    assert "out of memory (RAM) while building the model" in failure_message(error.value, job)
