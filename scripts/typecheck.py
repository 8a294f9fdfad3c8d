"""Run mypy over the package as installed, and over the scripts.

harness/ is checked with datasets/, methods/ and results/reference/ as harness.datasets, harness.methods
and harness.reference (pyproject's package-dir mapping, which mypy's own file discovery cannot follow);
each scripts/*.py as a top-level module of its own name.

Usage: python scripts/typecheck.py [extra mypy options]. Settings come from [tool.mypy] in pyproject.toml.
Exit status: 0 with no findings, 1 with findings, 2 when mypy itself fails.
"""

from __future__ import annotations

import os
import sys
import tomllib
from pathlib import Path

from mypy import build
from mypy.errors import CompileError
from mypy.main import process_options
from mypy.modulefinder import BuildSource

ROOT = Path(__file__).resolve().parents[1]


def sources() -> list[BuildSource]:
    """Every module of the package, each under its installed name and its file in the checkout."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    found = []
    for package, folder in config["package-dir"].items():
        base = ROOT / folder
        for path in sorted(base.rglob("*.py")):
            parts = path.relative_to(base).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            name = ".".join((package, *parts))
            # a sub-folder that is mapped itself is listed under its own mapping
            if any(
                name.startswith(other + ".") or name == other
                for other in config["package-dir"]
                if other != package and other.startswith(package + ".")
            ):
                continue
            found.append(BuildSource(str(path.relative_to(ROOT)), name, None, str(ROOT)))
    for path in sorted((ROOT / "scripts").glob("*.py")):
        found.append(BuildSource(str(path.relative_to(ROOT)), path.stem, None, str(ROOT / "scripts")))
    return found


def main(argv: list[str]) -> int:
    os.chdir(ROOT)  # the sources are named relative to the checkout, as mypy reports them
    _, options = process_options(
        ["--config-file", str(ROOT / "pyproject.toml"), *argv, str(ROOT / "harness" / "__init__.py")]
    )
    try:
        result = build.build(sources(), options)
    except CompileError as error:
        print("\n".join(error.messages), file=sys.stderr)
        return 2
    for line in result.errors:
        print(line)
    files = len({s.path for s in sources()})
    count = sum(1 for line in result.errors if ": error:" in line)
    print(f"mypy: {count} error(s) in {files} files" if count else f"mypy: no issues in {files} files")
    return 1 if count else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
