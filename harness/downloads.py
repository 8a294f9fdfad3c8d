"""Downloads: resumable, verified, atomic; mirrors and the offline switch. Foundation-level code.

- `fetch_file` downloads a URL into `<dest>.part`, resuming a partial file with an HTTP Range request
  where the server supports it (else it starts again), checks the length the server announced and
  the published checksums, and only then renames the file to `dest`. A file under its final name is
  therefore always complete and verified; a `.part` file is never read as data, and one that fails
  its checksum is deleted.
- `mirror_url`: with `--mirror URL` or `HARNESS_MIRROR=URL` every file is taken from
  `<mirror>/<folder>/<file name>` instead of its original URL (a local folder works too).
- `offline()`: `HARNESS_OFFLINE=1` forbids every download.
- `permit_downloads`: only a process that asked for it downloads what is missing on the side (the
  command line's main process does; jobs in child processes and workers never do).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import sys
import tarfile
import tempfile
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.client import HTTPException
from pathlib import Path
from urllib.error import HTTPError, URLError
from urllib.request import Request, urlopen

from harness.errors import DownloadError
from harness.files import remove_stale_temporaries

CHUNK = 1 << 20
TIMEOUT = 60.0  # seconds without a byte before a connection counts as broken
ATTEMPTS = 3  # tries per URL; each resumes where the last one stopped
USER_AGENT = "rd-harness (python urllib)"

_permitted = False


def offline() -> bool:
    """True when HARNESS_OFFLINE is set to anything but '', 0, false or no."""
    return os.environ.get("HARNESS_OFFLINE", "").strip().lower() not in ("", "0", "false", "no")


def downloads_permitted() -> bool:
    """Whether this process may download a missing file on the side (see `permit_downloads`)."""
    return _permitted and not offline()


@contextlib.contextmanager
def permit_downloads(permitted: bool = True) -> Iterator[None]:
    """Let code running inside the block download missing files (unless HARNESS_OFFLINE is set)."""
    global _permitted
    previous, _permitted = _permitted, permitted
    try:
        yield
    finally:
        _permitted = previous


def mirror_base(mirror: str | None = None) -> str | None:
    """The mirror's base URL: `mirror`, else $HARNESS_MIRROR, else None. A path becomes a file:// URL."""
    base = (mirror if mirror is not None else os.environ.get("HARNESS_MIRROR", "")).strip()
    if not base:
        return None
    if "://" not in base:
        base = Path(base).expanduser().resolve().as_uri()
    return base.rstrip("/")


def mirror_url(url: str, folder: str, name: str, mirror: str | None = None) -> str:
    """`<mirror>/<folder>/<name>` when a mirror is set, else the original `url`."""
    base = mirror_base(mirror)
    return f"{base}/{folder}/{name}" if base else url


# --------------------------------------------------------------------------------------------
# Checksums


@dataclass(frozen=True)
class Remote:
    """One file to download: where from, what it must hash to, and who says so."""

    name: str  # file name on disk (and under a mirror)
    urls: tuple[str, ...]  # tried in order
    checksums: dict[str, str] = field(default_factory=dict)  # algorithm ("md5", "sha256") -> hex digest
    size: int | None = None  # exact size in bytes, where the source publishes it
    source: str = ""  # where the URL and the checksum are published


def file_digests(path: str | os.PathLike, algorithms) -> dict[str, str]:
    """Hex digests of a file, one pass for all algorithms."""
    hashes = {name: hashlib.new(name) for name in algorithms}
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(CHUNK), b""):
            for digest in hashes.values():
                digest.update(chunk)
    return {name: digest.hexdigest() for name, digest in hashes.items()}


def checksum_problem(path: str | os.PathLike, checksums: dict[str, str]) -> str:
    """'' when the file has every expected digest, else 'sha256 is X, expected Y'."""
    if not checksums:
        return ""
    found = file_digests(path, checksums)
    wrong = [
        f"{name} is {found[name]}, expected {expected}"
        for name, expected in checksums.items()
        if found[name] != expected.lower()
    ]
    return "; ".join(wrong)


# --------------------------------------------------------------------------------------------
# Downloading


class _Broken(Exception):
    """A transfer that stopped early or failed in a way worth another try (resuming where it stopped)."""


def _progress(total: int | None, initial: int, what: str, enabled: bool):
    from tqdm.auto import tqdm

    terminal = sys.stderr.isatty()
    if enabled and not terminal:  # logs and pipes get one plain line, never a bar's carriage returns
        size = f", {total / 2**20:,.1f} MiB" if total else ""
        resumed = f", resuming at byte {initial:,}" if initial else ""
        print(f"{what}: downloading{size}{resumed}", file=sys.stderr, flush=True)
    return tqdm(
        total=total,
        initial=initial,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        desc=what,
        disable=not (enabled and terminal),
        file=sys.stderr,
        leave=True,
    )


def _content_range(value: str | None) -> tuple[int | None, int | None]:
    """(first byte, total) of a Content-Range header such as 'bytes 100-199/200' or 'bytes */200'."""
    match = re.match(r"\s*bytes\s+(?:(\d+)-\d+|\*)/(\d+|\*)", value or "")
    if not match:
        return None, None
    first = int(match.group(1)) if match.group(1) is not None else None
    total = int(match.group(2)) if match.group(2) != "*" else None
    return first, total


def _transfer(url: str, part: Path, size: int | None, what: str, progress: bool) -> None:
    """One attempt: download `url` into `part`, resuming from its current length when the server allows.
    Raises _Broken for what another attempt may fix, DownloadError for what it cannot."""
    have = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    if have:
        headers["Range"] = f"bytes={have}-"
    try:
        response = urlopen(Request(url, headers=headers), timeout=TIMEOUT)
    except HTTPError as error:
        if error.code == 416 and have:  # nothing left to send: the partial file is complete (or wrong)
            _, total = _content_range(error.headers.get("Content-Range"))
            if total == have:
                return
            part.unlink()
            raise _Broken(f"the partial file is longer than the server's ({have} bytes); starting again") from None
        if error.code in (408, 425, 429) or error.code >= 500:
            raise _Broken(f"HTTP {error.code} {error.reason}") from None
        raise DownloadError(f"cannot download {url}: HTTP {error.code} {error.reason}") from None
    except (URLError, OSError, HTTPException) as error:
        reason = getattr(error, "reason", None) or error
        raise _Broken(f"cannot connect ({reason})") from None

    with response:
        status = getattr(response, "status", None)
        length = response.headers.get("Content-Length")
        length = int(length) if length and length.isdigit() else None
        if have and status == 206:
            first, total = _content_range(response.headers.get("Content-Range"))
            if first != have:
                part.unlink()
                raise _Broken(f"the server resumed at byte {first}, not {have}; starting again")
            mode = "ab"
        else:
            if have:
                print(f"{what}: the server does not resume downloads; starting again", file=sys.stderr)
            have, mode, total = 0, "wb", length
        if size is not None and total is not None and total != size:
            raise DownloadError(
                f"cannot download {url}: the server announces {total} bytes, the published size is "
                f"{size} (wrong file or mirror?)"
            )
        with open(part, mode) as out, _progress(total, have, what, progress) as bar:
            while True:
                try:
                    chunk = response.read(CHUNK)
                except (OSError, HTTPException) as error:
                    raise _Broken(f"connection lost ({type(error).__name__})") from None
                if not chunk:
                    break
                out.write(chunk)
                bar.update(len(chunk))
    got = part.stat().st_size
    if total is not None and got < total:
        raise _Broken(f"connection closed after {got} of {total} bytes")
    if total is not None and got > total:
        part.unlink()
        raise _Broken(f"received {got} bytes, more than the {total} announced; starting again")


def _download(
    url: str, part: Path, size: int | None, what: str, progress: bool, attempts: int, pause: float, failures: list[str]
) -> bool:
    """Up to `attempts` transfers of `url` into `part`, each resuming the last; False (with the reasons
    appended to `failures`) when none completed or the server refused."""
    for attempt in range(1, attempts + 1):
        try:
            _transfer(url, part, size, what, progress)
            return True
        except DownloadError as error:  # refused (e.g. HTTP 404): another try would not help
            failures.append(str(error))
            return False
        except _Broken as error:
            failures.append(f"{url}: {error}")
            if attempt < attempts:
                print(f"{what}: {error}; trying again ({attempt + 1} of {attempts})", file=sys.stderr)
                time.sleep(pause * attempt)
    return False


def fetch_file(
    remote: Remote,
    dest: str | os.PathLike,
    *,
    urls: tuple[str, ...] | None = None,
    what: str | None = None,
    progress: bool = True,
    attempts: int = ATTEMPTS,
    pause: float = 1.0,
) -> Path:
    """Download `remote` to `dest`: through `<dest>.part`, resumed across attempts and URLs, then checked
    against its checksums and size and renamed. An existing `dest` that passes the checks is kept.

    Raises DownloadError (one line): the server refused, every attempt broke (the partial file is kept
    and the same command resumes it), or the file does not match its checksum (it is deleted)."""
    dest = Path(dest)
    what = what or remote.name
    if dest.is_file():
        if not checksum_problem(dest, remote.checksums):
            return dest
        print(f"{what}: {dest} does not match its checksum; downloading it again", file=sys.stderr)
        dest.unlink()
    if offline():
        raise DownloadError(
            f"cannot download {remote.name}: HARNESS_OFFLINE is set (unset it to download, or put the "
            f"file at {dest} yourself)"
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    failures: list[str] = []
    for url in urls or remote.urls:
        if _download(url, part, remote.size, what, progress, attempts, pause, failures):
            break
    else:
        kept = part.stat().st_size if part.exists() else 0
        keep = f"; the {kept} bytes received are kept in {part} and the same command resumes from there" if kept else ""
        raise DownloadError(f"download of {remote.name} failed ({failures[-1]}){keep}")
    problem = checksum_problem(part, remote.checksums)
    if problem:
        part.unlink()
        raise DownloadError(
            f"{remote.name} from {url}: checksum mismatch ({problem}; published by "
            f"{remote.source or 'the data set'}); the file was deleted: run the command again to "
            f"download it afresh, or check the mirror"
        )
    if remote.size is not None and part.stat().st_size != remote.size:
        size = part.stat().st_size
        part.unlink()
        raise DownloadError(
            f"{remote.name} from {url}: {size} bytes, the published size is {remote.size}; the file was deleted"
        )
    os.replace(part, dest)
    return dest


class ChecksumMismatch(DownloadError):
    """A download completed but its bytes are not the ones expected."""


def download_to_file(url: str, dest: str | os.PathLike, *, sha256_prefix: str | None = None, what: str = "") -> Path:
    """One transfer of `url` to `dest`, as torch.hub does it but with read timeouts: through a temporary
    file beside `dest` that any failure removes (the next download removes one of a killed process), a
    stalled server included (no byte for TIMEOUT seconds raises TimeoutError); then the sha256 prefix is
    checked (ChecksumMismatch) and the file renamed. Connection and HTTP errors propagate as urllib raises
    them (URLError, HTTPError, OSError, HTTPException)."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(dest.parent)  # what a download killed outright (SIGKILL) left
    fd, temporary = tempfile.mkstemp(prefix=f".{dest.name}.{os.getpid()}-", suffix=".tmp", dir=dest.parent)
    try:
        digest = hashlib.sha256()
        request = Request(url, headers={"User-Agent": USER_AGENT, "Accept-Encoding": "identity"})
        with os.fdopen(fd, "wb") as out, urlopen(request, timeout=TIMEOUT) as response:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            with _progress(total, 0, what or dest.name, True) as bar:
                while chunk := response.read(CHUNK):
                    out.write(chunk)
                    digest.update(chunk)
                    bar.update(len(chunk))
        if sha256_prefix and not digest.hexdigest().startswith(sha256_prefix):
            raise ChecksumMismatch(f"{url}: sha256 {digest.hexdigest()}, expected {sha256_prefix}...")
        os.replace(temporary, dest)
    finally:
        Path(temporary).unlink(missing_ok=True)
    return dest


# --------------------------------------------------------------------------------------------
# Archives


def extract(archive: str | os.PathLike, into: str | os.PathLike, *, what: str = "", progress: bool = True) -> int:
    """Unpack a tar (any compression) or zip archive into `into`; returns the number of files written.
    Members that would land outside `into` (absolute paths, '..', links out) are refused."""
    archive, into = Path(archive), Path(into)
    into.mkdir(parents=True, exist_ok=True)
    what = what or archive.name
    from tqdm.auto import tqdm

    count = 0
    try:
        if tarfile.is_tarfile(archive):
            with (
                tarfile.open(archive) as tar,
                tqdm(
                    desc=f"{what}: extracting", unit=" files", file=sys.stderr, disable=None if progress else True
                ) as bar,
            ):  # None: terminal only
                for member in tar:
                    tar.extract(member, into, filter="data")
                    if member.isfile():
                        count += 1
                        bar.update()
        elif zipfile.is_zipfile(archive):
            root = into.resolve()
            with zipfile.ZipFile(archive) as package:
                for info in package.infolist():
                    target = (into / info.filename).resolve()
                    if not target.is_relative_to(root):
                        raise DownloadError(f"{archive}: member {info.filename} would be written outside {into}")
                    package.extract(info, into)
                    count += not info.is_dir()
        else:
            raise DownloadError(f"{archive}: neither a tar nor a zip archive")
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as error:
        raise DownloadError(f"cannot extract {archive} into {into}: {type(error).__name__}: {error}") from None
    return count
