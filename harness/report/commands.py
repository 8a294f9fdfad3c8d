"""The report stage's commands: `report`, `rescore` and `check` (arguments parsed by harness.cli)."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from tabulate import tabulate

from harness.errors import HarnessError
from harness.files import remove_stale_temporaries, scratch_folder
from harness.report import check, tables
from harness.report.build import build_report, resolve_vs
from harness.report.model import Report
from harness.report.options import FORMATS
from harness.report.rescore import rescore

SUFFIX = {"md": "md", "latex": "tex", "csv": "csv", "html": "html"}


@dataclass
class Rendering:
    """How the tables and figures are rendered (the `report` flags)."""

    layout: str = "auto"  # LaTeX: a layout that fits (harness.report.latex.choose_layout) once chosen
    markdown_layout: str = "auto"
    width: float | None = None  # inches the LaTeX table must fit
    notes: str | None = None  # None: short in LaTeX, full in Markdown and HTML
    std: bool | None = None  # None: in LaTeX when it fits
    figure_width: str = "column"
    label_suffix: bool = False  # append the layout to the label (a default label: tables of one run stay apart)
    warnings: list[str] = field(default_factory=list)


def render(report: Report, fmt: str, rendering: Rendering, figures=None) -> str:
    if fmt == "md":
        return tables.markdown(report, rendering.notes or "full", rendering.markdown_layout)
    if fmt == "csv":
        return tables.csv_text(report)
    if fmt == "html":
        from harness.report.html import page

        return page(report, rendering.notes or "full", figures)
    from harness.report.latex import render as latex

    rendered = latex(
        report,
        rendering.layout,
        rendering.notes or "short",
        rendering.std,
        label_suffix=rendering.label_suffix,
        width=rendering.width,
    )
    rendering.warnings += rendered.fit.warnings
    return rendered.text


def write_report(
    report: Report, out: Path, formats: list[str], rendering: Rendering | None = None, figures=None
) -> list[Path]:
    rendering = rendering or Rendering()
    written = []
    try:
        out.mkdir(parents=True, exist_ok=True)
        for fmt in formats:
            path = out / f"report.{SUFFIX[fmt]}"
            path.write_text(render(report, fmt, rendering, figures), encoding="utf-8")
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


@dataclass
class ReportOutput:
    """What `report` made: the report (its model), the files written and the Markdown it prints."""

    report: Report
    written: list[Path]
    markdown: str
    warnings: list[str] = field(default_factory=list)


def make_report(args) -> ReportOutput:
    """Build and write the report the `report` arguments ask for (printing nothing)."""
    formats = parse_formats(args.format)
    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()] if args.metrics else None
    vs = [resolve_vs(text) for text in args.vs or []]
    report = build_report(
        args.runs,
        vs,
        metrics,
        args.caption,
        args.label,
        names=args.name,
        bold=args.bold,
        selected_on_test=args.selected_on_test,
        intervals=_interval_options(args),
    )
    for side in report.sides:
        if side.kind == "run" and side.progress is not None and not side.progress.complete:
            print(f"warning: {side.path} is incomplete: {side.progress.describe()}", file=sys.stderr)
    out = Path(args.out) if args.out else Path(args.runs[0]) / "report"
    rendering = Rendering(
        args.layout,
        tables.markdown_layout(args.layout),
        args.width,
        args.notes,
        args.std,
        args.figure_width,
        label_suffix=args.label is None,
    )
    if "latex" in formats:  # a table that cannot fit its width is refused before anything is written
        from harness.report.latex import choose_layout

        fit = choose_layout(report, args.layout, args.std, args.width)
        if fit.layout != args.layout:
            print(f"LaTeX layout: {fit.layout} (the first that fits {fit.target / 72.27:g} in)", file=sys.stderr)
        rendering.layout = fit.layout
    figures, written = None, []
    if out.is_dir():
        remove_stale_temporaries(out)  # the scratch folders of a killed report
    warnings: list[str] = []
    if args.plots or "html" in formats:
        from harness.report import plots

        with scratch_folder(out) as scratch:
            folder = out / "plots" if args.plots else Path(scratch)
            figures = plots.make_plots(
                report,
                folder,
                width=args.figure_width,
                formats=plots.FORMATS if args.plots else (),
                embed="html" in formats,
            )
            if args.plots:
                written += figures.files
        warnings += [f"plots: {note}" for note in figures.notes]
    written = write_report(report, out, formats, rendering, figures) + written
    warnings += [f"warning: {warning}" for warning in rendering.warnings]
    markdown = tables.markdown(report, args.notes or "full", rendering.markdown_layout)
    return ReportOutput(report, written, markdown, warnings)


def command_report(args) -> int:
    output = make_report(args)
    for line in output.warnings:
        print(line, file=sys.stderr)
    print(output.markdown, end="")
    print("written: " + ", ".join(str(p) for p in output.written), file=sys.stderr)
    return 0


def _interval_options(args):
    """report --ci: how intervals are computed; None without --ci."""
    if not getattr(args, "ci", False):
        return None
    from harness.stats.intervals import Options

    return Options(args.resamples, args.ci_seed, args.confidence, args.ci_over)


def command_rescore(args) -> int:
    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()] if args.metrics else None
    n_jobs, changes = rescore(args.run, metrics)

    def show(x):
        return "–" if x is None else f"{x:.6f}"

    if changes:
        print(
            tabulate(
                [[job, name, show(old), show(new)] for job, name, old, new in changes],
                headers=["job", "metric", "before", "after"],
                tablefmt="github",
                disable_numparse=True,
            )
        )
        print()
    jobs_changed = len({job for job, *_ in changes})
    print(
        f"rescored {n_jobs} job(s) of {args.run}: "
        f"{len(changes)} value(s) changed or added in {jobs_changed} record(s); "
        "results.csv rewritten"
    )
    return 0


@dataclass
class CheckOutcome:
    """The result of `check`: `exit_code` 0 within tolerance (or baseline written), 1 drift, 2 not comparable."""

    exit_code: int
    comparisons: list = field(default_factory=list)  # check.Comparison per (category, metric)
    drift: str | None = None  # the drift summary line, None without drift
    problems: list[str] = field(default_factory=list)  # why the run and the baseline cannot be compared
    machines: tuple[dict, dict] | None = None  # (baseline's, run's) machine when they differ
    baseline: dict | None = None  # the baseline written (--update)
    notes: list[str] = field(default_factory=list)  # the tolerance rule that applied, what data were compared
    data_differ: bool = False  # the run was made from other data than the baseline (problems say how)

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


def check_run(args) -> CheckOutcome:
    """`check` without printing: compare (or with `update`, write the baseline)."""
    metrics = [m.strip() for m in args.metrics.split(",")] if args.metrics else None
    categories = [c.strip() for c in args.categories.split(",") if c.strip()] if args.categories else None
    if args.update:
        return CheckOutcome(0, baseline=check.update_baseline(args.run, args.baseline, metrics, categories))
    baseline = check.load_baseline(args.baseline)
    try:
        comparisons = check.compare(
            args.run,
            baseline,
            metrics=metrics,
            atol=args.atol,
            rtol=args.rtol,
            allow_improvement=args.allow_improvement,
            categories=categories,
        )
    except check.DataDiffers as different:
        return CheckOutcome(2, problems=list(different.problems), data_differ=True)
    except check.NotComparable as incomparable:
        return CheckOutcome(2, problems=list(incomparable.problems))
    summary = check.drift_summary(comparisons)
    machines = check.machines_differ(args.run, baseline)
    notes = [*check.tolerance_lines(comparisons, baseline, machines), check.data_note(args.run, baseline, categories)]
    return CheckOutcome(1 if summary else 0, comparisons, summary, machines=machines, notes=notes)


def command_check(args) -> int:
    outcome = check_run(args)
    if outcome.baseline is not None:
        print(f"baseline written: {args.baseline} ({len(outcome.baseline['values'])} categories)")
        return 0
    if outcome.problems:
        for line in outcome.problems:
            print(f"error: {line}", file=sys.stderr)
        if outcome.data_differ:
            print(
                f"{args.run} was made from other data than {args.baseline}: not compared (not drift)", file=sys.stderr
            )
            return 2
        print(
            f"{args.run} and {args.baseline} cannot be compared ({len(outcome.problems)} difference(s) above)",
            file=sys.stderr,
        )
        return 2
    print(check.comparison_table(outcome.comparisons))
    print()
    if outcome.machines:
        print(
            f"machines differ: baseline made on {check.describe_machine(outcome.machines[0])}; "
            f"this run on {check.describe_machine(outcome.machines[1])}"
        )
    for line in outcome.notes:
        print(line)
    if outcome.drift:
        print(f"\n{outcome.drift}", file=sys.stderr)
        return 1
    print(f"\nall {len(outcome.comparisons)} values within tolerance of {args.baseline}")
    return 0
