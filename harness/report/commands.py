"""The report stage's commands: `report`, `rescore` and `check` (arguments parsed by harness.cli)."""

from __future__ import annotations

import sys
from pathlib import Path

from tabulate import tabulate

from harness.errors import HarnessError
from harness.report import check, tables
from harness.report.build import build_report, resolve_vs
from harness.report.model import Report
from harness.report.rescore import rescore

FORMATS = ("md", "latex", "csv")
SUFFIX = {"md": "md", "latex": "tex", "csv": "csv"}


def write_report(report: Report, out: Path, formats: list[str]) -> list[Path]:
    render = {"md": tables.markdown, "latex": tables.latex, "csv": tables.csv_text}
    written = []
    try:
        out.mkdir(parents=True, exist_ok=True)
        for fmt in formats:
            path = out / f"report.{SUFFIX[fmt]}"
            path.write_text(render[fmt](report))
            written.append(path)
    except OSError as error:
        raise HarnessError(f"{out}: cannot write the report ({error.strerror or error})") from None
    return written


def parse_formats(text: str) -> list[str]:
    formats = [f.strip().lower() for f in text.split(",") if f.strip()]
    formats = ["latex" if f in ("tex", "latex") else "md" if f in ("md", "markdown") else f for f in formats]
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise HarnessError(f"unknown format '{bad[0] if bad else text}'; choose from {', '.join(FORMATS)}")
    return list(dict.fromkeys(formats))


def command_report(args) -> int:
    formats = parse_formats(args.format)
    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()] if args.metrics else None
    report = build_report(args.runs, resolve_vs(args.vs) if args.vs else None, metrics, args.caption, args.label,
                          selected_on_test=getattr(args, "selected_on_test", False))
    out = Path(args.out) if args.out else Path(args.runs[0]) / "report"
    written = write_report(report, out, formats)
    if args.plots:
        from harness.report import plots

        result = plots.make_plots(report, out / "plots")
        written += result.files
        for note in result.notes:
            print(f"plots: {note}", file=sys.stderr)
    print(tables.markdown(report), end="")
    print("written: " + ", ".join(str(p) for p in written), file=sys.stderr)
    return 0


def command_rescore(args) -> int:
    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()] if args.metrics else None
    n_jobs, changes = rescore(args.run, metrics)

    def show(x):
        return "–" if x is None else f"{x:.6f}"

    if changes:
        print(tabulate([[job, name, show(old), show(new)] for job, name, old, new in changes],
                       headers=["job", "metric", "before", "after"], tablefmt="github", disable_numparse=True))
        print()
    jobs_changed = len({job for job, *_ in changes})
    print(f"rescored {n_jobs} job(s) of {args.run}: {len(changes)} value(s) changed or added in {jobs_changed} record(s); "
          "results.csv rewritten")
    return 0


def command_check(args) -> int:
    metrics = [m.strip() for m in args.metrics.split(",")] if args.metrics else None
    if args.update:
        baseline = check.update_baseline(args.run, args.baseline, metrics)
        print(f"baseline written: {args.baseline} ({len(baseline['values'])} categories)")
        return 0
    baseline = check.load_baseline(args.baseline)
    try:
        comparisons = check.compare(args.run, baseline, metrics=metrics, atol=args.atol, rtol=args.rtol,
                                    allow_improvement=args.allow_improvement)
    except check.NotComparable as incomparable:
        for line in incomparable.problems:
            print(f"error: {line}", file=sys.stderr)
        print(f"{args.run} and {args.baseline} cannot be compared ({len(incomparable.problems)} difference(s) above)",
              file=sys.stderr)
        return 2
    print(check.comparison_table(comparisons))
    machines = check.machines_differ(args.run, baseline)
    if machines:
        print(f"\nmachines differ: baseline made on {check.describe_machine(machines[0])}; "
              f"this run on {check.describe_machine(machines[1])}")
    summary = check.drift_summary(comparisons)
    if summary:
        print(f"\n{summary}", file=sys.stderr)
        return 1
    print(f"\nall {len(comparisons)} values within tolerance of {args.baseline}")
    return 0
