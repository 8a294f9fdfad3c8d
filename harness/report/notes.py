"""Table notes: what a reader needs to judge the numbers (sides, definitions, protocol differences).

Plain text with a few symbols (±, Δ, −, †, –, *) that every renderer knows how to write. Each note is
short (printed by default under a LaTeX table: what the numbers are and what makes them incomparable)
or full only (sources, settings, definitions); hints are commands for the user and never reach a paper.
Notes name metrics and sides as the table prints them, never by internal identifiers.
"""

from __future__ import annotations

import math
import re

from harness.metrics import LABELS
from harness.order import category_name
from harness.report.model import HINT, MEAN, Note, Report, Side
from harness.store import result_settings

PRO_VARIANTS = ("au_pro", "pro_rd4ad")
FEWER = "*"  # marks a mean over fewer categories than another side's in the same row
INCOMPARABLE = re.compile(r"not comparable|different method|multi-class", re.IGNORECASE)


def label(metric: str) -> str:
    return LABELS.get(metric, metric)


def definition_text(metric: str, text: str) -> str:
    """A stored definition without its leading label ("I-AUROC: ROC AUC ..." -> "ROC AUC ...")."""
    text = (text or "").strip()
    name = label(metric)
    for prefix in (f"{name}: ", f"{name}, "):
        if text.startswith(prefix):
            return text[len(prefix) :]
    return text


def _legend(report: Report) -> list[Note]:
    notes = []
    for side in report.sides:
        if side.kind == "run":
            folder = f"run {side.name}" if side.name != side.tag else "run"
            notes.append(Note(f"{side.tag}: this harness, {folder} ({side.description})."))
        elif side.kind == "selected":  # what makes the column optimistic: in every note level
            notes.append(Note(f"{side.tag}: {side.description}.", short=True))
        else:
            notes.append(Note(f"{side.tag}: {side.description}."))
    return notes


def _seeds(side: Side) -> int:
    return max((c.n for c in side.cells.values() if not math.isnan(c.mean)), default=1)


def format_note(
    report: Report,
    *,
    std: bool,
    delta: bool = False,
    cell_metrics: list[str] | None = None,
    dashes: bool | None = None,
    brackets: bool = True,
) -> Note:
    """What the numbers are, as a renderer shows them: `std` whether ± std is printed, `delta` whether
    difference columns are, `cell_metrics` the metrics that share one cell (the compact layout), `dashes`
    whether some cell is not reported (default: any side lacks any value)."""
    runs = [s for s in report.sides if s.kind == "run"]
    seeded = {s.tag: _seeds(s) for s in runs if _seeds(s) > 1}
    if cell_metrics and len(cell_metrics) > 1:
        parts = [f"Each cell: {' / '.join(label(m) for m in cell_metrics)}, in %"]
    else:
        parts = ["Values in %"]
    if report.intervals and not brackets:  # LaTeX with --ci: a single ± carries the interval instead of the std
        parts.append(f"± the larger half of the {report.intervals}" if std else f"{report.intervals} in report.csv")
    elif seeded:
        counts = sorted(set(seeded.values()))
        over = f"{counts[0]} seeds" if len(counts) == 1 else f"{'/'.join(map(str, counts))} seeds"
        whom = "" if len(seeded) == len(runs) else " for " + ", ".join(seeded)
        parts.append(f"mean ± sample std over {over}{whom}" if std else f"mean over {over}{whom}; std in report.csv")
    if report.intervals and brackets:
        parts.append(f"[low, high]: {report.intervals}")
    if delta and report.comparing:
        parts.append(f"Δ = {report.sides[0].tag} minus the other, in points")
    if delta and report.paired:
        parts.append("‡ the interval of the paired difference excludes 0")
    if report.competing() and len(report.competing()) > 1:
        parts.append("bold: best of " + ("the runs" if report.bold == "runs" else "each row"))
    if dashes is None:
        dashes = any(
            report.cell(row, m, s) is None for row in report.rows for m in report.metrics for s in report.sides
        )
    if dashes:
        parts.append("– not reported")
    return Note("; ".join(parts) + ".", short=True)


def _means(report: Report) -> list[Note]:
    notes = []
    for side in report.sides:
        if side.kind == "reference" and side.matched_means:
            published = ", ".join(
                f"{label(m)} {100 * side.published_means[m]:.1f}" for m in report.metrics if m in side.published_means
            )
            count = len(side.categories)
            notes.append(
                Note(
                    f"{side.tag}: mean recomputed over the categories shown"
                    + (f" (published over {count}: {published})" if published else "")
                    + ".",
                    short=True,
                )
            )
    if report.any_fewer():
        parts = []
        for side in report.sides:
            covers = sorted({c for m in report.metrics if (c := report.mean_covers(MEAN, m, side))})
            if covers:
                parts.append(
                    f"{side.tag} {' or '.join(map(str, covers))}"
                    + (" (as published)" if side.kind == "reference" and not side.matched_means else "")
                )
        notes.append(
            Note(
                f"{FEWER} Means over different numbers of categories, not directly comparable: "
                + ", ".join(parts)
                + ".",
                short=True,
            )
        )
    return notes


def _definitions(report: Report) -> list[Note]:
    notes = []
    runs = [s for s in report.sides if s.kind == "run"]
    for metric in report.metrics:
        having = [s for s in runs if metric in s.definitions]
        if having:
            first = having[0]
            notes.append(
                Note(
                    f"{label(metric)}: "
                    f"{definition_text(metric, first.definitions[metric]) or 'definition not recorded'}."
                )
            )
            for side in having[1:]:
                if side.definitions[metric] != first.definitions[metric]:
                    notes.append(
                        Note(
                            f"{label(metric)} of {side.tag} has another definition: "
                            f"{definition_text(metric, side.definitions[metric])}.",
                            short=True,
                        )
                    )
        for side in runs:
            if side.mixed_definitions.get(metric):
                notes.append(
                    Note(
                        f"{side.tag} mixes definitions of {label(metric)} across its jobs ("
                        f"{' / '.join(definition_text(metric, d) for d in side.mixed_definitions[metric])}).",
                        short=True,
                    )
                )
                notes.append(
                    Note(
                        f"{HINT}rescore {side.path} to unify: python -m harness rescore {side.path} --metrics {metric}",
                        hint=True,
                    )
                )
        for side in report.sides:
            if side.kind == "reference" and metric in side.definitions and not side.standard.get(metric, True):
                notes.append(
                    Note(
                        f"{label(metric)} of {side.tag} has another definition: "
                        f"{definition_text(metric, side.definitions[metric])}.",
                        short=True,
                    )
                )
    return notes


def _unshown_reference_metrics(report: Report) -> list[Note]:
    notes = []
    base = report.sides[0]
    for side in report.sides:
        if side.kind != "reference":
            continue
        unshown = [m for m in side.metrics if m not in report.metrics]
        explained = []
        for shown, other in (PRO_VARIANTS, PRO_VARIANTS[::-1]):
            if shown in report.metrics and other in unshown and shown not in side.metrics:
                notes.append(
                    Note(f"{side.tag} reports {label(other)}, not {label(shown)}: different metrics, not compared.")
                )
                notes.append(
                    Note(
                        f"The RD4AD paper's per-image PRO ignores normal images and is typically 1 to 5 "
                        f"points below the MVTec {label(shown)}."
                    )
                )
                explained.append(other)
        if unshown:
            if [m for m in unshown if m not in explained]:
                notes.append(
                    Note(
                        f"{side.tag} also reports "
                        f"{', '.join(label(m) for m in unshown if m not in explained)}, not in the table."
                    )
                )
            missing = [m for m in unshown if m not in base.metrics]
            if missing:
                notes.append(
                    Note(
                        f"{HINT}add {', '.join(missing)} to {base.tag} with: python -m harness rescore "
                        f"{base.path} --metrics {','.join(missing)}",
                        hint=True,
                    )
                )
    return notes


def _settings(record: dict) -> dict:
    # settings that change results; not the seed, which differs by design
    return {k: v for k, v in result_settings(record).items() if k != "seed"}


def _protocol(report: Report) -> list[Note]:
    notes = []
    runs = [s for s in report.sides if s.kind == "run"]
    if any(s.random_teacher for s in runs):
        notes.append(Note("† randomly initialised teacher: not comparable to published numbers.", short=True))
    if len({s.dataset for s in runs}) > 1:
        notes.append(
            Note("Runs on different data sets: " + ", ".join(f"{s.tag} {s.dataset}" for s in runs) + ".", short=True)
        )
    for side in runs:
        mixed = []
        for key in dict.fromkeys(k for r in side.records for k in _settings(r)):
            values = list(dict.fromkeys(repr(_settings(r).get(key)) for r in side.records))
            if len(values) > 1:
                mixed.append(f"{key} {'/'.join(values)}")
        if mixed:
            notes.append(Note(f"{side.tag} mixes settings across its jobs: {'; '.join(mixed)}.", short=True))
    if len(runs) > 1:
        first = [_settings(s.records[0]) for s in runs]
        differing = [k for k in dict.fromkeys(k for f in first for k in f) if len({repr(f.get(k)) for f in first}) > 1]
        if differing:
            notes.append(
                Note(
                    "Settings differ between runs: " + ", ".join(k.replace("_", " ") for k in differing) + ".",
                    short=True,
                    full=False,
                )
            )
            notes.append(
                Note(
                    "Settings differ between runs: "
                    + "; ".join(
                        f"{k.replace('_', ' ')} "
                        f"({', '.join(f'{s.tag} {f.get(k)}' for s, f in zip(runs, first, strict=False))})"
                        for k in differing
                    )
                    + "."
                )
            )
        prints: dict[str, dict[str, set[str | None]]] = {}
        for side in runs:
            for record in side.records:
                prints.setdefault(record["category"], {}).setdefault(side.key, set()).add(
                    (record.get("data") or {}).get("fingerprint")
                )
        differ = [category_name(c) for c, by in prints.items() if len(by) > 1 and len(set().union(*by.values())) > 1]
        if differ:
            notes.append(Note(f"Test sets differ between runs for: {', '.join(differ)}.", short=True))
    all_unified = all(s.training_protocol == "unified" for s in report.sides)
    for side in report.sides:
        if side.kind == "reference":
            # a multi-class reference beside multi-class runs only: its "not comparable to single-class runs"
            # does not apply, and the short notes say that every side follows the multi-class protocol
            notes += [
                Note(f"{side.tag} protocol: {note}.", short=bool(INCOMPARABLE.search(note)) and not all_unified)
                for note in side.protocol
            ]
    return notes


def _training_protocols(report: Report) -> list[Note]:
    """Which sides trained one model per category (single) and which one model for all (unified, the
    multi-class setting). A single-class run beside a multi-class reference is said by the reference's own
    protocol note; the other mismatches are said here. Short: that protocols differ (not comparable), or the
    multi-class setting every side shares; full: each multi-class run's protocol too."""
    shown = [s for s in report.sides if s.kind != "selected"]  # a best-epoch column has its run's protocol
    unified = [s for s in shown if s.training_protocol == "unified"]
    single = [s for s in shown if s.training_protocol != "unified"]
    notes = [
        Note(
            f"{s.tag}: multi-class protocol: one model per seed trained on the training images of its "
            f"{len(s.categories)} categories together, evaluated on each category's test set."
        )
        for s in unified
        if s.kind == "run"
    ]
    if unified and single and any(s.kind == "run" for s in unified):
        notes.append(
            Note(
                f"Protocols differ, not comparable: multi-class (one model for all categories) for "
                f"{', '.join(s.tag for s in unified)}; single-class (one model per category) for "
                f"{', '.join(s.tag for s in single)}.",
                short=True,
            )
        )
    elif unified and not single and report.comparing:
        notes.append(Note("Every side follows the multi-class protocol.", short=True))
    elif unified and not single:
        notes.append(
            Note(
                f"Multi-class protocol: one model per seed for all {len(unified[0].categories)} categories.",
                short=True,
                full=False,
            )
        )
    return notes


def _undefined(report: Report) -> list[Note]:
    by_reason: dict[str, list[str]] = {}
    for side in report.sides:
        for row in report.rows:
            for metric in report.metrics:
                cell = side.cells.get((row, metric))
                if cell is not None and math.isnan(cell.mean):
                    where = f"{side.tag} " if report.comparing else ""
                    name = report.row_name(row) if report.is_mean_row(row) else category_name(row)
                    by_reason.setdefault(cell.reason or "undefined", []).append(f"{where}{name} {label(metric)}")
    notes = [Note(f"n/a = {reason}: {', '.join(places)}.") for reason, places in by_reason.items()]
    notes += [Note(f"n/a = {reason}; means leave it out.", short=True, full=False) for reason in by_reason]
    for side in report.sides:
        for metric in report.metrics:
            cell = side.cells.get((MEAN, metric))
            having = sum((c, metric) in side.cells for c in side.categories)
            if (
                side.kind in ("run", "selected")
                and cell is not None
                and cell.covers is not None
                and 0 < cell.covers < having
            ):
                notes.append(
                    Note(
                        f"Mean {label(metric)} of {side.tag} over the {cell.covers} of its {having} categories "
                        "where it is defined."
                    )
                )
    return notes


def _selected_on_test(report: Report) -> list[Note]:
    """Runs whose records also hold the best epoch on the test set (`run --eval-every`, the official RD++
    script's choice): say so, and how much that selection adds over the last epoch, on average over jobs.
    Short: the gain (what makes the last epoch and a test-selected number incomparable); full: the rule too."""
    notes, unshown = [], []
    for side in report.sides:
        if side.kind != "run":
            continue
        chosen = [r for r in side.records if isinstance(r.get("selected_on_test"), dict)]
        if not chosen:
            continue
        gains = []
        for metric in report.metrics:
            diffs = [
                r["selected_on_test"]["metrics"][metric] - r["metrics"][metric]["value"]
                for r in chosen
                if (r["selected_on_test"].get("metrics") or {}).get(metric) is not None
                and (r["metrics"].get(metric) or {}).get("value") is not None
            ]
            if diffs:
                gains.append(f"{label(metric)} {100 * sum(diffs) / len(diffs):+.1f}")
        shown = [s for s in report.sides if s.kind == "selected" and s.path == side.path]
        if not shown:
            unshown.append(side.tag)
        where = f"; {shown[0].tag} shows the selected values" if shown else ", the selected ones are not in the table"
        adds = f": on average over these jobs it adds {', '.join(gains)} points" if gains else ""
        notes.append(
            Note(
                f"Best epoch on the test set: {side.tag} also records, "
                f"for {len(chosen)} of its {len(side.records)} jobs, "
                f"the epoch the official RD++ script reports ({chosen[0]['selected_on_test'].get('rule', '')}); "
                f"{side.tag}'s values are its last epoch's{where}. Selecting on test data is optimistic{adds}."
            )
        )
        if gains:
            notes.append(
                Note(
                    f"{side.tag}: last epoch; selecting the epoch on the test set (the official RD++ "
                    f"script's choice) would add {', '.join(gains)} points on average.",
                    short=True,
                    full=False,
                )
            )
    if unshown:
        notes.append(
            Note(
                f"{HINT}report --selected-on-test adds the best-epoch-on-test values of "
                f"{', '.join(unshown)} as a column",
                hint=True,
            )
        )
    return notes


def _progress(report: Report) -> list[Note]:
    """A run still in progress, interrupted or with failed jobs: its table and means cover only what finished."""
    notes = []
    for side in report.sides:
        if side.kind == "run" and side.progress is not None and not side.progress.complete:
            notes.append(Note(f"{side.tag} is incomplete: {side.progress.describe()}.", short=True))
    return notes


def table_notes(report: Report) -> list[Note]:
    """Every note but the format line (renderers add it: it depends on what they print)."""
    return (
        _progress(report)
        + _legend(report)
        + _means(report)
        + _definitions(report)
        + _unshown_reference_metrics(report)
        + _protocol(report)
        + _training_protocols(report)
        + _selected_on_test(report)
        + _undefined(report)
    )
