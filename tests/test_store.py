import json

import numpy as np
import pytest

from harness.errors import HarnessError
from harness.store import RunStore, load_predictions, pack_predictions, read_json, write_json


def test_predictions_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    maps = rng.random((3, 8, 8)).astype(np.float32)
    masks = rng.random((3, 8, 8)) > 0.7
    packed = pack_predictions(maps.max((1, 2)), [0, 1, 1], maps, masks, ["a.png", "b.png", "c.png"], ["good", "x", "y"])
    store = RunStore(tmp_path / "run")
    store.prepare({"sweep": {}})
    store.write_result("job", {"job_id": "job", "category": "c", "metrics": {"m": {"value": 0.5}}}, packed)
    loaded = load_predictions(store.job_dir("job") / "predictions.npz")
    assert np.array_equal(loaded["masks"], masks)
    assert loaded["maps"].dtype == np.float32 and np.array_equal(loaded["maps"], maps)  # stored as evaluated
    assert list(loaded["paths"]) == ["a.png", "b.png", "c.png"]
    assert store.is_done("job")
    csv_text = store.write_results_csv().read_text().splitlines()
    assert csv_text[0].startswith("dataset,category,method,profile,seed,job_id,m")
    assert ",0.5," in csv_text[1]


def test_float16_maps_of_older_runs_load_as_float32(tmp_path):
    maps = np.random.default_rng(1).random((2, 4, 4)).astype(np.float16)
    packed = pack_predictions([0.1, 0.2], [0, 1], maps, None, ["a", "b"], ["good", "x"])
    np.savez(tmp_path / "p.npz", **packed)
    loaded = load_predictions(tmp_path / "p.npz")
    assert loaded["maps_stored_as"] == "float16" and loaded["maps"].dtype == np.float32
    assert np.array_equal(loaded["maps"], maps.astype(np.float32))


def test_no_masks_round_trip(tmp_path):
    packed = pack_predictions([0.1, 0.2], [0, 1], np.zeros((2, 4, 4)), None, ["a", "b"], ["good", "x"])
    np.savez(tmp_path / "p.npz", **packed)
    assert load_predictions(tmp_path / "p.npz")["masks"] is None


def test_job_is_done_only_when_record_exists(tmp_path):
    store = RunStore(tmp_path)
    store.write_config("job", {"x": 1})
    store.write_failure("job", {"message": "boom"})
    assert not store.is_done("job")
    assert store.records() == []


def test_json_is_written_atomically_and_nan_refused(tmp_path):
    path = tmp_path / "r.json"
    write_json(path, {"a": 1})
    with pytest.raises(ValueError):
        write_json(path, {"a": float("nan")})
    assert json.loads(path.read_text()) == {"a": 1}  # the old file survives a failed write
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]  # no temporary left behind


def test_corrupt_record_is_one_clear_error(tmp_path):
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(HarnessError, match="bad.json: not a valid JSON record"):
        read_json(tmp_path / "bad.json")
