"""Anomaly-detection methods, by name. A new method is one new module plus one line in `_METHODS`."""

from __future__ import annotations

import importlib

from harness.errors import HarnessError
from harness.methods.base import Method

_METHODS: dict[str, str] = {
    "rd": "harness.methods.rd:ReverseDistillation",
    "rdpp": "harness.methods.rdpp:ReverseDistillationPlusPlus",
}


def names() -> list[str]:
    return sorted(_METHODS)


def get(name: str) -> type[Method]:
    """The method class registered under `name`."""
    if name not in _METHODS:
        raise HarnessError(f"unknown method '{name}'; known methods: {', '.join(names())}")
    module_name, class_name = _METHODS[name].split(":")
    return getattr(importlib.import_module(module_name), class_name)


__all__ = ["Method", "names", "get"]
