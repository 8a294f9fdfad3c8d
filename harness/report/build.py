"""Comparison tables of runs and published references, read from the store only (never trains).

One "side" is a run folder (several seeds: mean and sample standard deviation) or a published
reference (results/reference/<name>.csv). The first run is side A; every further side gets its
own columns and a difference column (A minus that side, in percentage points). Everything a reader
needs to judge a difference (definitions, random-weight teachers, protocol differences) becomes a
table note. The data model is in harness.report.model; tables and plots render it.
"""

from __future__ import annotations

import re
import statistics
from pathlib import Path

from harness.errors import HarnessError
from harness.metrics import LABELS, METRICS
from harness.report import references
from harness.report.aggregate import category_cells
from harness.report.model import MEAN, Cell, Report, Side
from harness.report.notes import table_notes
from harness.report.records import finished_jobs, uses_random_teacher

DESCRIBED_SETTINGS = ("backbone", "weights", "image_size", "epochs", "batch_size")


# ---- sides ---------------------------------------------------------------------------------------

def run_side(key: str, run_dir: str | Path) -> Side:
    records = [job.record for job in finished_jobs(run_dir)]
    run_dir = Path(run_dir)
    categories = list(dict.fromkeys(r["category"] for r in records))
    metrics = list(dict.fromkeys(m for r in records for m in r["metrics"]))
    definitions, mixed = {}, {}
    for metric in metrics:
        found = list(dict.fromkeys(r["metrics"][metric].get("definition") or "" for r in records if metric in r["metrics"]))
        definitions[metric] = found[0]
        if len(found) > 1:
            mixed[metric] = found
    seeds = sorted({r.get("seed") for r in records}, key=str)
    side = Side(key, run_dir.name, "run", records[0]["dataset"], category_cells(records, metrics), categories,
                definitions, random_teacher=any(uses_random_teacher(r) for r in records), records=records,
                path=run_dir, mixed_definitions=mixed)
    side.description = _describe_run(records, seeds)
    side.training_protocol = run_protocol(records)
    return side


def run_protocol(records: list[dict]) -> str:
    """"unified" when the run's models were each trained on all its categories together, else "single"."""
    return "unified" if records and all(r.get("protocol") == "unified" for r in records) else "single"


def _describe_run(records: list[dict], seeds: list) -> str:
    first = records[0]
    parts = [first["dataset"], f"{first.get('method', '?')}, profile {first.get('profile', '?')}"]
    if run_protocol(records) == "unified":
        parts.append("multi-class protocol (one model per seed for all its categories)")
    described = []
    for setting in DESCRIBED_SETTINGS:
        values = list(dict.fromkeys(str((r.get("settings") or {}).get(setting)) for r in records
                                    if setting in (r.get("settings") or {})))
        if values:
            text = "/".join(values)
            described.append({"image_size": f"{text} px", "epochs": f"{text} epochs", "batch_size": f"batch {text}",
                              "weights": f"weights {text}"}.get(setting, text))
    if described:
        parts.append(", ".join(described))
    parts.append(f"seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))}")
    return "; ".join(parts)


def reference_side(key: str, reference: references.Reference, dataset: str, categories: list[str]) -> Side:
    """A reference's numbers for `dataset`. Its mean row is recomputed over `categories` (the runs'),
    when it publishes every one of them and the sets differ, so that the two mean rows cover the same categories."""
    rows = reference.for_dataset(dataset)
    cells = {(row.category, row.metric): Cell(row.value) for row in rows}
    definitions, standard = {}, {}
    for row in rows:
        definitions.setdefault(row.metric, row.metric_definition)
        standard[row.metric] = standard.get(row.metric, True) and row.standard
    notes = list(dict.fromkeys(row.protocol_notes for row in rows if row.protocol_notes))
    notes = [n for n in notes if not any(other != n and other.startswith(n) for other in notes)]  # keep the fullest
    own = [c for c in dict.fromkeys(row.category for row in rows) if c != MEAN]
    side = Side(key, reference.name, "reference", rows[0].dataset, cells, own, definitions,
                description="; ".join(reference.sources), standard=standard, protocol=notes, path=reference.path,
                training_protocol=reference.protocol)
    for metric in side.metrics:
        if (MEAN, metric) in cells:
            side.published_means[metric] = cells[MEAN, metric].mean
        matched = [cells[c, metric].mean for c in categories if (c, metric) in cells]
        if matched and len(matched) == len(categories) and set(categories) != set(own):
            cells[MEAN, metric] = Cell(statistics.fmean(matched))
            side.matched_means.append(metric)
        elif (MEAN, metric) not in cells:  # no published mean: the mean of the published categories
            cells[MEAN, metric] = Cell(statistics.fmean(cells[c, metric].mean for c in own if (c, metric) in cells))
    return side


def resolve_vs(text: str) -> str | Path | None:
    """A run folder when `text` is a folder, else a reference name or CSV path (validated on load)."""
    return Path(text) if Path(text).is_dir() else text


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
            raise HarnessError(f"metric '{name}' is in none of the runs compared; add it with "
                               f"`python -m harness rescore {runs[0].path} --metrics {name}`")
    return list(dict.fromkeys(requested))


def build_report(runs: list[str | Path], vs: str | Path | None = None, metrics: list[str] | None = None,
                 caption: str | None = None, label: str | None = None) -> Report:
    if not runs:
        raise HarnessError("give at least one run folder")
    sides = [run_side(chr(ord("A") + i), run) for i, run in enumerate(runs)]
    if vs is not None and isinstance(vs, Path) and vs.is_dir():
        sides.append(run_side(chr(ord("A") + len(sides)), vs))
    categories = list(dict.fromkeys(c for s in sides for c in s.categories))
    if vs is not None and not (isinstance(vs, Path) and vs.is_dir()):
        sides.append(reference_side(chr(ord("A") + len(sides)), references.load(vs), sides[0].dataset, categories))
    chosen = choose_metrics(sides, metrics)
    base = sides[0].name
    default_caption = (f"{base} vs {', '.join(s.name for s in sides[1:])}" if len(sides) > 1 else f"Results of {base}")
    label = label or "tab:" + re.sub(r"[^A-Za-z0-9:-]+", "-", base).strip("-")
    if not re.fullmatch(r"[A-Za-z0-9:._-]+", label):
        raise HarnessError(f"label '{label}' may only contain letters, digits and : . _ -")
    report = Report(sides, chosen, categories, [], caption or f"{default_caption} ({sides[0].dataset}), per category", label)
    report.notes = table_notes(report)
    return report
