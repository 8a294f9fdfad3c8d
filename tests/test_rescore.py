"""`rescore`: metrics recomputed from stored predictions, records rewritten, nothing trained."""

import json

import pytest

from harness.cli import main
from harness.metrics import evaluate
from harness.report.rescore import rescore
from harness.store import load_predictions, read_json

from report_fixtures import plot_run


@pytest.fixture
def run(tmp_path):
    return plot_run(tmp_path, categories=("disc",), seeds=(0, 1), size=16, images_on_disk=False)


def _record(run, seed):
    return next(run.glob(f"jobs/disc-s{seed}-*/record.json"))


def test_a_tampered_value_is_restored_and_the_rest_kept(run, capsys):
    path = _record(run, 1)
    original = read_json(path)
    tampered = json.loads(json.dumps(original))
    tampered["metrics"]["image_auroc"]["value"] = 0.123
    del tampered["metrics"]["au_pro"]
    path.write_text(json.dumps(tampered))
    untouched = _record(run, 0).read_text()

    assert main(["rescore", str(run), "--metrics", "image_auroc,au_pro"]) == 0
    out = capsys.readouterr().out
    assert "| disc-s1-" in out and "0.123000" in out and "au_pro" in out
    assert "2 value(s) changed or added in 1 record(s)" in out

    restored = read_json(path)
    assert restored["metrics"] == original["metrics"]  # every value back, definitions included
    assert restored["rescored"]["metrics"] == ["image_auroc", "au_pro"]
    assert {k: v for k, v in restored.items() if k != "rescored"} == original
    assert _record(run, 0).read_text() == untouched  # a record whose values did not change is not rewritten
    rows = (run / "results.csv").read_text().splitlines()
    assert "0.123" not in "\n".join(rows) and len(rows) == 3


def test_rescore_without_changes_changes_nothing(run):
    before = {p: p.read_text() for p in run.glob("jobs/*/record.json")}
    assert rescore(run) == (2, [])
    assert {p: p.read_text() for p in run.glob("jobs/*/record.json")} == before


def test_missing_predictions_fail_before_any_record_is_rewritten(run, capsys):
    _record(run, 1).with_name("predictions.npz").unlink()
    path = _record(run, 0)
    record = read_json(path)
    record["metrics"]["image_auroc"]["value"] = 0.5
    path.write_text(json.dumps(record))
    assert main(["rescore", str(run)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no predictions.npz for job(s) disc-s1-" in err
    assert read_json(path)["metrics"]["image_auroc"]["value"] == 0.5


@pytest.mark.parametrize(
    "args, message",
    [
        (["--metrics", "pixel_aucroc"], "unknown metric 'pixel_aucroc'; known metrics: image_auroc"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(run, capsys, args, message):
    assert main(["rescore", str(run), *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err


def test_a_folder_without_finished_jobs_is_one_line(tmp_path, capsys):
    assert main(["rescore", str(tmp_path)]) == 2
    assert (
        capsys.readouterr().err == f"error: {tmp_path}: no finished jobs (no jobs/*/record.json); "
        "is this a run folder of `python -m harness run`?\n"
    )


def test_a_trained_job_rescores_to_exactly_its_recorded_values(tmp_path):
    from harness.metrics import METRICS

    from sweep_fixtures import FAST, make_dataset, run_in_process

    data = make_dataset(tmp_path / "data", categories=("amber",))
    out = tmp_path / "run"
    assert run_in_process("run", *FAST, "--root", str(data), "--out", str(out), "--metrics", ",".join(METRICS)) == 0
    recorded = read_json(next(out.glob("jobs/*/record.json")))["metrics"]
    assert rescore(out) == (1, [])
    rescored = read_json(next(out.glob("jobs/*/record.json")))
    assert "rescored" not in rescored  # nothing changed, so the record was not rewritten
    predictions = load_predictions(next(out.glob("jobs/*/predictions.npz")))
    values = evaluate(
        predictions["scores"], predictions["labels"], predictions["maps"], predictions["masks"], names=tuple(METRICS)
    )
    assert {name: value.to_dict() for name, value in values.items()} == recorded  # to the last bit


def test_a_run_with_float16_maps_is_rescored_and_says_so(run):
    import numpy as np

    path = _record(run, 0).with_name("predictions.npz")
    with np.load(path) as stored:
        arrays = {key: stored[key] for key in stored.files}
    np.savez_compressed(path, **(arrays | {"maps": arrays["maps"].astype(np.float16)}))  # as older runs stored them
    rescore(run, ["pixel_auroc", "au_pro"])
    record = read_json(_record(run, 0))
    assert record["rescored"]["from"] == "predictions.npz (float16 maps, float32 scores)"


def test_a_run_folder_in_use_is_not_rescored(run, capsys):
    from harness.store import RunStore

    path = _record(run, 0)
    record = read_json(path)
    record["metrics"]["image_auroc"]["value"] = 0.5
    path.write_text(json.dumps(record))
    before = path.read_text()
    with RunStore(run).locked():  # as a `run` still writing the folder holds it
        assert main(["rescore", str(run)]) == 2
    assert "in use by another run" in capsys.readouterr().err
    assert path.read_text() == before
    assert main(["rescore", str(run)]) == 0 and read_json(path)["metrics"]["image_auroc"]["value"] != 0.5
