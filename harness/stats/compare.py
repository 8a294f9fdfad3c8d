"""`python -m harness compare RUN_A RUN_B [RUN_C ...]`: paired differences of runs on the same images."""

from __future__ import annotations

import csv
import io
import math
import sys
from pathlib import Path

import numpy as np
from tabulate import tabulate

from harness.errors import HarnessError
from harness.metrics import LABELS, METRICS
from harness.stats.intervals import MEAN, Options, RunIntervals, paired_difference, same_images
from harness.stats.paired import friedman, wilcoxon_categories


def _percent(x: float) -> str:
    return "n/a" if x is None or math.isnan(x) else f"{100 * x:+.2f}"


def _p(p: float) -> str:
    return "n/a" if p is None or math.isnan(p) else ("<0.001" if p < 0.001 else f"{p:.3f}")


def shared_metrics(runs: list[RunIntervals], requested: list[str] | None) -> list[str]:
    have = [
        {name for data in run.data.values() for values in data.values for name in values if name in METRICS}
        for run in runs
    ]
    common = set.intersection(*have)
    if requested:
        missing = [m for m in requested if m not in common]
        if missing:
            raise HarnessError(
                f"metric '{missing[0]}' is not in every run compared (have: {', '.join(sorted(common))})"
            )
        return requested
    return [m for m in METRICS if m in common]


def check_pairable(runs: list[RunIntervals]) -> None:
    for other in runs[1:]:
        problem = same_images(runs[0], other)
        if problem:
            raise HarnessError(f"{runs[0].run_dir} and {other.run_dir} were not tested on the same images: {problem}")


def _name(run: RunIntervals) -> str:
    return run.run_dir.name


def command_compare(args) -> int:
    if len(args.runs) < 2:
        raise HarnessError("compare needs at least two run folders")
    options = Options(args.resamples, args.ci_seed, args.confidence)
    runs = [RunIntervals(path, options) for path in args.runs]
    names = [_name(run) for run in runs]
    if len(set(names)) < len(names):
        names = [str(run.run_dir) for run in runs]
    check_pairable(runs)
    requested = [m.strip() for m in args.metrics.split(",") if m.strip()] if args.metrics else None
    metrics = shared_metrics(runs, requested)
    categories = [c for c in runs[0].data if all(c in run.data for run in runs)]
    out = Path(args.out) if args.out else runs[0].run_dir / "compare"

    rows, csv_rows, notes = [], [], []
    for other, other_name in zip(runs[1:], names[1:], strict=True):
        for metric in metrics:
            for category in [*categories, MEAN]:
                found = paired_difference(runs[0], other, category, metric)
                if found is None:
                    continue
                mark = "*" if found.excludes_zero else ""
                rows.append(
                    [
                        other_name,
                        LABELS.get(metric, metric),
                        "Mean" if category == MEAN else category,
                        _plain(_value(runs[0], category, metric, categories)),
                        _plain(_value(other, category, metric, categories)),
                        _percent(found.difference) + mark,
                        f"[{_percent(found.low)}, {_percent(found.high)}]",
                        _p(found.p_value),
                        found.method.split(",")[0],
                    ]
                )
                csv_rows.append(
                    [other_name, metric, category, found.difference, found.low, found.high, found.p_value, found.method]
                )
            a_values = [_value(runs[0], c, metric) for c in categories]
            b_values = [_value(other, c, metric) for c in categories]
            kept = [(x, y) for x, y in zip(a_values, b_values, strict=True) if not (math.isnan(x) or math.isnan(y))]
            if len(kept) >= 2:
                test = wilcoxon_categories([x for x, _ in kept], [y for _, y in kept])
                notes.append(
                    f"{LABELS.get(metric, metric)}, {names[0]} vs {other_name} over {len(kept)} categories: Wilcoxon "
                    f"signed-rank p = {_p(test.p_value)} ({test.n} non-zero differences)"
                )
    print(f"Paired differences, {names[0]} minus each other run (percentage points):\n")
    print(
        tabulate(
            rows,
            headers=[
                "vs",
                "metric",
                "category",
                names[0],
                "other",
                "Δ",
                f"{options.confidence:.0%} interval",
                "p",
                "test",
            ],
            tablefmt="github",
            disable_numparse=True,
        )
    )
    print(
        f"\n* the {options.confidence:.0%} interval of the difference excludes 0. I-AUROC: paired DeLong test; other "
        f"metrics: paired stratified image bootstrap (the same resampled images for both runs), percentile "
        f"interval, B={options.resamples}, seed {options.seed}; "
        "Mean: over the categories every run has."
    )
    for note in notes:
        print(note)
    written = []
    if len(runs) >= 3:
        from harness.stats.cd import draw

        for metric in metrics:
            table = np.array([[_value(run, c, metric) for run in runs] for c in categories])
            table = table[~np.isnan(table).any(axis=1)]
            if len(table) < 2:
                print(f"{LABELS.get(metric, metric)}: fewer than two categories with values; no Friedman test")
                continue
            result = friedman(names, table)
            ranks = ", ".join(f"{n} {r:.2f}" for n, r in zip(names, result.mean_ranks, strict=True))
            cd = "" if result.critical_difference is None else f", Nemenyi CD {result.critical_difference:.2f}"
            print(
                f"{LABELS.get(metric, metric)}: Friedman chi2 = {result.statistic:.3f}, p = {_p(result.p_value)} over "
                f"{result.n} categories; mean ranks (1 = best) {ranks}{cd}"
            )
            for i, j, raw, adjusted in result.pairs:
                print(f"  {names[i]} vs {names[j]}: p = {_p(raw)}, Holm-adjusted {_p(adjusted)}")
            try:
                written += draw(
                    result, out / f"cd-{metric}", f"{LABELS.get(metric, metric)}: mean rank over {result.n} categories"
                )
            except OSError as error:
                raise HarnessError(f"{out}: cannot write the figure ({error.strerror or error})") from None
    try:
        out.mkdir(parents=True, exist_ok=True)
        path = out / "compare.csv"
        path.write_text(_csv(csv_rows), encoding="utf-8")
        written.append(path)
    except OSError as error:
        raise HarnessError(f"{out}: cannot write ({error.strerror or error})") from None
    print("written: " + ", ".join(str(p) for p in written), file=sys.stderr)
    return 0


def _value(run: RunIntervals, category: str, metric: str, categories: list[str] | None = None) -> float:
    """The run's value (mean over seeds; for MEAN, over `categories`), NaN when undefined."""
    if category == MEAN:
        values = [_value(run, c, metric) for c in categories or []]
        values = [v for v in values if not math.isnan(v)]
        return float(np.mean(values)) if values else math.nan
    found = [v.get(metric) for v in run.data[category].values]
    return math.nan if any(v is None for v in found) else float(np.mean([float(v) for v in found if v is not None]))


def _plain(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{100 * x:.2f}"


def _csv(rows: list[list]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["vs", "metric", "category", "difference", "ci_low", "ci_high", "p_value", "ci_method"])
    for row in rows:
        writer.writerow([("" if isinstance(x, float) and math.isnan(x) else x) for x in row])
    return buffer.getvalue()
