"""`report` and `check` as functions (harness.report, harness.check): the command's options as keywords,
the same validation, and the outcome returned instead of printed."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.report.commands import CheckOutcome, ReportOutput, check_run, make_report
from harness.report.options import add_report_arguments


def _names(value: str | Sequence[str] | None) -> str | None:
    """A list of names as the command line's comma-separated text."""
    if value is None or isinstance(value, str):
        return value
    return ",".join(str(v) for v in value)


def report(
    *runs: str | Path,
    vs: str | Sequence[str | Path] = (),
    formats: str | Sequence[str] = ("md",),
    out: str | Path | None = None,
    metrics: str | Sequence[str] | None = None,
    **options: Any,
) -> ReportOutput:
    """Tables (and with plots=True, figures) of run folders beside other runs and references, written to `out`
    (default: RUN/report). Keywords are `report`'s flags (layout, notes, caption, label, name, width, ...)."""
    if not runs:
        raise HarnessError("report: give at least one run folder")
    parser = argparse.ArgumentParser(prog="harness.report", add_help=False)
    add_report_arguments(parser)
    args = parser.parse_args([str(run) for run in runs])
    args.vs = [str(vs)] if isinstance(vs, (str, Path)) else [str(v) for v in vs]
    args.format = _names(formats)
    args.out = str(out) if out is not None else None
    args.metrics = _names(metrics)
    for key, value in options.items():
        if key not in vars(args):
            known = sorted(k for k in vars(args) if k not in ("runs",))
            raise HarnessError(f"report: unknown option '{key}'; known options: {', '.join(known + ['formats'])}")
        setattr(args, key, [value] if key == "name" and isinstance(value, str) else value)
    return make_report(args)


def check(
    run: str | Path,
    baseline: str | Path,
    *,
    update: bool = False,
    metrics: str | Sequence[str] | None = None,
    atol: float | None = None,
    rtol: float | None = None,
    allow_improvement: bool = False,
    categories: str | Sequence[str] | None = None,
) -> CheckOutcome:
    """A run against a baseline file: CheckOutcome.exit_code 0 within tolerance, 1 drift, 2 not comparable
    (as `check`'s exit code). With update=True the baseline is written from the run instead."""
    args = argparse.Namespace(
        run=str(run),
        baseline=str(baseline),
        update=update,
        metrics=_names(metrics),
        atol=atol,
        rtol=rtol,
        allow_improvement=allow_improvement,
        categories=_names(categories),
    )
    return check_run(args)
