"""The code-health gate: .ci/run fails on any lint, format or type finding; the type check sees the mapped
packages under their installed names; the tools are pinned."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CI = ROOT / ".ci" / "run"


def load_typecheck():
    pytest.importorskip("mypy")
    spec = importlib.util.spec_from_file_location("typecheck", ROOT / "scripts" / "typecheck.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def health_block() -> str:
    """The lines of .ci/run from `health=0` to the line that fails on findings."""
    lines = CI.read_text().splitlines()
    start = lines.index("health=0")
    end = next(i for i in range(start, len(lines)) if lines[i].startswith('[ "$health" -eq 0 ]'))
    return "\n".join(lines[start : end + 1])


@pytest.mark.parametrize("failing", [None, "ruff check", "ruff format", "scripts/typecheck.py"])
def test_ci_fails_on_any_finding_and_runs_every_check(tmp_path, failing):
    """The block runs with stand-ins for ruff and python that log their arguments and fail when asked."""
    log = tmp_path / "calls"
    for tool in ("ruff", "python"):
        stand_in = tmp_path / tool
        fails = failing or "(none)"
        lines = [
            "#!/bin/sh",
            f'echo "{tool} $*" >> "{log}"',
            f'case "{tool} $*" in *"{fails}"*) exit 1;; esac',
            "exit 0",
        ]
        stand_in.write_text("\n".join(lines) + "\n")
        stand_in.chmod(0o755)
    script = tmp_path / "block.sh"
    script.write_text("set -euo pipefail\n" + health_block() + "\necho passed\n")
    env = os.environ | {"PATH": f"{tmp_path}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(["bash", str(script)], capture_output=True, text=True, env=env, timeout=60)
    calls = log.read_text().splitlines()
    assert calls == ["ruff check .", "ruff format --check .", "python scripts/typecheck.py"]  # all three, always
    if failing:
        assert result.returncode == 1 and "lint, format or type findings" in result.stderr
    else:
        assert result.returncode == 0 and result.stdout.strip() == "passed"


def test_ci_checks_before_the_tests_and_runs_the_slow_ones():
    text = CI.read_text()
    assert text.index("health=0") < text.index("python -m pytest -q")
    assert re.search(r'python -m pytest -q -m "slow or not slow"', text)


def test_the_type_check_sees_every_module_under_its_installed_name():
    typecheck = load_typecheck()
    found = {source.module: Path(source.path) for source in typecheck.sources()}
    assert found["harness.datasets.mvtec"] == Path("datasets/mvtec.py")
    assert found["harness.methods.rd"] == Path("methods/rd.py")
    assert found["harness.reference"] == Path("results/reference/__init__.py")
    assert found["harness.report.references"] == Path("harness/report/references.py")
    assert found["gpu_check"] == Path("scripts/gpu_check.py")
    assert not any(name.startswith(("datasets", "methods")) for name in found)  # never under the folder's name
    on_disk = {p.relative_to(ROOT) for f in ("harness", "datasets", "methods") for p in (ROOT / f).rglob("*.py")}
    assert on_disk <= set(found.values())


def test_the_linters_are_pinned_in_the_test_extra():
    extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["test"]
    pins = {re.split(r"[=<>\[]", requirement)[0]: requirement for requirement in extra}
    assert re.fullmatch(r"ruff==[\d.]+", pins["ruff"]) and re.fullmatch(r"mypy==[\d.]+", pins["mypy"])


@pytest.mark.slow  # mypy over the whole package without its cache: a minute or more on 2 cores
def test_the_type_check_reports_an_error_in_a_mapped_package(tmp_path):
    """mypy through scripts/typecheck.py on a copy of the tree with one wrong annotation in datasets/."""
    load_typecheck()
    copy = tmp_path / "tree"
    for name in ("harness", "methods", "results"):
        (copy / name).parent.mkdir(parents=True, exist_ok=True)
        os.symlink(ROOT / name, copy / name)
    for name in ("pyproject.toml", *(f"scripts/{p.name}" for p in (ROOT / "scripts").glob("*.py"))):
        (copy / name).parent.mkdir(parents=True, exist_ok=True)
        (copy / name).write_text((ROOT / name).read_text())
    (copy / "datasets").mkdir()
    for path in (ROOT / "datasets").glob("*.py"):
        (copy / "datasets" / path.name).write_text(path.read_text())
    (copy / "datasets" / "base.py").write_text(
        (ROOT / "datasets" / "base.py").read_text() + "\n\ndef _wrong() -> int:\n    return 'not an int'\n"
    )
    result = subprocess.run(
        [sys.executable, str(copy / "scripts" / "typecheck.py"), "--cache-dir", str(tmp_path / "cache")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "datasets/base.py" in result.stdout and "Incompatible return value type" in result.stdout
