"""The `report` command's options (light: imported whenever the command line is parsed)."""

from __future__ import annotations

import argparse

FORMATS = ("md", "latex", "csv", "html")
LAYOUTS = ("auto", "compact", "per-metric", "wide", "transposed")
NOTES = ("none", "short", "full")
BOLD = ("runs", "all", "none")
FIGURE_WIDTHS = {"column": 3.3, "page": 6.9}  # inches: one column, two columns of a paper


def add_report_arguments(parser: argparse.ArgumentParser) -> None:
    from harness.report.references import names

    parser.add_argument("runs", nargs="+", metavar="RUN", help="run folder(s); the first is the one compared")
    parser.add_argument(
        "--vs",
        action="append",
        metavar="REFERENCE|RUN",
        help="compare with a run folder or a reference (repeatable, in order): " + ", ".join(names()),
    )
    parser.add_argument(
        "--name",
        action="append",
        metavar="NAME|TARGET=NAME",
        help="the name a run or reference is printed under (repeatable): in order (runs, then --vs), "
        "or TARGET=NAME with TARGET a run folder or reference as given (default: the method, "
        "e.g. RD, and a readable name per reference)",
    )
    parser.add_argument(
        "--format",
        default="md,latex,csv",
        help="comma-separated: md, latex, csv, html (default: md,latex,csv; html is one self-contained "
        "file with the tables, notes and figures)",
    )
    parser.add_argument("--metrics", help="comma-separated metric names (default: all in the runs)")
    parser.add_argument(
        "--layout",
        choices=LAYOUTS,
        default="auto",
        help="table layout. LaTeX: compact (table, \\columnwidth >= 3.25 in, metrics in one cell), per-metric "
        "(a table per metric, same width), wide (table*, \\textwidth >= 6.875 in), transposed (table*, "
        "categories as columns); auto (default): the first of these that fits, and a named layout that does not "
        "fit is refused. Markdown: wide (one table, every metric), per-metric, transposed (runs as rows), "
        "compact (metrics in one cell); auto: wide when its lines fit in 120 characters, else per-metric",
    )
    parser.add_argument(
        "--width",
        type=_inches,
        metavar="INCHES",
        help="the width the LaTeX table must fit (default: 3.25 compact and per-metric, 6.875 wide and "
        "transposed; with auto, every layout is tried at this width)",
    )
    parser.add_argument(
        "--notes",
        choices=NOTES,
        help="notes under the tables: none, short (LaTeX default) or full (Markdown and HTML default)",
    )
    parser.add_argument(
        "--std",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="print ± sample std over seeds (default: when the LaTeX layout has room; always in Markdown and HTML)",
    )
    parser.add_argument(
        "--bold",
        choices=BOLD,
        default="runs",
        help="bold the best value among the runs (default), every column including published numbers, or none",
    )
    parser.add_argument(
        "--selected-on-test",
        action="store_true",
        help="add a column per run with each job's best epoch on the test set (recorded by run "
        "--eval-every; the official RD++ protocol): model selection on test data, never the "
        "default, never bold unless --bold all",
    )
    parser.add_argument("--caption", help="table caption (special characters are escaped in LaTeX)")
    parser.add_argument("--label", help="LaTeX label (default: tab:<data set>-<name>-<hash of what is compared>)")
    parser.add_argument("--plots", action="store_true", help="also write PNG and PDF figures to OUT/plots")
    parser.add_argument(
        "--figure-width",
        choices=list(FIGURE_WIDTHS),
        default="column",
        help="figures for one column (3.3 in, default) or both columns (6.9 in) of a paper",
    )
    parser.add_argument(
        "--ci",
        action="store_true",
        help="add intervals from the stored predictions: DeLong for I-AUROC, stratified image bootstrap for "
        "the other metrics; with --vs RUN, mark differences whose paired interval excludes 0 (docs/statistics.md)",
    )
    parser.add_argument(
        "--ci-over",
        choices=("images", "seeds"),
        default="images",
        help="--ci over the test images (default) or over seeds (Student's t of the per-seed values)",
    )
    from harness.stats.options import add_interval_arguments

    add_interval_arguments(parser)
    parser.add_argument("--out", help="output folder (default: <first run>/report)")


def _inches(text: str) -> float:
    try:
        value = float(text.removesuffix("in"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a width in inches") from None
    if not 1 <= value <= 20:
        raise argparse.ArgumentTypeError(f"{value:g} in is not a plausible table width (1 to 20 in)")
    return value
