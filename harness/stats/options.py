"""The flags of intervals and tests (light: imported whenever the command line is parsed)."""

from __future__ import annotations

import argparse

DEFAULT_RESAMPLES = 1000  # bootstrap resamples
DEFAULT_SEED = 0  # seed of the resamples


def _confidence(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number") from None
    if not 0.5 <= value < 1:
        raise argparse.ArgumentTypeError(f"{value:g} is not a confidence level in [0.5, 1)")
    return value


def _resamples(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError("at least one resample")
    return value


def add_interval_arguments(parser: argparse.ArgumentParser) -> None:
    """--resamples, --ci-seed and --confidence (shared by `report --ci` and `compare`)."""
    parser.add_argument(
        "--resamples",
        type=_resamples,
        default=DEFAULT_RESAMPLES,
        metavar="B",
        help=f"bootstrap resamples of the test images (default {DEFAULT_RESAMPLES})",
    )
    parser.add_argument(
        "--ci-seed",
        type=int,
        default=DEFAULT_SEED,
        metavar="SEED",
        help=f"seed of the bootstrap resamples (default {DEFAULT_SEED}; the same seed gives the same intervals)",
    )
    parser.add_argument(
        "--confidence",
        type=_confidence,
        default=0.95,
        metavar="LEVEL",
        help="confidence level of intervals (default 0.95)",
    )


def add_compare_parser(commands) -> None:
    def command_compare(args: argparse.Namespace) -> int:
        from harness.stats.compare import command_compare as run

        return run(args)

    compare = commands.add_parser(
        "compare",
        help="paired tests of runs on the same test images, and a critical-difference figure",
        description="Paired differences of the first run against each other run, per category and for the mean: "
        "paired DeLong for I-AUROC, paired stratified image bootstrap for the other metrics, Wilcoxon "
        "signed-rank over categories; with three or more runs, the Friedman test, Holm-corrected "
        "post-hoc tests and a critical-difference diagram. Reads stored predictions only; refuses runs "
        "tested on different images.",
    )
    compare.add_argument("runs", nargs="+", metavar="RUN", help="two or more run folders; the first is compared")
    compare.add_argument("--metrics", help="comma-separated metric names (default: those all the runs have)")
    add_interval_arguments(compare)
    compare.add_argument("--out", help="folder for the figures and compare.csv (default: <first run>/compare)")
    compare.set_defaults(handler=command_compare)
