"""`run` checks its input before any job and before writing anything: the data set root of every adapter,
and a checkpoint against the model. Bad input is one line on stderr, exit 2 and no run folder."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from harness.cli import main
from harness.methods.rd_networks import OneClassBottleneck, StudentDecoder
from harness.sweep.plan import Sweep

from cli_fixtures import run_cli

ROOTED = ["mvtec", "visa", "brats", "brats_bmad", "cifar10", "mnist", "fashion_mnist", "folder"]
QUICK = ["--backbone", "resnet18", "--weights", "none", "--image-size", "64", "--epochs", "1"]


def harness(*args: str) -> subprocess.CompletedProcess:
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "harness", *args], capture_output=True, text=True, env=env, timeout=600
    )


def bad_root(tmp_path: Path, kind: str) -> Path:
    if kind == "missing":
        return tmp_path / "nowhere"
    path = tmp_path / "a-file"
    path.write_text("not a folder")
    return path


@pytest.mark.parametrize("kind", ["missing", "file"])
@pytest.mark.parametrize("dataset", ROOTED)
def test_bad_root_is_one_line_exit_2_before_anything_is_written(dataset, kind, tmp_path, capsys):
    root, out = bad_root(tmp_path, kind), tmp_path / "run"
    code = main(["run", "--dataset", dataset, "--root", str(root), "--out", str(out), *QUICK])
    err = capsys.readouterr().err
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and str(root) in err and "Traceback" not in err
    assert ("not a folder" if kind == "file" else "not found") in err
    assert not out.exists()


def test_synthetic_root_that_is_a_file(tmp_path, capsys):
    root, out = bad_root(tmp_path, "file"), tmp_path / "run"
    assert main(["run", "--root", str(root), "--out", str(out), *QUICK]) == 2
    assert f"{root}: not a folder" in capsys.readouterr().err and not out.exists()


@pytest.mark.parametrize(
    "dataset, layout",
    [
        ("cifar10", "no CIFAR-10 batches"),
        ("mnist", "train-images-idx3-ubyte[.gz] not found"),
        ("brats_bmad", "no BMAD Brain layout"),
        ("brats", "found 0 BraTS subjects"),
    ],
)
def test_root_of_another_data_set_is_caught_up_front(dataset, layout, tmp_path, capsys):
    """Data sets whose layout is the same for every category are checked as a whole before any job."""
    root, out = tmp_path / "empty", tmp_path / "run"
    root.mkdir()
    assert main(["run", "--dataset", dataset, "--root", str(root), "--out", str(out), *QUICK]) == 2
    err = capsys.readouterr().err
    assert layout in err and len(err.strip().splitlines()) == 1 and not out.exists()


def test_bad_root_end_to_end(tmp_path):
    out = tmp_path / "run"
    result = harness("run", "--dataset", "mvtec", "--root", str(tmp_path / "nowhere"), "--out", str(out), *QUICK)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.strip().startswith(f"error: {tmp_path / 'nowhere'}: data set root folder not found for mvtec")
    assert len(result.stderr.strip().splitlines()) == 1 and result.stdout == "" and not out.exists()


def official_checkpoint(path: Path, backbone: str) -> Path:
    torch.save(
        {"bn": OneClassBottleneck(backbone).state_dict(), "decoder": StudentDecoder(backbone).state_dict()}, path
    )
    return path


def test_checkpoint_of_another_backbone_is_one_line_exit_2(tmp_path):
    checkpoint, out = official_checkpoint(tmp_path / "rd18.pth", "resnet18"), tmp_path / "run"
    result = run_cli(  # in-process: refused before any job starts
        "run",
        "--categories",
        "disc,weave",
        "--checkpoint",
        str(checkpoint),
        "--out",
        str(out),
        "--backbone",
        "resnet34",
        "--image-size",
        "64",
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "RD checkpoint for backbone resnet18, not resnet34" in result.stderr and str(checkpoint) in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not out.exists()


def test_checkpoint_jobs_claim_no_training_and_ignore_training_settings(tmp_path):
    checkpoint = official_checkpoint(tmp_path / "rd18.pth", "resnet18")
    jobs = [
        Sweep(categories=("disc",), checkpoint=str(checkpoint), overrides={"epochs": epochs, "batch_size": 4})
        .resolve()
        .jobs[0]
        for epochs in (1, 200)
    ]
    assert jobs[0].job_id == jobs[1].job_id  # nothing is trained: the training settings change nothing
    assert not {"epochs", "batch_size", "lr", "betas"} & set(jobs[0].settings)
    assert jobs[0].settings["image_size"] == 64 and jobs[0].settings["backbone"] == "resnet18"
    trained = Sweep(categories=("disc",), overrides={"epochs": 1}).resolve().jobs[0]
    assert trained.settings["epochs"] == 1 and trained.job_id != jobs[0].job_id


def test_checkpoint_run_records_a_loaded_model(tmp_path):
    checkpoint, out = official_checkpoint(tmp_path / "rd18.pth", "resnet18"), tmp_path / "run"
    result = harness("run", "--categories", "disc", "--checkpoint", str(checkpoint), "--out", str(out), *QUICK)
    assert result.returncode == 0, result.stderr
    (record_path,) = out.glob("jobs/*/record.json")
    record = json.loads(record_path.read_text())
    assert "epochs" not in record["settings"] and record["history"] == []
    assert record["model"] == {
        "trained": False,
        "checkpoint": str(checkpoint),
        "checkpoint_sha256": hashlib.sha256(checkpoint.read_bytes()).hexdigest(),
    }
