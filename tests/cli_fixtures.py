"""`python -m harness ARGS` in this process, for command-line tests that need no process of their own: starting an
interpreter (and importing torch) costs seconds a call, while main(argv) runs the same code."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
from pathlib import Path


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """harness.cli.main(args) run from `cwd`: its exit status (argparse's too) and what it printed, as a
    subprocess.run result would hold them."""
    from harness.cli import main

    out, err = io.StringIO(), io.StringIO()
    previous = Path.cwd()
    try:
        if cwd is not None:
            os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(list(args))
            except SystemExit as stop:  # argparse: usage errors and --help
                code = stop.code if isinstance(stop.code, int) else 1
    finally:
        os.chdir(previous)
    return subprocess.CompletedProcess(["python", "-m", "harness", *args], code, out.getvalue(), err.getvalue())
