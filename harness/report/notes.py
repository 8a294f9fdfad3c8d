"""Table notes: what a reader needs to judge the numbers (sides, definitions, protocol differences).

Plain text with a few symbols (±, Δ, −, †, –) that every renderer knows how to write.
"""

from __future__ import annotations

import math

from harness.metrics import LABELS
from harness.report.model import HINT, Report
from harness.store import EXECUTION_ONLY

PRO_VARIANTS = ("au_pro", "pro_rd4ad")
NOT_PROTOCOL = EXECUTION_ONLY | {"seed"}  # settings that do not change results, or differ by design


def _label(metric: str) -> str:
    return f"{LABELS[metric]} [{metric}]" if metric in LABELS else metric


def _legend(report: Report) -> list[str]:
    if not report.comparing:
        side = report.sides[0]
        return [f"Run {side.name}{'†' if side.random_teacher else ''}: {side.description}."]
    lines = []
    for side in report.sides:
        what = f"run {side.name} ({side.description})" if side.kind == "run" else f"reference {side.name}: {side.description}"
        lines.append(f"{side.tag}: {what}.")
    return lines


def _format_line(report: Report) -> str:
    parts = ["Values in percent"]
    if any(c.n > 1 for s in report.sides for c in s.cells.values()):
        parts.append("mean ± sample standard deviation over seeds")
    if report.comparing:
        others = ", ".join(s.key for s in report.sides[1:])
        parts.append(f"Δ(A−X) = A minus X in percentage points (X = {others})")
        parts.append("best value per row in bold")
    parts.append("– = not reported")
    return "; ".join(parts) + "."


def _mean_line(report: Report) -> str | None:
    if not report.comparing:
        return None
    base = report.sides[0]
    parts, unequal = [], False
    for side in report.sides:
        count = len(side.categories)
        if side.kind == "run":
            parts.append(f"{side.key} over its {count} categor{'y' if count == 1 else 'ies'}")
            unequal |= set(side.categories) != set(base.categories)
        elif side.matched_means:
            published = ", ".join(f"{LABELS.get(m, m)} {100 * side.published_means[m]:.1f}"
                                  for m in report.metrics if m in side.published_means)
            parts.append(f"{side.key} over the same categories, from its per-category values"
                         + (f" (published mean over {count} categories: {published})" if published else ""))
        else:
            parts.append(f"{side.key} as published" + (f", over {count} categories" if count else ""))
            unequal |= set(side.categories) != set(base.categories)
    if not unequal and not any(s.matched_means for s in report.sides):
        return None
    return ("Mean row: " + "; ".join(parts) + "."
            + (" Means over different sets of categories are not directly comparable." if unequal else ""))


def _definitions(report: Report) -> list[str]:
    lines = []
    runs = [s for s in report.sides if s.kind == "run"]
    for metric in report.metrics:
        having = [s for s in runs if metric in s.definitions]
        if having:
            first = having[0]
            lines.append(f"{_label(metric)}: {first.definitions[metric] or 'definition not recorded'}.")
            for side in having[1:]:
                if side.definitions[metric] != first.definitions[metric]:
                    lines.append(f"Different definition: {LABELS.get(metric, metric)} of {side.key} is "
                                 f"\"{side.definitions[metric]}\", not that of {first.key}.")
        for side in runs:
            if side.mixed_definitions.get(metric):
                lines.append(f"{side.key} mixes definitions of {metric} across its jobs ("
                             f"{' / '.join(side.mixed_definitions[metric])}); rescore it to unify.")
        for side in report.sides:
            if side.kind == "reference" and metric in side.definitions and not side.standard.get(metric, True):
                lines.append(f"Different definition: {LABELS.get(metric, metric)} of {side.key} is "
                             f"\"{side.definitions[metric]}\".")
    return lines


def _unshown_reference_metrics(report: Report) -> list[str]:
    lines = []
    base = report.sides[0]
    for side in report.sides:
        if side.kind != "reference":
            continue
        unshown = [m for m in side.metrics if m not in report.metrics]
        explained = []
        for shown, other in (PRO_VARIANTS, PRO_VARIANTS[::-1]):
            if shown in report.metrics and other in unshown and shown not in side.metrics:
                lines.append(f"{side.key} reports {_label(other)}, not {_label(shown)}: different metrics (the RD4AD "
                             "paper's per-image PRO ignores normal images and is typically 1 to 5 points below the "
                             "MVTec AU-PRO), so they are not compared.")
                explained.append(other)
        if unshown:
            if [m for m in unshown if m not in explained]:
                lines.append(f"{side.key} also reports {', '.join(_label(m) for m in unshown if m not in explained)}, "
                             "not in the table.")
            missing = [m for m in unshown if m not in base.metrics]
            if missing:
                lines.append(f"{HINT}add {', '.join(missing)} to A with: python -m harness rescore {base.path} "
                             f"--metrics {','.join(missing)}")
    return lines


def _settings(record: dict) -> dict:
    return {k: v for k, v in (record.get("settings") or {}).items() if k not in NOT_PROTOCOL}


def _protocol(report: Report) -> list[str]:
    lines = []
    runs = [s for s in report.sides if s.kind == "run"]
    random = [s.key for s in runs if s.random_teacher]
    if random:
        lines.append(f"† {', '.join(random)}: randomly initialised teacher (weights none): "
                     "not comparable to published numbers.")
    if len({s.dataset for s in runs}) > 1:
        lines.append("Runs on different data sets: " + ", ".join(f"{s.key} {s.dataset}" for s in runs) + ".")
    for side in runs:
        mixed = []
        for key in dict.fromkeys(k for r in side.records for k in _settings(r)):
            values = list(dict.fromkeys(repr(_settings(r).get(key)) for r in side.records))
            if len(values) > 1:
                mixed.append(f"{key} {'/'.join(values)}")
        if mixed:
            lines.append(f"{side.key} mixes settings across its jobs: {'; '.join(mixed)}.")
    if len(runs) > 1:
        first = [_settings(s.records[0]) for s in runs]
        differing = [k for k in dict.fromkeys(k for f in first for k in f) if len({repr(f.get(k)) for f in first}) > 1]
        if differing:
            lines.append("Settings differ between runs: " + "; ".join(
                f"{k} ({', '.join(f'{s.key} {f.get(k)}' for s, f in zip(runs, first))})" for k in differing) + ".")
        prints = {}
        for side in runs:
            for record in side.records:
                prints.setdefault(record["category"], {}).setdefault(side.key, set()).add((record.get("data") or {}).get("fingerprint"))
        differ = [c for c, by in prints.items() if len(by) > 1 and len(set().union(*by.values())) > 1]
        if differ:
            lines.append(f"Test sets differ between runs (data fingerprints) for: {', '.join(differ)}.")
    for side in report.sides:
        if side.kind == "reference":
            lines += [f"{side.key} protocol: {note}." for note in side.protocol]
    return lines


def _training_protocols(report: Report) -> list[str]:
    """Which sides trained one model per category (single) and which one model for all (unified, the
    multi-class setting). A single-class run beside a multi-class reference is said by the reference's own
    protocol note; the other mismatches are said here."""
    unified = [s for s in report.sides if s.training_protocol == "unified"]
    single = [s for s in report.sides if s.training_protocol != "unified"]
    lines = [f"{s.key}: multi-class protocol: one model per seed trained on the training images of its "
             f"{len(s.categories)} categories together, evaluated on each category's test set."
             for s in unified if s.kind == "run"]
    if unified and single and any(s.kind == "run" for s in unified):
        lines.append(f"Protocols differ: {', '.join(s.key for s in unified)} multi-class (one model for all categories), "
                     f"{', '.join(s.key for s in single)} single-class (one model per category): not comparable.")
    elif unified and not single and report.comparing:
        lines.append("Every side follows the multi-class protocol.")
    return lines


def _undefined(report: Report) -> list[str]:
    by_reason: dict[str, list[str]] = {}
    for side in report.sides:
        for category in report.rows:
            for metric in report.metrics:
                cell = side.cells.get((category, metric))
                if cell is not None and math.isnan(cell.mean):
                    where = f"{side.key} " if report.comparing else ""
                    by_reason.setdefault(cell.reason or "undefined", []).append(f"{where}{category} {LABELS.get(metric, metric)}")
    lines = [f"n/a = {reason}: {', '.join(places)}." for reason, places in by_reason.items()]
    for side in report.sides:
        for metric in report.metrics:
            cell = side.cells.get((report.rows[-1], metric))
            having = sum((c, metric) in side.cells for c in side.categories)
            if cell is not None and cell.covers is not None and 0 < cell.covers < having:
                lines.append(f"The mean {LABELS.get(metric, metric)} of {side.key} is over the {cell.covers} of its "
                             f"{having} categories where it is defined.")
    return lines


def table_notes(report: Report) -> list[str]:
    lines = _legend(report) + [_format_line(report)]
    mean = _mean_line(report)
    if mean:
        lines.append(mean)
    return (lines + _definitions(report) + _unshown_reference_metrics(report) + _protocol(report)
            + _training_protocols(report) + _undefined(report))
