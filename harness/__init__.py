"""Reproduction and benchmarking harness for visual anomaly detection around Reverse Distillation."""

from __future__ import annotations

import importlib.abc
import importlib.util
import sys
from pathlib import Path

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
