"""Where the harness keeps generated data and caches (overridable by environment variables)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """Root of all caches: $HARNESS_CACHE, else $XDG_CACHE_HOME/rd-harness, else ~/.cache/rd-harness."""
    if os.environ.get("HARNESS_CACHE"):
        return Path(os.environ["HARNESS_CACHE"])
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "rd-harness"


def data_root(folder: str) -> str | None:
    """Default root of a data set: $HARNESS_DATA/<folder> when HARNESS_DATA is set, else None."""
    base = os.environ.get("HARNESS_DATA")
    return str(Path(base) / folder) if base else None
