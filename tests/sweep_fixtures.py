"""A tiny folder data set (64 px, MVTec layout) and helpers for the scheduler and backend tests.

Jobs on it take a second or two (resnet18 with random weights, 1 epoch), so the tests can run
real sweeps, in subprocesses and on a dask cluster, without the synthetic data set's cost.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

SIZE = 64
COUNTS = {"train": 12, "good": 4, "blob": 4}
FAST = ["--dataset", "folder", "--profile", "demo", "--image-size", "64", "--epochs", "1", "--batch-size", "6"]


def _texture(rng: np.random.Generator, tone: tuple[int, int, int]) -> np.ndarray:
    y, x = np.mgrid[0:SIZE, 0:SIZE]
    stripes = 0.5 + 0.5 * np.sin((x + y) * 0.6 + rng.uniform(0, 6.3))
    pixels = np.array(tone, np.float32) * (0.7 + 0.3 * stripes[..., None]) + rng.normal(0, 5, (SIZE, SIZE, 3))
    return np.clip(pixels, 0, 255).astype(np.uint8)


def make_category(root: Path, name: str, tone: tuple[int, int, int], seed: int) -> Path:
    rng = np.random.default_rng(seed)
    folder = root / name
    for split, count in (("train/good", COUNTS["train"]), ("test/good", COUNTS["good"])):
        (folder / split).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            Image.fromarray(_texture(rng, tone)).save(folder / split / f"{i:03d}.png")
    (folder / "test" / "blob").mkdir(parents=True)
    (folder / "ground_truth" / "blob").mkdir(parents=True)
    for i in range(COUNTS["blob"]):
        image = _texture(rng, tone)
        mask = np.zeros((SIZE, SIZE), np.uint8)
        cy, cx = rng.integers(12, SIZE - 12, 2)
        mask[cy - 8 : cy + 8, cx - 8 : cx + 8] = 255
        image[mask > 0] = (20, 200, 40)
        Image.fromarray(image).save(folder / "test" / "blob" / f"{i:03d}.png")
        Image.fromarray(mask).save(folder / "ground_truth" / "blob" / f"{i:03d}_mask.png")
    return folder


def make_dataset(root: Path, categories=("amber", "slate")) -> Path:
    tones = {"amber": (200, 140, 60), "slate": (90, 110, 140), "moss": (90, 140, 80)}
    for index, name in enumerate(categories):
        make_category(root, name, tones.get(name, (128, 128, 128)), seed=index)
    return root


def break_category(folder: Path) -> None:
    """An anomalous test image without its mask: the adapter raises a DataError when the job loads it."""
    next((folder / "ground_truth" / "blob").glob("*.png")).unlink()


# One torch thread per job everywhere: results then match bit for bit between this process, child
# processes and dask workers (float sums depend on the thread count), and 2 shared cores are not oversubscribed.
ENV = os.environ | {"OMP_NUM_THREADS": "1"}


@contextlib.contextmanager
def one_thread():
    import torch

    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(saved)


def harness(
    *args: str, cwd: Path | None = None, timeout: float = 300, env: dict | None = None
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "harness", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=ENV | {"HARNESS_CACHE": os.environ.get("HARNESS_CACHE", "")} | (env or {}),
        timeout=timeout,
    )


def start_harness(*args: str, cwd: Path | None = None, **popen) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "harness", *args],
        stdout=popen.pop("stdout", subprocess.PIPE),
        stderr=subprocess.PIPE,
        text=True,
        cwd=cwd,
        env=ENV | {"HARNESS_CACHE": os.environ.get("HARNESS_CACHE", "")},
        **popen,
    )


def run_in_process(*args: str) -> int:
    """`python -m harness ARGS` in this process, with one torch thread; the exit code."""
    from harness.cli import main

    with one_thread():
        return main(list(args))


_REFERENCE: dict[str, Path] = {}


def serial_reference(tmp_path_factory) -> tuple[Path, Path]:
    """(data root, run folder) of an uninterrupted serial sweep over the tiny data set, made once per session."""
    if not _REFERENCE:
        base = tmp_path_factory.mktemp("reference")
        data = make_dataset(base / "data")
        assert run_in_process("run", *FAST, "--root", str(data), "--out", str(base / "run")) == 0
        _REFERENCE.update(data=data, run=base / "run")
    return _REFERENCE["data"], _REFERENCE["run"]


def records(run: Path) -> dict[str, dict]:
    """{category: record} of a run folder's finished jobs."""
    found = {}
    for path in sorted((run / "jobs").glob("*/record.json")):
        record = json.loads(path.read_text())
        found[record["category"]] = record
    return found


def metric_values(record: dict) -> dict[str, float]:
    return {name: metric["value"] for name, metric in record["metrics"].items()}


def wait_for(condition, process: subprocess.Popen, what: str, limit: float = 180.0) -> None:
    """Poll `condition` until it holds; fail the test when `process` ends first or `limit` seconds pass."""
    import time

    import pytest

    deadline = time.monotonic() + limit
    while not condition():
        if process.poll() is not None:
            pytest.fail(f"the sweep ended (exit {process.returncode}) before {what}: {process.stderr.read()[-2000:]}")
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"timed out waiting until {what}")
        time.sleep(0.02)
