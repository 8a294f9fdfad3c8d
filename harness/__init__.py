"""Reproduction and benchmarking harness for visual anomaly detection around Reverse Distillation."""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
from pathlib import Path
from typing import Any

__version__ = "0.1.0"  # the one place the version is written (pyproject reads it)

# harness.datasets, harness.methods and harness.reference live in the folders datasets/, methods/ and
# results/reference/ (pyproject's package-dir). An editable install resolves them to the installed checkout,
# so `python -m harness` run from another checkout would mix that checkout's harness/ with the installed
# folders. When this package sits in a source checkout, they resolve to the folders beside it instead.
_MAPPED = {"harness.datasets": "datasets", "harness.methods": "methods", "harness.reference": "results/reference"}


class _CheckoutFinder(importlib.abc.MetaPathFinder):
    def __init__(self, root: Path) -> None:
        self.root = root

    def find_spec(self, fullname: str, path=None, target=None):
        folder = _MAPPED.get(fullname)
        if folder is None:
            return None
        init = self.root / folder / "__init__.py"
        if not init.is_file():  # a partial copy of a checkout: the installed package's folder, if any
            return None
        return importlib.util.spec_from_file_location(fullname, init, submodule_search_locations=[str(init.parent)])


def _source_checkout() -> Path | None:
    """The checkout this package was imported from, when it is one (not an installed copy)."""
    root = Path(__file__).resolve().parent.parent
    code = ("datasets", "methods")  # the mapped folders holding code; a checkout has them beside harness/
    if (root / "pyproject.toml").is_file() and all((root / f / "__init__.py").is_file() for f in code):
        return root
    return None


def _use_this_checkout() -> None:
    root = _source_checkout()
    if root is not None and not any(isinstance(f, _CheckoutFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _CheckoutFinder(root))


_use_this_checkout()


# The public API. Everything else in the package is private: its names may change between versions.
__all__ = [
    "Method",
    "Adapter",
    "CategoryData",
    "Split",
    "EpochLog",
    "register_method",
    "register_dataset",
    "run",
    "report",
    "check",
]

_PUBLIC_CLASSES = {
    "Method": "harness.methods.base",
    "EpochLog": "harness.methods.base",
    "Adapter": "harness.datasets.base",
    "CategoryData": "harness.datasets.base",
    "Split": "harness.datasets.base",
}


def __getattr__(name: str) -> Any:
    # Imported on first use: `import harness` stays light (no numpy, no torch) for the command line.
    if name in _PUBLIC_CLASSES:
        return getattr(importlib.import_module(_PUBLIC_CLASSES[name]), name)
    if name == "report":  # the subpackage, callable as the public function (harness/report/__init__.py)
        return importlib.import_module("harness.report")
    raise AttributeError(f"module 'harness' has no attribute {name!r}")


def register_method(name: str, cls: type) -> None:
    """Make the Method subclass `cls` available as method `name` in this process (serial backend; installed
    packages declare theirs as `rd_harness.methods` entry points, which every process finds)."""
    from harness import methods

    methods.register(name, cls)


def register_dataset(name: str, cls: type) -> None:
    """Make the Adapter subclass `cls` available as data set `name` in this process (serial backend;
    installed packages declare theirs as `rd_harness.datasets` entry points)."""
    from harness import datasets

    datasets.register(name, cls)


def run(*, sweep: str | Path | None = None, quiet: bool = False, **options: Any) -> Any:
    """Train and evaluate as `python -m harness run` does, with its options as keywords (dataset, method,
    categories, seeds, out, profile, backend, ...; lists or comma-separated text) and any other keyword a
    method setting (epochs=2, image_size=64, ...). Options of a sweep file come first, keywords override them.
    Returns a RunResult: run_dir, records, results (a pandas DataFrame), finished/skipped/failed.
    Raises HarnessError (one line) on bad options, before anything is written."""
    from harness.sweep.options import OPTION_KINDS, merge_options
    from harness.sweep.runner import execute
    from harness.sweep.sweepfile import parse_options, read_sweep_file

    # tuples as lists and paths as text, the forms a sweep file has
    given: dict[str, Any] = {
        k: list(v) if isinstance(v, tuple) else str(v) if isinstance(v, Path) else v
        for k, v in options.items()
        if v is not None
    }
    settings = dict(given.pop("settings", None) or {})
    settings |= {k: given.pop(k) for k in list(given) if k not in OPTION_KINDS}
    if settings:
        given["settings"] = settings
    parsed = parse_options(given, "harness.run")
    if parsed.get("portable"):
        from harness.errors import HarnessError
        from harness.sweep import numerics

        if not numerics.process_is_portable():
            raise HarnessError(f"portable=True needs a process started with {numerics.missing_environment()}")
    run_options = merge_options(read_sweep_file(sweep) if sweep else {}, parsed)
    return execute(run_options, echo=(lambda line: None) if quiet else print)


def check(run: str | Path, baseline: str | Path, **options: Any) -> Any:
    """Compare a run folder with a baseline file (update=True: write the baseline); returns a CheckOutcome
    (exit_code 0 within tolerance, 1 drift, 2 not comparable) instead of exiting."""
    from harness.report.api import check as check_run

    return check_run(run, baseline, **options)
