"""The example plugin (examples/gaussian-plugin) installed with pip into a scratch environment, as a user would:
found through its entry points by the command line and by every backend's workers, run, reported beside RD,
checked, rescored, driven from the Python API, and passing the conformance kit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
PLUGIN = ROOT / "examples" / "gaussian-plugin"
SIZE = ["--image-size", "32"]


@pytest.fixture(scope="module")
def venv(tmp_path_factory) -> Path:
    """A virtual environment that sees this one's packages and has the plugin pip-installed (editable, offline)."""
    folder = tmp_path_factory.mktemp("venv")
    # without its own pip: the environment's pip and setuptools (which builds editable wheels) are used
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", folder], check=True)
    python = folder / "bin" / "python"
    subprocess.run(
        [python, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index", "-e", PLUGIN],
        check=True,
        capture_output=True,
    )
    return python


def make_manifest_data(root: Path) -> Path:
    """Two categories in the plugin's manifest.csv layout: 6 training, 2 normal and 2 anomalous test images."""
    rng = np.random.default_rng(0)
    for category, tone in (("bolts", (150, 120, 90)), ("tiles", (90, 130, 170))):
        folder = root / category
        (folder / "img").mkdir(parents=True)
        rows = ["file,split,label,mask"]
        for i in range(10):
            label = int(i >= 8)
            image = np.clip(np.array(tone) + rng.normal(0, 8, (40, 40, 3)), 0, 255).astype(np.uint8)
            mask = ""
            if label:
                image[10:20, 12:22] = 255
                drawn = np.zeros((40, 40), np.uint8)
                drawn[10:20, 12:22] = 255
                mask = f"img/{i}_mask.png"
                Image.fromarray(drawn).save(folder / mask)
            Image.fromarray(image).save(folder / f"img/{i}.png")
            rows.append(f"img/{i}.png,{'train' if i < 6 else 'test'},{label},{mask}")
        (folder / "manifest.csv").write_text("\n".join(rows) + "\n")
    return root


def harness_in(python: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = os.environ | {"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [python, "-m", "harness", *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=600
    )


def comparable(run: Path) -> dict[str, dict]:
    """{job id: record} without what differs between executions of one job (clocks, memory, process)."""
    found = {}
    for path in sorted(run.glob("jobs/*/record.json")):
        record = json.loads(path.read_text())
        kept = {k: v for k, v in record.items() if k not in ("timings", "memory", "provenance")}
        kept["history"] = [{k: v for k, v in e.items() if k != "seconds"} for e in record["history"]]
        found[record["job_id"]] = kept
    return found


def test_the_installed_plugin_runs_everywhere_the_builtins_do(venv, tmp_path):
    data = make_manifest_data(tmp_path / "data")
    listing = harness_in(venv, "list", cwd=tmp_path)
    assert listing.returncode == 0, listing.stderr
    assert any(
        line.startswith("gaussian") and "rd-harness-gaussian 0.1.0" in line for line in listing.stdout.splitlines()
    )
    assert any(
        line.startswith("manifest") and "rd-harness-gaussian 0.1.0" in line for line in listing.stdout.split("\n")
    )

    common = ["run", "--dataset", "manifest", "--root", str(data), "--method", "gaussian", *SIZE]
    runs = {}
    for backend in ("serial", "local", "dask"):
        extra = [] if backend == "serial" else ["--jobs", "2" if backend == "local" else "1"]
        out = tmp_path / backend
        done = harness_in(
            venv, *common, "--backend", backend, *extra, "--save-checkpoints", "--out", str(out), cwd=tmp_path
        )
        assert done.returncode == 0, done.stderr
        assert "no profile (the gaussian settings' defaults" in done.stdout
        runs[backend] = comparable(out)
    assert len(runs["serial"]) == 2 and runs["serial"] == runs["local"] == runs["dask"]
    record = next(iter(runs["serial"].values()))
    assert record["method_label"] == "Gaussian" and record["execution_settings"] == ["device"]
    assert record["metrics"]["image_auroc"]["value"] == 1.0  # a bright square is far from every normal image

    # a saved checkpoint is evaluated again with the same scores
    job = sorted(runs["serial"])[0]
    category = runs["serial"][job]["category"]
    again = tmp_path / "from-checkpoint"
    checkpoint = tmp_path / "serial" / "jobs" / job / "checkpoint.pth"
    done = harness_in(
        venv, *common, "--categories", category, "--checkpoint", str(checkpoint), "--out", str(again), cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    ((_, evaluated),) = comparable(again).items()
    assert evaluated["metrics"] == runs["serial"][job]["metrics"]

    # beside RD on the same data, checked against a baseline, rescored
    rd = tmp_path / "rd"
    done = harness_in(venv, *common[:5], "--profile", "demo", "--epochs", "1", *SIZE, "--out", str(rd), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    report = harness_in(
        venv, "report", str(tmp_path / "serial"), "--vs", str(rd), "--out", str(tmp_path / "rep"), cwd=tmp_path
    )
    assert report.returncode == 0, report.stderr
    header = next(line for line in report.stdout.splitlines() if line.startswith("| category"))
    assert "Gaussian" in header and "RD" in header
    baseline = tmp_path / "baseline.json"
    assert (
        harness_in(
            venv, "check", str(tmp_path / "serial"), "--baseline", str(baseline), "--update", cwd=tmp_path
        ).returncode
        == 0
    )
    assert harness_in(venv, "check", str(tmp_path / "dask"), "--baseline", str(baseline), cwd=tmp_path).returncode == 0
    rescored = harness_in(venv, "rescore", str(tmp_path / "local"), "--metrics", "pixel_ap", cwd=tmp_path)
    assert rescored.returncode == 0, rescored.stderr

    # the Python API and the conformance kit, in the same environment
    script = f"""
import json, harness
from harness.testing import check_dataset, check_method
from rd_harness_gaussian.manifest import ManifestDataset
from rd_harness_gaussian.method import GaussianAD

result = harness.run(dataset="manifest", root={str(data)!r}, method="gaussian", image_size=32,
                     out={str(tmp_path / "api")!r}, quiet=True)
print(json.dumps([r["job_id"] for r in result.records]))
print(json.dumps(check_method(GaussianAD, image_size=32)))
print(json.dumps(check_dataset(ManifestDataset, {str(data)!r})))
"""
    env = os.environ | {"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([venv, "-c", script], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600)
    assert done.returncode == 0, done.stderr
    ids, method_checks, data_checks = (json.loads(line) for line in done.stdout.splitlines()[-3:])
    assert ids == sorted(runs["serial"])  # the same jobs as the command line's
    assert "checkpoint round trip" in method_checks and "spawned worker" in method_checks
    assert "spawned worker" in data_checks


def test_the_shell_block_of_the_extending_guide_runs(venv, tmp_path):
    """docs/extending.md's commands, line by line, in the scratch environment (pip offline, no isolation)."""
    from test_docs_examples import code_blocks

    (block,) = [text for language, text in code_blocks("extending.md") if language == "bash"]
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    make_manifest_data(tmp_path / "my-data")
    env = os.environ | {
        "PATH": f"{venv.parent}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(ROOT),
        "OMP_NUM_THREADS": "1",
        "PIP_NO_INDEX": "1",
        "PIP_NO_DEPS": "1",
        "PIP_NO_BUILD_ISOLATION": "0",  # pip reads this switch inverted: 0 means build without isolation
    }
    outputs = []
    for line in block.strip().splitlines():
        done = subprocess.run(line, shell=True, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600)
        assert done.returncode == 0, (line, done.stderr)
        outputs.append(done.stdout)
    assert "rd-harness-gaussian 0.1.0" in outputs[1]
    assert "| category" in outputs[-1] and "Gaussian" in outputs[-1]
