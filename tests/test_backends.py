"""Backends: local processes and a real local dask cluster write the same records as serial; --job-timeout."""

import json
import time

import pytest

from sweep_fixtures import FAST, metric_values, records, run_in_process, serial_reference

IDENTITY = ("job_id", "dataset", "category", "method", "profile", "seed", "metrics")


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    return serial_reference(tmp_path_factory)


def _same_records(run, expected_run) -> None:
    found, expected = records(run), records(expected_run)
    assert set(found) == set(expected) == {"amber", "slate"}
    for category, record in expected.items():
        for key in IDENTITY[:-1]:
            assert found[category][key] == record[key], (category, key)
        assert metric_values(found[category]) == metric_values(record), category
        assert found[category]["data"]["fingerprint"] == record["data"]["fingerprint"]
        assert (run / "jobs" / record["job_id"] / "predictions.npz").is_file()
        assert (run / "jobs" / record["job_id"] / "log.txt").read_text().count("epoch 1/1") == 1


def test_dask_local_cluster_writes_the_same_records_as_serial(tmp_path, reference, capsys):
    pytest.importorskip("distributed", reason='the dask backend needs dask.distributed (pip install -e ".[dask]")')
    data, serial_run = reference
    out = tmp_path / "run"
    assert run_in_process("run", *FAST, "--root", str(data), "--backend", "dask", "--jobs", "2", "--out", str(out)) == 0
    _same_records(out, serial_run)
    workers = {r["provenance"]["worker"] for r in records(out).values()}
    assert all(w.startswith("tcp://") for w in workers)
    assert {r["provenance"]["backend"] for r in records(out).values()} == {"dask"}
    assert "2 job(s) run, 0 already done, 0 failed" in capsys.readouterr().out


def test_local_process_pool_writes_the_same_records_as_serial(tmp_path, reference):
    data, serial_run = reference
    out = tmp_path / "run"
    assert (
        run_in_process("run", *FAST, "--root", str(data), "--backend", "local", "--jobs", "2", "--out", str(out)) == 0
    )
    _same_records(out, serial_run)
    found = records(out)
    assert {r["provenance"]["backend"] for r in found.values()} == {"local"}
    assert len({r["provenance"]["pid"] for r in found.values()}) == 2  # one process per job
    assert all(r["settings"]["progress"] is False for r in found.values())  # no interleaved epoch bars


def test_job_timeout_kills_the_job_and_marks_it_failed(tmp_path, reference, capsys):
    data, _ = reference
    out = tmp_path / "run"
    started = time.monotonic()
    # 300 epochs would take minutes; the job gets 2 s
    code = run_in_process(
        "run",
        *FAST,
        "--epochs",
        "300",
        "--root",
        str(data),
        "--categories",
        "amber",
        "--job-timeout",
        "2",
        "--out",
        str(out),
    )
    assert code == 1
    assert time.monotonic() - started < 90
    job = next((out / "jobs").iterdir())
    failure = json.loads((job / "failure.json").read_text())
    assert failure["status"] == "timeout" and "--job-timeout" in failure["message"]
    assert not (job / "record.json").exists()
    log = (job / "log.txt").read_text()
    assert log.startswith(time.strftime("%Y-")) and "TIMEOUT" in log
    assert "FAILED (timeout)" in capsys.readouterr().out


def test_a_pinned_gpu_is_counted_through_the_callers_visible_devices(monkeypatch):
    from harness.errors import HarnessError
    from harness.sweep.backends import visible_device

    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert visible_device(1) == "1"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")  # --gpus 0,1 then means physical GPUs 3 and 5
    assert (visible_device(0), visible_device(1)) == ("3", "5")
    with pytest.raises(HarnessError, match="sees only 2 GPU"):
        visible_device(2)
