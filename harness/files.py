"""File helpers shared by every stage: atomic writes and stamps of files' size and modification time."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable, Iterable


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], object]) -> None:
    """Write through a temporary file in the same folder, then rename: readers never see half a file,
    and a crash leaves the old file (or none), never a truncated one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write(path, lambda handle: handle.write(text.encode("utf-8")))


def file_stamp(paths: Iterable[str | os.PathLike], *, salt: str = "") -> str:
    """Hash of (absolute path, size, modification time) of each file, in sorted order; a missing
    file stamps as missing. Cheap (no file is read), so it can key caches of derived data."""
    digest = hashlib.sha256(salt.encode())
    for path in sorted(str(Path(p).resolve()) for p in paths):
        try:
            stat = os.stat(path)
            digest.update(f"{path}\t{stat.st_size}\t{stat.st_mtime_ns}\n".encode())
        except OSError:
            digest.update(f"{path}\tmissing\n".encode())
    return digest.hexdigest()[:24]
