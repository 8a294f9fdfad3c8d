"""Optional on-disk cache of decoded, resized arrays, so that a second run skips decoding.

Enabled per adapter with the option `cache=True`, or for all adapters with HARNESS_ARRAY_CACHE=1
(`cache=False` wins over the variable). An entry is keyed by the split fingerprint, the image size,
this module's format version and the size and modification time of every source file, so an edited
or replaced file makes a new entry instead of serving stale pixels. Entries are written atomically;
an unreadable entry is treated as absent and rewritten.

An entry is one uncompressed joblib file whose arrays are memory-mapped on load (copy-on-write): a
cached category costs no read and no copy up front, its pages come from the operating system's file
cache as they are used and are shared by every job that loads it, and a job that writes into its
arrays changes its own copy of those pages, never the entry. joblib files are pickles: like any
cache of Python objects, the cache folder must be trusted.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable
from pathlib import Path

import joblib
import numpy as np

from harness.datasets.base import CategoryData, Split
from harness.files import atomic_write, file_stamp
from harness.paths import cache_dir

ENV = "HARNESS_ARRAY_CACHE"
VERSION = 2  # bump when decoding, resizing or the entry format changes, so old entries are not reused
_SPLITS = ("train", "test", "valid")
_MMAP_MODE = "c"  # copy-on-write: writable arrays (torch.from_numpy needs them), the file never written


def enabled(option: bool | None) -> bool:
    if option is not None:
        return bool(option)
    return os.environ.get(ENV, "").strip().lower() in ("1", "true", "yes", "on")


def entry_path(dataset: str, category: str, image_size: int, fingerprint: str, stamp: str) -> Path:
    key = hashlib.sha256(f"{VERSION}\t{fingerprint}\t{image_size}\t{stamp}".encode()).hexdigest()[:16]
    return cache_dir() / "arrays" / dataset / f"{category}-{image_size}px-{fingerprint}-{key}.joblib"


def write(path: Path, data: CategoryData) -> None:
    splits = {}
    for name in _SPLITS:
        split: Split | None = getattr(data, name)
        if split is not None:
            splits[name] = {
                "images": np.ascontiguousarray(split.images),
                "labels": np.asarray(split.labels),
                "masks": None if split.masks is None else np.ascontiguousarray(split.masks),
                "defect_types": list(split.defect_types),
                "paths": list(split.paths),
            }
    entry = {
        "version": VERSION,
        "dataset": data.dataset,
        "category": data.category,
        "fingerprint": data.fingerprint,
        "provenance": dict(data.provenance),
        "splits": splits,
    }
    atomic_write(path, lambda file: joblib.dump(entry, file))  # uncompressed, so that arrays can be mapped


def read(path: Path, dataset: str, category: str, fingerprint: str) -> CategoryData | None:
    if not path.is_file():
        return None
    try:
        entry = joblib.load(path, mmap_mode=_MMAP_MODE)
        identity = (entry["version"], entry["dataset"], entry["category"], entry["fingerprint"])
        if identity != (VERSION, dataset, category, fingerprint):
            return None
        splits = {name: Split(**fields) for name, fields in entry["splits"].items() if name in _SPLITS}
        provenance = dict(entry["provenance"])
    except Exception:  # noqa: BLE001 - a damaged or foreign entry (any unpickling error) is rebuilt, never trusted
        return None
    if "train" not in splits or "test" not in splits:
        return None
    return CategoryData(
        dataset, category, splits["train"], splits["test"], splits.get("valid"), fingerprint, provenance
    )


def load_or_build(
    dataset: str,
    category: str,
    image_size: int,
    fingerprint: str,
    sources: Iterable[Path],
    build: Callable[[], CategoryData],
    use_cache: bool | None,
) -> CategoryData:
    """`build()`, or its stored result when the cache is enabled and holds an entry for exactly these files."""
    if not enabled(use_cache):
        return build()
    path = entry_path(dataset, category, image_size, fingerprint, file_stamp(sources))
    cached = read(path, dataset, category, fingerprint)
    if cached is not None:
        cached.provenance["array_cache"] = f"hit {path}"
        return cached
    data = build()
    write(path, data)
    data.provenance["array_cache"] = f"written {path}"
    return data
