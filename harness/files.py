"""File helpers shared by every stage: atomic writes (and their leftovers), stamps of files' size and
modification time, and content hashes of files, cached by their stat."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO

from harness.errors import HarnessError
from harness.paths import cache_dir

# Temporary names of atomic writes: ".<name>.<pid>-<random>.tmp". The writer's pid tells a leftover of a
# killed process from a write still in progress.
_TEMPORARY = re.compile(r"^\..+\.(?P<pid>\d+)-[a-z0-9_]+\.tmp$")
_OLD_TEMPORARY_AGE = 3600.0  # seconds; names without a pid (written by older versions) are stale after this


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], object]) -> None:
    """Write through a temporary file in the same folder, then rename: readers never see half a file,
    and a crash leaves the old file (or none), never a truncated one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}-", suffix=".tmp", dir=path.parent)
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


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def scratch_folder(parent: str | os.PathLike, what: str = "scratch") -> tempfile.TemporaryDirectory:
    """A temporary folder in `parent`, named like an atomic write's temporary file (".<what>.<pid>-<random>.tmp")
    so that `remove_stale_temporaries` removes it when the process that made it is killed."""
    Path(parent).mkdir(parents=True, exist_ok=True)
    return tempfile.TemporaryDirectory(prefix=f".{what}.{os.getpid()}-", suffix=".tmp", dir=parent)


def remove_stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Delete the temporary files (and `scratch_folder`s) under `folder` whose writer is gone (killed
    mid-write); a live process's write in progress is left alone. Returns what was deleted."""
    removed = []
    for path in sorted(Path(folder).rglob(".*.tmp")):
        match = _TEMPORARY.match(path.name)
        try:
            if match:
                stale = not _process_alive(int(match["pid"]))
            else:
                stale = time.time() - path.stat().st_mtime > _OLD_TEMPORARY_AGE
            if stale and path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
                removed.append(path)
            elif stale and path.is_file():
                path.unlink()
                removed.append(path)
        except OSError:
            continue  # gone meanwhile, or not ours to delete
    return removed


# Content hashes ---------------------------------------------------------------------------------
#
# A file's sha256 is cached in <cache>/file-hashes.sqlite under its absolute path, keyed by size,
# mtime_ns, ctime_ns and inode: a rewrite changes ctime even when the size stays and the mtime is
# set back (user programs cannot set ctime), so a cached hash is never served for other bytes.
# A second look at an unchanged data set costs one stat per file.

HASH_CACHE = "file-hashes.sqlite"
_HASH_WORKERS = 4


def _sha256(path: str) -> str:
    try:
        with open(path, "rb") as handle:
            return hashlib.file_digest(handle, "sha256").hexdigest()
    except OSError as error:
        raise HarnessError(f"{path}: cannot read the file to hash its content ({error.strerror or error})") from None


def _stat_key(path: str) -> tuple[int, int, int, int]:
    try:
        stat = os.stat(path)
    except OSError as error:
        raise HarnessError(f"{path}: cannot read the file to hash its content ({error.strerror or error})") from None
    return stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino


def _open_hash_cache() -> sqlite3.Connection | None:
    """The hash cache, or None when it cannot be used (a cache never stops a run)."""
    try:
        folder = cache_dir()
        folder.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(folder / HASH_CACHE, timeout=60)
        connection.execute(
            "CREATE TABLE IF NOT EXISTS hashes (path TEXT PRIMARY KEY, size INTEGER, mtime_ns INTEGER, "
            "ctime_ns INTEGER, inode INTEGER, sha256 TEXT)"
        )
        return connection
    except (OSError, sqlite3.Error):
        return None


def content_hashes(paths: Iterable[str | os.PathLike]) -> dict[Path, str]:
    """{path: sha256 of its bytes} for every path (keys as given, as Path); HarnessError naming a file that
    cannot be read. Hashes of unchanged files come from the cache; the others are computed in threads."""
    given = list(dict.fromkeys(Path(p) for p in paths))
    absolute = {p: os.path.abspath(p) for p in given}
    keys = {p: _stat_key(absolute[p]) for p in given}
    known: dict[str, tuple] = {}
    cache = _open_hash_cache()
    if cache is not None:
        try:
            names = sorted(set(absolute.values()))
            for start in range(0, len(names), 500):
                chunk = names[start : start + 500]
                rows = cache.execute(
                    f"SELECT path, size, mtime_ns, ctime_ns, inode, sha256 FROM hashes WHERE path IN "
                    f"({','.join('?' * len(chunk))})",
                    chunk,
                )
                known.update((row[0], row[1:]) for row in rows)
        except sqlite3.Error:
            known = {}
    hashes: dict[Path, str] = {}
    missing = []
    for path in given:
        row = known.get(absolute[path])
        if row is not None and tuple(row[:4]) == keys[path]:
            hashes[path] = row[4]
        else:
            missing.append(path)
    if missing:
        with ThreadPoolExecutor(min(_HASH_WORKERS, os.cpu_count() or 1)) as pool:  # hashlib releases the GIL
            computed = list(pool.map(lambda p: _sha256(absolute[p]), missing))
        hashes.update(zip(missing, computed, strict=False))
        if cache is not None:
            try:
                with cache:
                    cache.executemany(
                        "INSERT OR REPLACE INTO hashes VALUES (?, ?, ?, ?, ?, ?)",
                        [(absolute[p], *keys[p], h) for p, h in zip(missing, computed, strict=False)],
                    )
            except sqlite3.Error:
                pass
    if cache is not None:
        cache.close()
    return hashes
