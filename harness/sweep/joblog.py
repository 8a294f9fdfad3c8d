"""A job's log (jobs/<id>/log.txt): its own progress lines plus what it prints and warns while it runs.

Progress-bar redraws (text containing a carriage return) are shown on the terminal when echoing but
kept out of the file: the log keeps one line per epoch instead.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TextIO


class _Tee(io.TextIOBase):
    """A stand-in for sys.stdout/sys.stderr that copies text to the job log and, optionally, the terminal."""

    def __init__(self, log: JobLog, terminal) -> None:
        self._log = log
        self._terminal = terminal
        self._pending = ""

    def write(self, text: str) -> int:
        if self._terminal is not None:
            self._terminal.write(text)
        # A progress bar redraws with '\r' and moves between its lines with escapes and bare newlines:
        # none of that belongs in the log. Bare newlines wait until it is clear which they are.
        if "\r" in text or "\x1b" in text:
            self._log.end_line()
            self._pending = ""
        elif not text.strip("\n"):
            self._pending += text
        else:
            self._log.write(self._pending + text)
            self._pending = ""
        return len(text)

    def close_pending(self) -> None:
        if self._pending:
            self._log.write(self._pending)
            self._pending = ""

    def flush(self) -> None:
        if self._terminal is not None:
            self._terminal.flush()

    def isatty(self) -> bool:
        return self._terminal is not None and self._terminal.isatty()

    @property
    def encoding(self) -> str:  # type: ignore[override]  # tqdm and warnings ask for it; read-only in io too
        return getattr(self._terminal, "encoding", "utf-8")


class JobLog:
    """Collects a job's log; writes it to `path` as it goes (so a killed job leaves what it did), else keeps it.

    Use as a context manager; with `capture`, sys.stdout and sys.stderr are replaced while it is open
    (one job per process at a time: the local backend's children, a serial run).
    """

    def __init__(
        self,
        path: str | os.PathLike | None = None,
        *,
        echo: bool = False,
        capture: bool = True,
        sink: Callable[[str], None] | None = None,
    ) -> None:
        self.path = Path(path) if path is not None else None
        self.echo = echo
        self.capture = capture
        self.sink = sink  # also receives every piece of the log as it is written
        self._buffer = io.StringIO() if self.path is None else None
        self._file: TextIO | None = None
        self._stack = contextlib.ExitStack()
        self._tees: list[_Tee] = []
        self._line_open = False

    def __enter__(self) -> JobLog:
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self._stack.enter_context(open(self.path, "w", encoding="utf-8", buffering=1))
        if self.capture:
            self._tees = [_Tee(self, sys.stdout if self.echo else None), _Tee(self, sys.stderr if self.echo else None)]
            self._stack.enter_context(contextlib.redirect_stdout(self._tees[0]))
            self._stack.enter_context(contextlib.redirect_stderr(self._tees[1]))
        return self

    def __exit__(self, *exc) -> None:
        for tee in self._tees:
            tee.close_pending()
        self._stack.close()

    def write(self, text: str) -> None:
        if not text:
            return
        if self._file is not None:
            self._file.write(text)
        elif self._buffer is not None:
            self._buffer.write(text)
        if self.sink is not None:
            self.sink(text)
        self._line_open = not text.endswith("\n")

    def end_line(self) -> None:
        if self._line_open:
            self.write("\n")

    def line(self, text: str) -> None:
        """One timestamped line of the job's own."""
        self.end_line()
        self.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {text}\n")

    def text(self) -> str | None:
        """The log so far when it is kept in memory; None when it went to a file."""
        return self._buffer.getvalue() if self._buffer is not None else None
