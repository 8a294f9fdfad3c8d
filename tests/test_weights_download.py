"""ImageNet teacher weights: `run --weights imagenet` downloads a missing file once, in the main process
before any job, through torchvision's URL (here taken through HARNESS_MIRROR from a server on 127.0.0.1)
and its sha256-prefix check; offline, refused, corrupt and interrupted downloads leave no file."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import torch
from torchvision import models

from harness.errors import CheckpointError
from harness.methods.rd import RDSettings, ReverseDistillation
from harness.methods.rd_networks import is_teacher_key

from http_fixtures import Drop, FileServer, harness_cli, last_line, sha256
from sweep_fixtures import FAST, make_dataset

REAL = "resnet18-f37072fd.pth"  # torchvision's IMAGENET1K_V1 file name (sha256 prefix f37072fd)
QUICK = [*FAST, "--backbone", "resnet18", "--weights", "imagenet", "--categories", "amber"]


@pytest.fixture(scope="module")
def teacher_file() -> bytes:
    """A resnet18 teacher state_dict (stem and layer1..3, as the teacher reads it) with random weights."""
    torch.manual_seed(3)
    state = {k: v for k, v in models.resnet18(weights=None).state_dict().items() if is_teacher_key(k)}
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


@pytest.fixture
def setup(tmp_path):
    data = make_dataset(tmp_path / "data", categories=("amber",))
    cache = tmp_path / "torch" / "hub" / "checkpoints"
    env = {"TORCH_HOME": str(tmp_path / "torch")}
    return data, cache, env


def checkpoints(cache: Path) -> list[str]:
    return sorted(p.name for p in cache.iterdir()) if cache.is_dir() else []


def test_missing_weights_are_downloaded_once_before_the_jobs(tmp_path, setup, teacher_file):
    data, cache, env = setup
    name = f"resnet18-{sha256(teacher_file)[:8]}.pth"  # a file name carrying its own hash prefix, as torchvision's do
    tables = {"weights": {"resnet18": f"https://download.pytorch.org/models/{name}"}}
    with FileServer({f"/torchvision/{name}": teacher_file}) as server:
        env |= {"HARNESS_MIRROR": server.url}
        result = harness_cli(
            tmp_path,
            "run",
            *QUICK,
            "--root",
            str(data),
            "--seeds",
            "0,1",
            "--backend",
            "local",
            "--jobs",
            "2",
            "--out",
            str(tmp_path / "run"),
            env=env,
            tables=tables,
        )
        assert result.returncode == 0, result.stderr
        assert server.gets(f"/torchvision/{name}") == [None]  # once, for the whole sweep
    assert f"downloading ImageNet weights for resnet18: {server.url}/torchvision/{name}" in result.stderr
    assert checkpoints(cache) == [name] and (cache / name).read_bytes() == teacher_file
    records = [json.loads(p.read_text()) for p in (tmp_path / "run" / "jobs").glob("*/record.json")]
    assert len(records) == 2
    assert all(r["settings"]["weights"] == "imagenet" for r in records)
    assert sha256(teacher_file) in json.dumps(records[0])  # the file the jobs read, by its hash


@pytest.mark.parametrize("how", [["--offline"], "HARNESS_OFFLINE"])
def test_offline_keeps_the_one_line_message_and_asks_nothing(tmp_path, setup, how):
    data, cache, env = setup
    with FileServer({f"/torchvision/{REAL}": b"never asked for"}) as server:
        env |= {"HARNESS_MIRROR": server.url} | ({"HARNESS_OFFLINE": "1"} if how == "HARNESS_OFFLINE" else {})
        flags = how if isinstance(how, list) else []
        result = harness_cli(
            tmp_path, "run", *QUICK, *flags, "--root", str(data), "--out", str(tmp_path / "run"), env=env
        )
        assert server.requests == []
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    message = result.stderr.strip()
    assert message.startswith(
        f"error: ImageNet weights for resnet18 not found: expected torchvision's file {REAL} in {cache}"
    )
    assert "downloads are off (--offline or HARNESS_OFFLINE=1)" in message and "--weights PATH" in message
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("fault", ["corrupt", "interrupted", "refused"])
def test_a_failed_download_leaves_no_file_that_could_pass_for_the_weights(tmp_path, setup, teacher_file, fault):
    data, cache, env = setup
    files = {} if fault == "refused" else {f"/torchvision/{REAL}": teacher_file}  # not the real file: wrong sha256
    drops = {f"/torchvision/{REAL}": Drop(after=len(teacher_file) // 3)} if fault == "interrupted" else {}
    with FileServer(files, drops=drops) as server:
        env |= {"HARNESS_MIRROR": server.url}
        result = harness_cli(tmp_path, "run", *QUICK, "--root", str(data), "--out", str(tmp_path / "run"), env=env)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    message = last_line(result.stderr)
    if fault == "refused":
        assert message.startswith(
            f"error: cannot download ImageNet weights for resnet18 from {server.url}/torchvision/"
            f"{REAL} (HTTPError: HTTP Error 404"
        )
    else:
        assert message.startswith(
            f"error: the download of {REAL} from {server.url}/torchvision/{REAL} does not have "
            "the sha256 its name promises (f37072fd...)"
        )
    assert "nothing was kept" in message and "--weights PATH" in message
    assert checkpoints(cache) == []  # no final file, no temporary one
    assert not (tmp_path / "run").exists()


def test_only_a_process_that_permits_downloads_downloads(tmp_path, monkeypatch):
    """A job process (no permission; the CLI's main process has it) reports the missing file instead."""
    monkeypatch.delenv("HARNESS_OFFLINE")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setenv("HARNESS_MIRROR", "http://127.0.0.1:9")  # nothing listens there; never asked
    with pytest.raises(CheckpointError, match="only `python -m harness run` downloads it, before any job starts"):
        ReverseDistillation(RDSettings(backbone="resnet18", weights="imagenet", image_size=32, device="cpu"))


def test_a_server_that_stalls_mid_transfer_times_out_and_leaves_nothing(
    tmp_path, setup, teacher_file, monkeypatch, capsys
):
    """Half the file, then silence with the connection open: the download gives up after the read timeout
    (as `data fetch` does) instead of hanging, and removes what it wrote."""
    import subprocess
    import sys
    import time

    from harness import downloads
    from harness.cli import main

    data, cache, _ = setup
    monkeypatch.delenv("HARNESS_OFFLINE", raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(downloads, "TIMEOUT", 0.5)
    killed = subprocess.Popen([sys.executable, "-c", "pass"])
    killed.wait()
    cache.mkdir(parents=True)
    (cache / f".{REAL}.{killed.pid}-k1ll3d.tmp").write_bytes(b"half")  # a download killed outright before
    with FileServer(
        {f"/torchvision/{REAL}": teacher_file}, stalls={f"/torchvision/{REAL}": len(teacher_file) // 2}
    ) as server:
        monkeypatch.setenv("HARNESS_MIRROR", server.url)
        started = time.monotonic()
        code = main(["run", *QUICK, "--root", str(data), "--out", str(tmp_path / "run")])
        elapsed = time.monotonic() - started
    message = last_line(capsys.readouterr().err)
    assert code == 2 and elapsed < 20
    assert message.startswith(
        f"error: cannot download ImageNet weights for resnet18 from {server.url}/torchvision/{REAL}"
    )
    assert "sent nothing for 0.5 s" in message and "nothing was kept" in message
    assert checkpoints(cache) == []  # no final file, no temporary one
    assert not (tmp_path / "run").exists()
