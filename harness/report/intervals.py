"""`report --ci`: each run's cells get their interval, and with --vs RUN each difference its paired test.

Intervals come from harness.stats (stored predictions, never retraining); this module puts them into
the report's cells and says in the notes which method made each interval, with how many resamples.
Published references have no predictions: only the runs' own intervals are known, and a note says so.
"""

from __future__ import annotations

import sys

from harness.metrics import LABELS, METRICS
from harness.report.model import MEAN, Note, Report, Side
from harness.stats.intervals import Options, RunIntervals, paired_difference, same_images


def attach_intervals(report: Report, options: Options) -> None:
    """Fill ci_low, ci_high and ci_method of every run cell (group mean rows have none), the paired
    differences of the first run with each other run tested on the same images, and the notes."""
    over = "test images" if options.over == "images" else "seeds"
    report.intervals = f"{options.confidence:.0%} interval over {over}"
    computed: dict[str, RunIntervals] = {}
    for side in report.sides:
        if side.kind != "run" or side.path is None:
            continue
        stats = computed[side.key] = RunIntervals(side.path, options)
        print(f"intervals: {side.name}, {len(stats.data)} categories, {over}", file=sys.stderr)
        for (row, metric), cell in side.cells.items():
            if metric not in METRICS or row in report.group_rows:
                continue
            found = stats.interval(row, metric)
            if found.reason:
                cell.ci_method = found.reason
                continue
            cell.ci_low, cell.ci_high, cell.ci_method = found.low, found.high, found.method
    notes = [_methods_note(report, options)]
    first = report.sides[0]
    for side in report.sides[1:]:
        if side.kind == "reference":
            notes.append(
                Note(
                    f"{side.tag}: published numbers without predictions, so no interval; only the interval of "
                    f"{first.tag} is known, and a difference from {side.tag} cannot be tested."
                )
            )
        elif side.key in computed and first.key in computed and options.over == "images":
            notes.append(_pair(report, computed[first.key], computed[side.key], first, side))
    report.notes = notes + report.notes


def _pair(report: Report, a: RunIntervals, b: RunIntervals, first: Side, side: Side) -> Note:
    problem = same_images(a, b)
    if problem:
        return Note(f"Δ vs {side.tag} not tested: the two runs were not tested on the same images ({problem}).")
    same_set = set(a.data) == set(b.data)  # else the mean rows average different categories: not paired
    for metric in report.metrics:
        for row in [*report.categories, *([MEAN] if same_set else [])]:
            if (row, metric) in first.cells and (row, metric) in side.cells:
                found = paired_difference(a, b, row, metric)
                if found is not None:
                    report.paired[row, metric, side.key] = found
    boot = a.options
    return Note(
        f"Δ vs {side.tag}: ‡ where the {boot.confidence:.0%} interval of the paired difference excludes 0; "
        f"I-AUROC by the paired DeLong test, the other metrics by a paired stratified image bootstrap (the same "
        f"resampled images for both runs, B={boot.resamples}, seed {boot.seed}); p-values in report.csv"
        + ("." if same_set else "; the mean rows cover different categories and are not tested.")
    )


def _methods_note(report: Report, options: Options) -> Note:
    """Which method made the intervals of each metric (categories, then the mean row)."""
    by_method: dict[str, list[str]] = {}
    for metric in report.metrics:
        for side in report.sides:
            for (row, name), cell in side.cells.items():
                if name == metric and cell.ci_method and cell.has_interval:
                    where = "mean row" if row == MEAN else "categories"
                    key = f"{cell.ci_method} ({where})"
                    if LABELS.get(metric, metric) not in by_method.setdefault(key, []):
                        by_method[key].append(LABELS.get(metric, metric))
    if not by_method:
        return Note(f"Intervals ({report.intervals}): none could be computed.", short=True)
    parts = [f"{', '.join(metrics)}: {method}" for method, metrics in by_method.items()]
    extra = (
        " Normal and anomalous images are resampled apart; a category's seeds share each resample, so the "
        "interval is that of the mean over seeds; group mean rows have none. Pixel metrics of data sets "
        "without masks: not applicable. An AUC of exactly 1 has DeLong variance 0: its interval is the point."
        if options.over == "images"
        else " Over seeds: Student's t interval of the per-seed values (training randomness, not test images)."
    )
    return Note(f"Intervals ({report.intervals}): " + "; ".join(parts) + "." + extra, short=True)
