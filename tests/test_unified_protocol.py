"""The unified (multi-class) protocol, planning and storing: one job per seed over every category, its
identity, its records (one per category, a job done iff all exist), ADer's RD training settings, the
profile, protocol notes in reports, and the sweep estimate. Nothing here trains more than a few steps;
the end-to-end runs are in test_unified_runs.py."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from harness.bench.estimate import estimate_sweep, format_estimate
from harness.errors import HarnessError
from harness.methods.base import ConcatenatedImages
from harness.methods.rd import RDSettings, ReverseDistillation
from harness.report.build import build_report
from harness.report.check import compared_settings, problems
from harness.report.records import finished_jobs
from harness.store import RunStore
from harness.sweep import profiles
from harness.sweep.job import JobResult, store_result
from harness.sweep.options import merge_options
from harness.sweep.plan import UNIFIED, Sweep
from harness.sweep.schedule import jobs_to_run, set_aside_changed_data

from report_fixtures import write_record
from sweep_fixtures import make_dataset

TINY = {"image_size": 64, "epochs": 1, "batch_size": 6, "progress": False}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("unified") / "data", categories=("amber", "slate", "moss"))


def _sweep(data, **kwargs) -> Sweep:
    return Sweep(dataset="folder", root=str(data), profile="demo", overrides=dict(TINY), **kwargs)


# ---- planning ------------------------------------------------------------------------------------


def test_unified_is_one_job_per_seed_whose_identity_has_the_protocol_categories_and_fingerprints(data):
    resolved = _sweep(data, protocol="unified", seeds=(0, 1)).resolve()
    assert [(j.category, j.seed, j.categories) for j in resolved.jobs] == [
        (UNIFIED, 0, ("amber", "moss", "slate")),
        (UNIFIED, 1, ("amber", "moss", "slate")),
    ]
    job = resolved.jobs[0]
    identity = job.identity()
    assert identity["protocol"] == "unified" and identity["categories"] == ["amber", "moss", "slate"]
    assert identity["data_fingerprints"] == resolved.data_fingerprints and all(identity["data_fingerprints"].values())
    assert "category" not in identity and "data_fingerprint" not in identity
    # one record folder per category, named like a single job's and sharing the job's digest
    assert job.job_id == f"unified-s0-{job.digest}"
    assert job.record_ids == tuple(f"{c}-s0-{job.digest}" for c in ("amber", "moss", "slate"))
    assert resolved.name.startswith("folder-rd-demo-unified-")
    # another set of categories, or other data of one category, make another job
    fewer = _sweep(data, protocol="unified", categories=("amber", "slate")).resolve().jobs[0]
    changed = dataclasses.replace(job, data_fingerprints=job.data_fingerprints | {"moss": "0" * 16})
    assert len({job.job_id, fewer.job_id, changed.job_id}) == 3
    # the single protocol is as before: one job per category and seed, no protocol in its identity
    single = _sweep(data).resolve()
    assert [j.category for j in single.jobs] == ["amber", "moss", "slate"]
    assert "protocol" not in single.jobs[0].identity() and single.jobs[0].record_ids == (single.jobs[0].job_id,)


def test_protocol_from_flags_sweep_files_and_the_profile(data, tmp_path):
    from harness.sweep.sweepfile import read_sweep_file

    path = tmp_path / "sweep.toml"
    path.write_text('dataset = "folder"\nprotocol = "unified"\n')
    assert read_sweep_file(path)["protocol"] == "unified"
    assert merge_options(read_sweep_file(path), {}).sweep().protocol == "unified"
    assert merge_options(read_sweep_file(path), {"protocol": "single"}).sweep().protocol == "single"  # flag wins
    with pytest.raises(HarnessError, match="unknown protocol 'multi'"):
        merge_options({"protocol": "multi"}, {})
    # the ADer profile trains one model for all categories unless told otherwise
    ader = Sweep(dataset="folder", root=str(data), profile="ader-rd").resolve()
    assert ader.protocol == "unified" and len(ader.jobs) == 1 and ader.jobs[0].seed == 42
    assert Sweep(dataset="folder", root=str(data), profile="ader-rd", protocol="single").resolve().protocol == "single"


def test_ader_profile_is_the_configuration_of_aders_rd():
    profile = profiles.get("ader-rd")
    settings = RDSettings(**profile.settings)
    assert (settings.backbone, settings.image_size, settings.epochs, settings.batch_size) == (
        "wide_resnet50_2",
        256,
        100,
        16,
    )
    assert (settings.lr, tuple(settings.betas)) == (0.005, (0.5, 0.999))
    assert (settings.lr_schedule, settings.lr_step_at, settings.lr_step_factor) == ("step", 0.8, 0.1)
    assert settings.grad_clip_norm == 5.0 and settings.drop_last is True and profile.seeds == (42,)
    assert "configs/benchmark/rd/rd_256_100e.py" in profile.description and "902937a7" in profile.description
    assert profiles.get("ader-rd-300ep").settings["epochs"] == 300


def test_the_new_training_settings_stay_out_of_existing_jobs(data):
    """At RD4AD's values (the defaults) the settings ADer needs are left out of a job, so job ids of sweeps
    made before they existed do not change; set, they are part of it."""
    plain = _sweep(data).resolve().jobs[0]
    assert not {"lr_schedule", "lr_step_at", "lr_step_factor", "grad_clip_norm", "drop_last"} & set(plain.settings)
    clipped = Sweep(
        dataset="folder", root=str(data), profile="demo", overrides=TINY | {"grad_clip_norm": 5.0}
    ).resolve()
    assert clipped.jobs[0].settings["grad_clip_norm"] == 5.0 and clipped.jobs[0].job_id != plain.job_id


# ---- RD: ADer's schedule, clipping and last batch -----------------------------------------------


def _model(**overrides) -> ReverseDistillation:
    return ReverseDistillation(
        RDSettings(**(dict(backbone="resnet18", weights="none", device="cpu") | TINY | overrides))
    )


def test_step_schedule_multiplies_the_rate_after_80_percent_of_the_epochs():
    model = _model(epochs=100, lr_schedule="step")
    rates = [model.learning_rate(epoch) for epoch in range(1, 101)]
    assert rates[:80] == [0.005] * 80 and rates[80:] == pytest.approx([0.0005] * 20)
    assert _model(epochs=100).learning_rate(100) == 0.005  # RD4AD: constant
    with pytest.raises(HarnessError, match="lr_schedule"):
        _model(lr_schedule="cosine")


def test_gradient_clipping_and_drop_last(monkeypatch):
    images = np.random.default_rng(0).integers(0, 255, (8, 64, 64, 3), dtype=np.uint8)
    model = _model(grad_clip_norm=1e-3, batch_size=3)
    with model.trainer(images) as trainer:
        trainer.step(np.arange(3))
        grads = [p.grad for group in trainer.optimizer.param_groups for p in group["params"] if p.grad is not None]
        assert torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads])) <= 1e-3 * 1.001

    from harness.methods import rd

    steps = []
    original = rd.Trainer.step
    monkeypatch.setattr(rd.Trainer, "step", lambda self, index: steps.append(len(index)) or original(self, index))
    _model(batch_size=3, epochs=1).fit(images)
    _model(batch_size=3, epochs=1, drop_last=True).fit(images)
    assert steps == [3, 3, 2, 3, 3]  # 8 images: the last batch of 2 is dropped with drop_last


def test_concatenated_images_index_like_one_array_without_copying_the_parts():
    rng = np.random.default_rng(1)
    parts = [rng.integers(0, 255, (n, 4, 4, 3), dtype=np.uint8) for n in (3, 1, 5)]
    joined, whole = ConcatenatedImages(parts), np.concatenate(parts)
    assert len(joined) == 9 and joined.shape == whole.shape and joined.parts[0] is parts[0]
    index = np.array([8, 0, 3, 4, 2, 3])
    assert np.array_equal(joined[index], whole[index]) and np.array_equal(joined[2:7], whole[2:7])
    assert joined.nbytes == whole.nbytes


def test_training_on_the_union_equals_training_on_one_array():
    rng = np.random.default_rng(2)
    parts = [rng.integers(0, 255, (n, 64, 64, 3), dtype=np.uint8) for n in (5, 4)]
    torch.set_num_threads(1)
    one = [e.loss for e in _model(epochs=2, cache_teacher="off").fit(np.concatenate(parts))]
    union = [e.loss for e in _model(epochs=2, cache_teacher="off").fit(ConcatenatedImages(parts))]
    assert one == union


# ---- store: a unified job is done iff all its records exist --------------------------------------


def _unified_result(job, values=(0.9, 0.8, 0.7)) -> JobResult:
    parts = []
    for (category, record_id), value in zip(zip(job.categories, job.record_ids, strict=False), values, strict=False):
        record = {
            "job_id": record_id,
            "dataset": "folder",
            "category": category,
            "method": "rd",
            "seed": job.seed,
            "protocol": "unified",
            "settings": job.settings,
            "unified": {"job_id": job.job_id, "categories": list(job.categories), "records": list(job.record_ids)},
            "metrics": {"image_auroc": {"value": value}},
            "data": {"fingerprint": job.data_fingerprints[category]},
        }
        parts.append((record, {"scores": np.zeros(2, np.float32)}))
    return JobResult({"job_id": job.job_id, "metrics": {}}, {}, None, parts)


def test_a_unified_job_killed_between_two_records_is_not_done_and_shows_nothing(data, tmp_path, monkeypatch):
    resolved = _sweep(data, protocol="unified").resolve()
    job = resolved.jobs[0]
    store = RunStore(tmp_path / "run")
    store.prepare({})
    from harness import store as store_module

    written = []
    original = store_module.write_json

    def die_after_first_record(path, record):
        if path.name == "record.json" and written:
            raise KeyboardInterrupt  # killed after the first category's record
        original(path, record)
        written.append(path)

    monkeypatch.setattr(store_module, "write_json", die_after_first_record)
    with pytest.raises(KeyboardInterrupt):
        store_result(store, _unified_result(job))
    monkeypatch.setattr(store_module, "write_json", original)
    assert len(written) == 1 and store.is_done(job.record_ids[0])
    assert store.records() == [] and jobs_to_run(resolved, store, rerun=False) == ([job], [])
    with pytest.raises(HarnessError, match="still incomplete"):
        finished_jobs(store.run_dir)

    store_result(store, _unified_result(job))  # the rerun writes all of them
    assert [r["category"] for r in store.records()] == sorted(job.categories)
    assert jobs_to_run(resolved, store, rerun=False) == ([], [job])
    assert "protocol" in store.write_results_csv().read_text().splitlines()[0]


def test_changed_data_of_one_category_set_aside_the_whole_unified_job(data, tmp_path):
    resolved = _sweep(data, protocol="unified").resolve()
    job = resolved.jobs[0]
    store = RunStore(tmp_path / "run")
    store.prepare({})
    from harness.sweep.schedule import _write_configs

    _write_configs(store, job)
    store_result(store, _unified_result(job))
    slate = dict(zip(job.categories, job.record_ids, strict=False))["slate"]
    assert json.loads((store.job_dir(slate) / "config.json").read_text())["unified_job"] == job.job_id
    # the same sweep planned on data where slate changed: every folder of the old job goes
    later = dataclasses.replace(
        resolved, jobs=[dataclasses.replace(job, data_fingerprints=job.data_fingerprints | {"slate": "f" * 16})]
    )
    changed = set_aside_changed_data(later, store)
    assert set(changed) == {"slate"} and changed["slate"][:2] == (job.data_fingerprints["slate"], "f" * 16)
    assert not (store.run_dir / "jobs").exists() or not any((store.run_dir / "jobs").iterdir())
    assert sorted(p.name for p in (store.run_dir / "superseded").iterdir()) == sorted([job.job_id, *job.record_ids])
    assert slate in {p.name for p in (store.run_dir / "superseded").iterdir()}


# ---- reports and check ---------------------------------------------------------------------------


def _visa_run(run, protocol: str):
    for category, value in (("candle", 0.9), ("pcb1", 0.85)):
        record = write_record(
            run, category, 42, {"image_auroc": value, "pixel_auroc": 0.97, "au_pro": 0.9}, dataset="visa"
        )
        record["protocol"] = protocol
        if protocol == "unified":
            record["unified"] = {"job_id": "unified-s42-x", "categories": ["candle", "pcb1"]}
        (run / "jobs" / record["job_id"] / "record.json").write_text(json.dumps(record))
    return run


def test_report_names_the_protocol_and_compares_like_for_like(tmp_path):
    unified, single = _visa_run(tmp_path / "u", "unified"), _visa_run(tmp_path / "s", "single")

    report = build_report([unified], "ader_visa_multiclass")
    notes, short = "\n".join(report.note_lines("full")), report.note_lines("short")
    assert "multi-class protocol" in report.sides[0].description
    assert "RD: multi-class protocol: one model per seed trained on the training images of its 2 categories" in notes
    assert "Every side follows the multi-class protocol." in notes and "Protocols differ" not in notes
    # a paper reader gets that the sides are like for like, not the multi-class reference's "not comparable to
    # single-class runs" (still in the full notes)
    assert "Every side follows the multi-class protocol." in short
    assert "ADer RD (multi-class) protocol: MULTI-CLASS setting" in notes
    assert not any("MULTI-CLASS setting" in line for line in short)

    # a single-class run beside the multi-class reference: the reference's own note, as before, and no other
    report = build_report([single], "ader_visa_multiclass")
    notes = "\n".join(report.note_lines("full"))
    assert "ADer RD (multi-class) protocol: MULTI-CLASS setting" in notes and "Protocols differ" not in notes
    assert "multi-class protocol:" not in notes
    assert any("MULTI-CLASS setting" in line and "not comparable" in line for line in report.note_lines("short"))

    # the reverse: a unified run beside a single-class reference (a run here) gets a note too, in the short notes;
    # the two runs of one method are named by their protocol
    report = build_report([unified], single)
    assert [side.tag for side in report.sides] == ["RD (multi-class)", "RD (single-class)"]
    expected = (
        "Protocols differ, not comparable: multi-class (one model for all categories) for RD (multi-class); "
        "single-class (one model per category) for RD (single-class)."
    )
    assert expected in report.note_lines("short") and expected in report.note_lines("full")
    assert not any("trained on the training images" in line for line in report.note_lines("short"))

    # a unified run alone: the short notes still say it is multi-class
    assert "Multi-class protocol: one model per seed for all 2 categories." in build_report([unified]).note_lines(
        "short"
    )


def test_check_compares_the_protocol_and_reads_older_baselines_as_single(tmp_path):
    unified = [
        json.loads(p.read_text()) for p in sorted(_visa_run(tmp_path / "u", "unified").glob("jobs/*/record.json"))
    ]
    assert compared_settings(unified)["protocol"] == "unified"
    baseline = {
        "values": {r["category"]: {"image_auroc": 0.9} for r in unified},
        "settings": {k: v for k, v in compared_settings(unified).items() if k != "protocol"},
    }
    assert problems(unified, baseline, ["image_auroc"]) == [
        "setting protocol differs: run 'unified', baseline 'single'"
    ]


def test_estimate_trains_once_over_all_categories_when_unified():
    train = {"uncached": {"images_per_s": 2.0}, "cached": {"images_per_s": 4.0, "teacher_images_per_s": 10.0}}
    counts = {"a": (100, 20), "b": (50, 10)}
    single = estimate_sweep(
        counts, epochs=10, seeds=1, cache_used=True, train=train, infer={"images_per_s": 5.0}, data=None
    )
    unified = estimate_sweep(
        counts,
        epochs=10,
        seeds=2,
        cache_used=True,
        train=train,
        infer={"images_per_s": 5.0},
        data=None,
        protocol="unified",
    )
    assert unified["unified"] == {"train_s": 2 * 10 * 150 / 4.0, "cache_s": 2 * 150 / 10.0}
    assert unified["categories"]["a"] == {"infer_s": 2 * 20 / 5.0, "total_s": 2 * 20 / 5.0}
    assert unified["totals"]["total_s"] == pytest.approx(2 * single["totals"]["total_s"])  # same work per seed
    assert "one model per seed trained on all 2 categories together" in format_estimate(unified, "sweep estimate")
