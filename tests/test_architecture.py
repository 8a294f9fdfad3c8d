"""The import rule of docs/architecture.md, enforced on the source: imports point one way."""

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = {"harness": "harness", "datasets": "harness.datasets", "methods": "harness.methods"}

FOUNDATION = {
    "harness",
    "harness.errors",
    "harness.paths",
    "harness.files",
    "harness.downloads",
    "harness.registry",
    "harness.order",
}
# package -> the packages it may import besides itself and the foundation
ALLOWED = {
    # the public API (harness/__init__.py): names of every stage, imported on first use
    "harness": {"harness.methods", "harness.datasets", "harness.sweep", "harness.report"},
    "harness.registry": set(),
    "harness.testing": {"harness.methods", "harness.datasets", "harness.metrics"},
    "harness.errors": set(),
    "harness.paths": set(),
    "harness.order": set(),
    "harness.files": set(),
    "harness.downloads": set(),
    "harness.metrics": set(),
    "harness.store": set(),
    "harness.datasets": set(),
    "harness.methods": set(),
    "harness.sweep": {"harness.metrics", "harness.store", "harness.datasets", "harness.methods", "harness.tracking"},
    "harness.tracking": {"harness.store", "harness.report"},
    "harness.stats": {"harness.metrics", "harness.store"},
    "harness.report": {"harness.metrics", "harness.store", "harness.datasets", "harness.stats"},
    "harness.bench": {"harness.metrics", "harness.datasets", "harness.methods", "harness.sweep", "harness.stats"},
    "harness.cli": {
        "harness.metrics",
        "harness.store",
        "harness.datasets",
        "harness.methods",
        "harness.sweep",
        "harness.report",
        "harness.bench",
        "harness.stats",
        "harness.tracking",
    },
    "harness.__main__": {"harness.cli"},
}
NEVER_TORCH = ("harness.metrics", "harness.report", "harness.store", "harness.stats")  # they read arrays and files only


def _modules():
    for folder, package in FOLDERS.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = path.relative_to(ROOT / folder).with_suffix("").parts
            parts = parts[:-1] if parts[-1] == "__init__" else parts
            yield path, ".".join((package,) + parts), path.name == "__init__.py"


def _imports(path: Path, module: str, is_package: bool) -> list[tuple[int, str]]:
    found = []
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module
            found.append((node.lineno, name))
            found += [(node.lineno, f"{name}.{alias.name}") for alias in node.names if name == "harness"]
    return found


def _unit(name: str) -> str:
    """The package a module belongs to for the rule: harness.sweep.plan -> harness.sweep."""
    parts = name.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 else name


def test_imports_point_one_way():
    broken = []
    for path, module, is_package in _modules():
        own = _unit(module)
        assert own in ALLOWED or own in FOUNDATION, f"{module}: a new top-level module needs a place in the import rule"
        for line, name in _imports(path, module, is_package):
            if name.split(".")[0] != "harness":
                if name.split(".")[0] == "torch" and own in NEVER_TORCH:
                    broken.append(f"{path.relative_to(ROOT)}:{line}: {own} must not import torch")
                continue
            target = _unit(name)
            if target == "harness.cli" and own != "harness.__main__":
                broken.append(f"{path.relative_to(ROOT)}:{line}: nothing imports the CLI ({name})")
            elif target != own and target not in FOUNDATION and target not in ALLOWED.get(own, set()):
                broken.append(f"{path.relative_to(ROOT)}:{line}: {own} may not import {name}")
    assert not broken, "\n".join(broken)


def test_the_rule_catches_a_backward_import(tmp_path):
    """The walk sees relative and absolute imports alike (a rule that finds nothing proves nothing)."""
    source = tmp_path / "module.py"
    source.write_text("from ..report import tables\nimport harness.cli\nfrom harness import sweep\n")
    assert [name for _, name in _imports(source, "harness.sweep.module", False)] == [
        "harness.report",
        "harness.cli",
        "harness",
        "harness.sweep",
    ]


def test_a_checkout_runs_its_own_datasets_and_methods(tmp_path):
    """`python -m harness` from a checkout that is not the installed one uses that checkout's code only."""
    copy = tmp_path / "other-checkout"
    for name in ("harness", "datasets", "methods"):
        shutil.copytree(ROOT / name, copy / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", copy)
    probe = (
        "import harness, harness.datasets, harness.methods, harness.datasets.mvtec;"
        "print(harness.__file__); print(harness.datasets.__file__); print(harness.methods.__file__);"
        "print(harness.datasets.mvtec.__file__)"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run([sys.executable, "-c", probe], cwd=copy, env=env, capture_output=True, text=True, check=True)
    paths = [Path(line) for line in out.stdout.split()]
    assert all(path.is_relative_to(copy) for path in paths), paths
