"""Anomaly-detection methods, by name: the built-ins below, the `rd_harness.methods` entry points of installed
packages, and classes registered with `harness.register_method`. A new built-in is one module plus one line
in `BUILTIN`."""

from __future__ import annotations

from harness.methods.base import EpochLog, Method, check_method_class
from harness.registry import Registry

BUILTIN: dict[str, str] = {
    "rd": "harness.methods.rd:ReverseDistillation",
    "rdpp": "harness.methods.rdpp:ReverseDistillationPlusPlus",
}
ENTRY_POINT_GROUP = "rd_harness.methods"

REGISTRY: Registry[Method] = Registry("method", ENTRY_POINT_GROUP, BUILTIN, check_method_class)


def names() -> list[str]:
    return REGISTRY.names()


def get(name: str) -> type[Method]:
    """The method class registered under `name` (HarnessError, one line, when it is unknown or broken)."""
    return REGISTRY.get(name)


def register(name: str, cls: type[Method]) -> None:
    """Make `cls` available as method `name` in this process."""
    REGISTRY.register(name, cls)


__all__ = ["EpochLog", "Method", "names", "get", "register", "REGISTRY", "BUILTIN"]
