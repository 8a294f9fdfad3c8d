import pytest

from harness.errors import HarnessError
from harness.sweep.plan import Sweep


def test_profile_then_overrides_resolve_into_jobs():
    resolved = Sweep(dataset="synthetic", categories=("disc", "weave"), seeds=(1, 2), overrides={"epochs": 3}).resolve()
    assert resolved.profile == "demo" and resolved.method == "rd"
    assert [(j.category, j.seed) for j in resolved.jobs] == [("disc", 1), ("disc", 2), ("weave", 1), ("weave", 2)]
    job = resolved.jobs[0]
    assert job.settings["epochs"] == 3  # the override wins
    assert job.settings["backbone"] == "resnet18" and job.settings["weights"] == "none"  # from the demo profile
    assert job.settings["seed"] == 1
    assert len({j.job_id for j in resolved.jobs}) == 4


def test_job_id_ignores_execution_only_settings_but_not_results_settings():
    base = Sweep(categories=("disc",)).resolve().jobs[0]
    on_gpu = Sweep(categories=("disc",), overrides={"device": "cuda"}).resolve().jobs[0]
    longer = Sweep(categories=("disc",), overrides={"epochs": 99}).resolve().jobs[0]
    assert base.job_id == on_gpu.job_id
    assert base.job_id != longer.job_id
    assert base.job_id.startswith("disc-s0-")


def test_same_sweep_same_run_name():
    assert Sweep(categories=("disc",)).resolve().name == Sweep(categories=("disc",)).resolve().name
    assert Sweep(categories=("disc",)).resolve().name != Sweep(categories=("tiles",)).resolve().name


@pytest.mark.parametrize(
    "sweep, message",
    [
        (Sweep(dataset="nope"), "unknown data set 'nope'"),
        (Sweep(categories=("bottle",)), "unknown category 'bottle'"),
        (Sweep(profile="fast"), "unknown profile 'fast'"),
        (Sweep(method="patchcore"), "unknown method 'patchcore'"),
        (Sweep(overrides={"learning_speed": 1}), "no setting"),
        (Sweep(metrics=("accuracy",)), "unknown metric 'accuracy'"),
        (Sweep(checkpoint="/nonexistent.pth"), "checkpoint file not found"),
    ],
)
def test_bad_sweeps_fail_before_running(sweep, message):
    with pytest.raises(HarnessError, match=message):
        sweep.resolve()
