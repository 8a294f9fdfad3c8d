"""The package as users install it: a wheel built from the repository's files, installed (not editable) into a
fresh virtual environment, runs without the source tree: the published references, the console script and a
real sweep included.

The environment sees this interpreter's site-packages folders (a .pth file lists them after its own), so torch
and the other dependencies are not installed again and nothing is downloaded; the .pth files in those folders
(an editable install of the repository among them) are not run. Commands run with `python -I` from a folder
outside the repository, so neither PYTHONPATH nor the working directory can stand in for the wheel either (a
test checks where `harness` is imported from).
"""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from harness import __version__

from report_fixtures import golden_run

ROOT = Path(__file__).resolve().parents[1]
# what the wheel is built from (pyproject's package-dir); nothing else of the checkout is copied
SOURCES = ("pyproject.toml", "README.md", "harness", "datasets", "methods", "results/reference")

pytestmark = pytest.mark.slow  # builds a wheel and trains once: about 1-2 minutes on 2 shared cores


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> tuple[Path, Path]:
    """(the virtual environment, the wheel), the wheel built from a copy of the sources."""
    base = tmp_path_factory.mktemp("wheel")
    source = base / "source"
    for name in SOURCES:
        target = source / name
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(ROOT / name, target)
    dist = base / "dist"
    quiet = {"capture_output": True, "text": True, "timeout": 300}
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(dist), str(source)],
        **quiet,
    )
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    [wheel] = dist.glob("rd_harness-*.whl")
    venv = base / "venv"
    made = subprocess.run([sys.executable, "-m", "venv", str(venv)], **quiet)
    assert made.returncode == 0, made.stderr
    own = subprocess.run(
        [str(venv / "bin" / "python"), "-I", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        **quiet,
    ).stdout.strip()
    outer = [p for p in dict.fromkeys(site.getsitepackages()) if Path(p).is_dir()]
    (Path(own) / "dependencies-of-the-test-interpreter.pth").write_text("\n".join(outer) + "\n")
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--no-deps", "--no-index", "--ignore-installed"]
    done = subprocess.run([*pip, str(wheel)], **quiet)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return venv, wheel


def run(venv: Path, *args: str, cwd: Path, script: str | None = None) -> subprocess.CompletedProcess:
    """`python -I -m harness ARGS` (or the console script) of the environment, from `cwd`, without PYTHONPATH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["OMP_NUM_THREADS"] = "1"
    command = [str(venv / "bin" / script)] if script else [str(venv / "bin" / "python"), "-I", "-m", "harness"]
    return subprocess.run([*command, *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=600)


def test_the_wheel_holds_the_package_data(installed):
    _, wheel = installed
    names = zipfile.ZipFile(wheel).namelist()
    shipped = sorted(p.name for p in (ROOT / "results" / "reference").glob("*.csv"))
    assert shipped and sorted(Path(n).name for n in names if n.startswith("harness/reference/")) == sorted(
        [*shipped, "__init__.py"]
    )
    assert {"harness/datasets/mvtec.py", "harness/methods/rd.py", "harness/cli.py"} <= set(names)
    assert not any(n.startswith(("tests/", "scripts/", "results/")) for n in names)


def test_the_installed_wheel_runs_without_the_source_tree(installed, tmp_path):
    venv, _ = installed
    where = subprocess.run(
        [str(venv / "bin" / "python"), "-I", "-c", "import harness.reference as r, harness; print(harness.__file__)"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert where.returncode == 0, where.stderr
    assert Path(where.stdout.strip()).is_relative_to(venv), where.stdout  # not the checkout, not an editable copy

    version = run(venv, "--version", cwd=tmp_path)
    assert version.returncode == 0 and version.stdout.strip() == f"rd-harness {__version__}"
    listing = run(venv, "list", cwd=tmp_path)
    assert listing.returncode == 0 and "synthetic" in listing.stdout and "mvtec" in listing.stdout
    script = run(venv, "list", cwd=tmp_path, script="rd-harness")
    assert script.returncode == 0 and script.stdout == listing.stdout

    # a 1-epoch sweep on the built-in data set, then a drift baseline of it and a check against that
    sweep = tmp_path / "synthetic-run"
    trained = run(
        venv, "run", "--categories", "disc", "--epochs", "1", "--image-size", "64", "--device", "cpu",
        "--out", str(sweep), cwd=tmp_path,
    )  # fmt: skip
    assert trained.returncode == 0, trained.stdout[-2000:] + trained.stderr[-2000:]
    assert "| disc" in trained.stdout
    baseline = tmp_path / "baseline.json"
    made = run(venv, "check", str(sweep), "--baseline", str(baseline), "--update", cwd=tmp_path)
    assert made.returncode == 0 and baseline.is_file(), made.stderr
    checked = run(venv, "check", str(sweep), "--baseline", str(baseline), cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr

    # an MVTec AD run beside the RD4AD paper's numbers, which only the wheel's package data can supply
    mvtec = golden_run(tmp_path / "mvtec-run")
    report = run(venv, "report", str(mvtec), "--vs", "rd4ad_paper", "--out", str(tmp_path / "report"), cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    assert "RD4AD paper" in report.stdout and "98.5" in report.stdout  # the paper's mean I-AUROC, 0.985
    assert (tmp_path / "report" / "report.tex").is_file()
