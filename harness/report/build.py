"""Comparison tables of runs and published references, read from the store only (never trains).

One "side" is a run folder (several seeds: mean and sample standard deviation) or a published
reference (results/reference/<name>.csv); with --selected-on-test, also a run's values at each job's
best epoch on the test set (kind "selected", after the others). The first run is side A; every further
side gets its own columns and a difference column (A minus that side, in percentage points). Everything a reader
needs to judge a difference (definitions, random-weight teachers, protocol differences) becomes a
table note. The data model is in harness.report.model; tables and plots render it.
"""

from __future__ import annotations

import hashlib
import json
import re
import statistics
from pathlib import Path
from typing import TYPE_CHECKING

from harness import order
from harness.errors import HarnessError
from harness.metrics import LABELS, METRICS
from harness.report import references
from harness.report.aggregate import category_cells
from harness.report.model import BOLD_CHOICES, MEAN, Cell, Report, Side
from harness.report.notes import table_notes
from harness.report.records import finished_jobs, run_progress, uses_random_teacher

if TYPE_CHECKING:
    from harness.stats.intervals import Options

DESCRIBED_SETTINGS = ("backbone", "weights", "image_size", "epochs", "batch_size")
SELECTED_SUFFIX = "(best epoch on test)"  # --selected-on-test: how its columns are named


# ---- sides ---------------------------------------------------------------------------------------


def run_side(key: str, run_dir: str | Path) -> Side:
    records = [job.record for job in finished_jobs(run_dir)]
    run_dir = Path(run_dir)
    categories = list(dict.fromkeys(r["category"] for r in records))
    metrics = list(dict.fromkeys(m for r in records for m in r["metrics"]))
    definitions, mixed = {}, {}
    for metric in metrics:
        found = list(
            dict.fromkeys(r["metrics"][metric].get("definition") or "" for r in records if metric in r["metrics"])
        )
        definitions[metric] = found[0]
        if len(found) > 1:
            mixed[metric] = found
    seeds = sorted({r.get("seed") for r in records}, key=str)
    side = Side(
        key,
        run_dir.name,
        "run",
        records[0]["dataset"],
        category_cells(records, metrics),
        categories,
        definitions,
        random_teacher=any(uses_random_teacher(r) for r in records),
        records=records,
        path=run_dir,
        mixed_definitions=mixed,
    )
    side.description = _describe_run(records, seeds)
    side.training_protocol = run_protocol(records)
    side.progress = run_progress(run_dir, [str(r.get("job_id")) for r in records])
    return side


def run_protocol(records: list[dict]) -> str:
    """ "unified" when the run's models were each trained on all its categories together, else "single"."""
    return "unified" if records and all(r.get("protocol") == "unified" for r in records) else "single"


def selected_side(key: str, run: Side) -> Side | None:
    """The run's values at each job's best epoch on the test set (`selected_on_test` in its records, from
    `run --eval-every`), as the official RD++ script reports; None when no record has them. Call it once the
    run's label is set: the column is printed as that label with "(best epoch on test)"."""
    records = []
    for record in run.records:
        chosen = record.get("selected_on_test")
        if not isinstance(chosen, dict) or not isinstance(chosen.get("metrics"), dict):
            continue
        values = {
            name: metric | {"value": chosen["metrics"].get(name)}
            for name, metric in record["metrics"].items()
            if name in chosen["metrics"]
        }
        records.append(record | {"metrics": values})
    if not records:
        return None
    metrics = list(dict.fromkeys(m for r in records for m in r["metrics"]))
    categories = list(dict.fromkeys(r["category"] for r in records))
    side = Side(
        key,
        f"{run.name} {SELECTED_SUFFIX}",
        "selected",
        run.dataset,
        category_cells(records, metrics),
        categories,
        dict(run.definitions),
        random_teacher=run.random_teacher,
        records=records,
        path=run.path,
        label=f"{run.label or run.name} {SELECTED_SUFFIX}",
        training_protocol=run.training_protocol,
    )
    side.description = (
        f"this harness, run {run.name} at each job's best epoch on the test set, as the official "
        "RD++ script reports: selected on test data, so optimistic (not the run's result, which is "
        f"{run.tag})"
    )
    return side


def _selected_sides(sides: list[Side], group_rows: dict[str, list[str]]) -> list[Side]:
    """--selected-on-test: a side per run that recorded its best epoch on the test set, keyed after `sides`."""
    selected: list[Side] = []
    for run in [s for s in sides if s.kind == "run"]:
        i = len(sides) + len(selected)
        side = selected_side(chr(ord("A") + i) if i < 26 else f"S{i}", run)
        if side is not None:
            _group_means(side, group_rows)
            selected.append(side)
    if not selected:
        raise HarnessError(
            "no run has best-epoch-on-test values: they are recorded by `run --eval-every 1` "
            "(the official RD++ protocol evaluates after every epoch)"
        )
    return selected


def _describe_run(records: list[dict], seeds: list) -> str:
    first = records[0]
    parts = [first["dataset"], f"{first.get('method', '?')}, profile {first.get('profile', '?')}"]
    if run_protocol(records) == "unified":
        parts.append("multi-class protocol (one model per seed for all its categories)")
    described = []
    for setting in DESCRIBED_SETTINGS:
        values = list(
            dict.fromkeys(
                str((r.get("settings") or {}).get(setting)) for r in records if setting in (r.get("settings") or {})
            )
        )
        if values:
            text = "/".join(values)
            described.append(
                {
                    "image_size": f"{text} px",
                    "epochs": f"{text} epochs",
                    "batch_size": f"batch {text}",
                    "weights": f"weights {text}",
                }.get(setting, text)
            )
    if described:
        parts.append(", ".join(described))
    parts.append(f"seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))}")
    return "; ".join(parts)


def reference_side(
    key: str,
    reference: references.Reference,
    dataset: str,
    categories: list[str],
    groups: dict[str, list[str]] | None = None,
) -> Side:
    """A reference's numbers for `dataset`. Its mean row is recomputed over `categories` (the runs'),
    when it publishes every one of them and the sets differ, so that the two mean rows cover the same categories;
    each group mean row (`groups`: row -> categories) likewise, when it publishes every category of the group."""
    rows = reference.for_dataset(dataset)
    cells = {(row.category, row.metric): Cell(row.value) for row in rows}
    definitions: dict[str, str] = {}
    standard: dict[str, bool] = {}
    for row in rows:
        definitions.setdefault(row.metric, row.metric_definition)
        standard[row.metric] = standard.get(row.metric, True) and row.standard
    notes = list(dict.fromkeys(row.protocol_notes for row in rows if row.protocol_notes))
    notes = [n for n in notes if not any(other != n and other.startswith(n) for other in notes)]  # keep the fullest
    own = [c for c in dict.fromkeys(row.category for row in rows) if c != MEAN]
    side = Side(
        key,
        reference.name,
        "reference",
        rows[0].dataset,
        cells,
        own,
        definitions,
        description="; ".join(reference.sources),
        standard=standard,
        protocol=notes,
        path=reference.path,
        training_protocol=reference.protocol,
        label=reference.display_name,
    )
    published_over = len(own) or len(order.full_set(dataset)) or None  # a mean without its categories: all of them
    for metric in side.metrics:
        if (MEAN, metric) in cells:
            side.published_means[metric] = cells[MEAN, metric].mean
            cells[MEAN, metric].covers = published_over
        matched = [cells[c, metric].mean for c in categories if (c, metric) in cells]
        if matched and len(matched) == len(categories) and set(categories) != set(own):
            cells[MEAN, metric] = Cell(statistics.fmean(matched), covers=len(matched))
            side.matched_means.append(metric)
        elif (MEAN, metric) not in cells:  # no published mean: the mean of the published categories
            values = [cells[c, metric].mean for c in own if (c, metric) in cells]
            cells[MEAN, metric] = Cell(statistics.fmean(values), covers=len(values))
        for group, members in (groups or {}).items():
            values = [cells[c, metric].mean for c in members if (c, metric) in cells]
            if values and len(values) == len(members):
                cells[group, metric] = Cell(statistics.fmean(values), covers=len(values))
    return side


def resolve_vs(text: str) -> str | Path | None:
    """A run folder when `text` is a folder, else a reference name or CSV path (validated on load)."""
    return Path(text) if Path(text).is_dir() else text


def _is_run(vs) -> bool:
    return isinstance(vs, Path) and vs.is_dir()


# ---- the report ----------------------------------------------------------------------------------


def _known_metrics() -> list[str]:
    return list(dict.fromkeys([*METRICS, *LABELS]))


def choose_metrics(sides: list[Side], requested: list[str] | None) -> list[str]:
    runs = [s for s in sides if s.kind == "run"]
    present = list(dict.fromkeys(m for s in runs for m in s.metrics))
    if not requested:
        return sorted(present, key=lambda m: (list(LABELS).index(m) if m in LABELS else len(LABELS), present.index(m)))
    known = list(dict.fromkeys(_known_metrics() + present))
    for name in requested:
        if name not in known:
            raise HarnessError(f"unknown metric '{name}'; known metrics: {', '.join(known)}")
        if not any(name in s.metrics for s in sides):
            raise HarnessError(
                f"metric '{name}' is in none of the runs compared; add it with "
                f"`python -m harness rescore {runs[0].path} --metrics {name}`"
            )
    return list(dict.fromkeys(requested))


def _default_labels(sides: list[Side]) -> None:
    """Readable names for sides without one: the method for runs ("RD"), told apart by the first of protocol,
    profile and settings that differs when several runs share a method, else by folder; the shipped name for
    references."""
    for side in sides:
        if not side.label and side.kind == "run":
            first = side.records[0]
            # records name their method's label; earlier ones only its name, written in capitals ("RD")
            side.label = str(first.get("method_label") or str(first.get("method") or "run").upper())
    by_label: dict[str, list[Side]] = {}
    for side in sides:
        by_label.setdefault(side.label, []).append(side)
    for label, same in by_label.items():
        if len(same) < 2:
            continue
        runs = [s for s in same if s.kind == "run" and not s.label_given]
        for setting in ("protocol", "profile", *DESCRIBED_SETTINGS):
            values = [_setting_text(s, setting) for s in runs]
            if len(runs) > 1 and None not in values and len(set(values)) == len(values):
                for side, value in zip(runs, values, strict=False):
                    side.label = f"{label} ({value})"
                break
        else:
            for side in same[1:]:
                if not side.label_given:
                    side.label = f"{label} ({side.name})"


def _setting_text(side: Side, setting: str) -> str | None:
    if setting == "protocol":  # runs that differ only in it: "RD (multi-class)" beside "RD (single-class)"
        values = {"multi-class" if r.get("protocol") == "unified" else "single-class" for r in side.records}
    elif setting == "profile":
        values = {str(r.get("profile")) for r in side.records}
    else:
        values = {str((r.get("settings") or {}).get(setting)) for r in side.records}
    if len(values) != 1:
        return None
    value = values.pop()
    return {
        "image_size": f"{value} px",
        "epochs": f"{value} epochs",
        "batch_size": f"batch {value}",
        "weights": f"weights {value}",
    }.get(setting, value)


def _apply_names(sides: list[Side], names: list[str], given: list[str]) -> None:
    """--name: NAME in side order (runs, then --vs in order), or TARGET=NAME with TARGET a run folder or reference
    as given on the command line (or its folder or file name)."""
    positional = []
    for text in names:
        target, sep, name = text.partition("=")
        matches = [s for s, g in zip(sides, given, strict=False) if sep and target.strip() in (g, s.name, Path(g).name)]
        if sep and not matches and any(ch in target for ch in "/."):
            raise HarnessError(f"--name {text}: '{target}' is none of the runs or references compared")
        if matches:
            matches[0].label, matches[0].label_given = name.strip(), True
        else:
            positional.append(text)
    free = [s for s in sides if not s.label_given]
    if len(positional) > len(free):
        raise HarnessError(f"{len(names)} --name given for {len(sides)} runs and references")
    for side, name in zip(free, positional, strict=False):
        if not name.strip():
            raise HarnessError("--name must not be empty")
        side.label, side.label_given = name.strip(), True


def _join(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def default_caption(sides: list[Side], metrics: list[str]) -> str:
    names = [s.tag for s in sides]
    who = names[0] + (f" vs. {_join(names[1:])}" if len(names) > 1 else "")
    return (
        f"{who} on {order.dataset_name(sides[0].dataset)}: {_join([LABELS.get(m, m) for m in metrics])} "
        "per category (%)."
    )


def default_label(sides: list[Side], metrics: list[str]) -> str:
    """tab:<data set>-<first name>-<hash of everything compared>: two different tables never share a label."""
    digest = hashlib.sha256(json.dumps([[s.kind, s.name, str(s.path)] for s in sides] + metrics).encode()).hexdigest()[
        :6
    ]
    slug = re.sub(r"[^A-Za-z0-9]+", "-", f"{sides[0].dataset}-{sides[0].label or sides[0].name}").strip("-").lower()
    return f"tab:{slug}-{digest}"


def build_report(
    runs: list[str | Path],
    vs=None,
    metrics: list[str] | None = None,
    caption: str | None = None,
    label: str | None = None,
    names: list[str] | None = None,
    bold: str = "runs",
    selected_on_test: bool = False,
    intervals: Options | None = None,
) -> Report:
    """A report of run folders (the first is side A) beside `vs`: one or several run folders (Path) and
    references (names or CSV paths), in the order given. `selected_on_test` adds, after those, a column per
    run with its best-epoch-on-test values (recorded by `run --eval-every`): labelled as such, never bold
    unless --bold all."""
    if not runs:
        raise HarnessError("give at least one run folder")
    if bold not in BOLD_CHOICES:
        raise HarnessError(f"bold '{bold}': choose from {', '.join(BOLD_CHOICES)}")
    others = [] if vs is None else list(vs) if isinstance(vs, (list, tuple)) else [vs]
    given = [*runs, *others]
    run_sides = {i: run_side("?", item) for i, item in enumerate(given) if i < len(runs) or _is_run(item)}
    dataset = run_sides[0].dataset
    groups = order.arrange(dataset, list(dict.fromkeys(c for s in run_sides.values() for c in s.categories)))
    categories = [c for _, members in groups for c in members]
    group_rows = {order.group_mean_key(g): members for g, members in groups if g and len(groups) > 1}
    sides = [
        run_sides[i] if i in run_sides else reference_side("?", references.load(item), dataset, categories, group_rows)
        for i, item in enumerate(given)
    ]
    for i, side in enumerate(sides):
        side.key = chr(ord("A") + i) if i < 26 else f"S{i}"
        if side.kind == "run":
            _group_means(side, group_rows)
    _apply_names(sides, names or [], [str(item) for item in given])
    _default_labels(sides)
    if selected_on_test:
        sides += _selected_sides(sides, group_rows)
    tags = [side.tag for side in sides]
    twice = sorted({tag for tag in tags if tags.count(tag) > 1})
    if twice:
        raise HarnessError(f"two columns would both be named '{twice[0]}'; give each its own --name")
    chosen = choose_metrics(sides, metrics)
    label = label or default_label(sides, chosen)
    if not re.fullmatch(r"[A-Za-z0-9:._-]+", label):
        raise HarnessError(f"label '{label}' may only contain letters, digits and : . _ -")
    report = Report(
        sides, chosen, categories, [], caption or default_caption(sides, chosen), label, groups=groups, bold=bold
    )
    report.notes = table_notes(report)
    if intervals is not None:  # report --ci: harness.stats.intervals.Options
        from harness.report.intervals import attach_intervals

        attach_intervals(report, intervals)
    return report


def _group_means(side: Side, group_rows: dict[str, list[str]]) -> None:
    """A run's mean over each group's categories (spread over seeds as for the mean row)."""
    for row, members in group_rows.items():
        records = [r for r in side.records if r["category"] in members]
        if not records:
            continue
        cells = category_cells(records, side.metrics)
        for metric in side.metrics:
            if (MEAN, metric) in cells:
                side.cells[row, metric] = cells[MEAN, metric]
