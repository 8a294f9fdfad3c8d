"""Optional on-disk cache of decoded, resized arrays, so that a second run skips decoding.

Enabled per adapter with the option `cache=True`, or for all adapters with HARNESS_ARRAY_CACHE=1
(`cache=False` wins over the variable). An entry is keyed by the split fingerprint, the image size,
this module's format version and the size and modification time of every source file, so an edited
or replaced file makes a new entry instead of serving stale pixels. Entries are written atomically;
an unreadable entry is treated as absent and rewritten.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from harness.datasets.base import CategoryData, Split
from harness.files import atomic_write, file_stamp
from harness.paths import cache_dir

ENV = "HARNESS_ARRAY_CACHE"
VERSION = 1  # bump when decoding or resizing changes, so old entries are not reused
_SPLITS = ("train", "test", "valid")


def enabled(option: bool | None) -> bool:
    if option is not None:
        return bool(option)
    return os.environ.get(ENV, "").strip().lower() in ("1", "true", "yes", "on")


def entry_path(dataset: str, category: str, image_size: int, fingerprint: str, stamp: str) -> Path:
    key = hashlib.sha256(f"{VERSION}\t{fingerprint}\t{image_size}\t{stamp}".encode()).hexdigest()[:16]
    return cache_dir() / "arrays" / dataset / f"{category}-{image_size}px-{fingerprint}-{key}.npz"


def write(path: Path, data: CategoryData) -> None:
    arrays: dict[str, np.ndarray] = {"provenance": np.array(json.dumps(data.provenance, sort_keys=True, default=str))}
    for name in _SPLITS:
        split: Split | None = getattr(data, name)
        if split is None:
            continue
        arrays[f"{name}_images"] = split.images
        arrays[f"{name}_labels"] = split.labels
        arrays[f"{name}_defect_types"] = np.array(split.defect_types, dtype=str)
        arrays[f"{name}_paths"] = np.array(split.paths, dtype=str)
        if split.masks is not None:
            arrays[f"{name}_masks"] = np.packbits(split.masks, axis=-1)
    atomic_write(path, lambda file: np.savez(file, **arrays))


def read(path: Path, dataset: str, category: str, fingerprint: str) -> CategoryData | None:
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as stored:
            splits: dict[str, Split] = {}
            for name in _SPLITS:
                if f"{name}_images" not in stored.files:
                    continue
                images = stored[f"{name}_images"]
                masks = None
                if f"{name}_masks" in stored.files:
                    masks = np.unpackbits(stored[f"{name}_masks"], axis=-1, count=images.shape[2]).astype(bool)
                splits[name] = Split(
                    images=images,
                    labels=stored[f"{name}_labels"],
                    masks=masks,
                    defect_types=[str(t) for t in stored[f"{name}_defect_types"]],
                    paths=[str(p) for p in stored[f"{name}_paths"]],
                )
            provenance = json.loads(str(stored["provenance"])) if "provenance" in stored.files else {}
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError):
        return None  # a damaged entry is rebuilt, never trusted
    if "train" not in splits or "test" not in splits:
        return None
    return CategoryData(dataset, category, splits["train"], splits["test"], splits.get("valid"), fingerprint, provenance)


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
