"""Comparison tables of runs and published references, read from the store only (never trains).

One "side" is a run folder (several seeds: mean and sample standard deviation) or a published
reference (results/reference/<name>.csv). The first run is side A; every further side gets its
own columns and a difference column (A minus that side, in percentage points). Everything a reader
needs to judge a difference (definitions, random-weight teachers, protocol differences) becomes a
table note. Rendering is in harness.tables; the CLI handler is `command_report`.
"""

from __future__ import annotations

import math
import re
import statistics
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from harness import references
from harness.errors import HarnessError
from harness.records import finished_jobs, metric_value, uses_random_teacher
from harness.summary import LABELS

MEAN = references.MEAN
DESCRIBED_SETTINGS = ("backbone", "weights", "image_size", "epochs", "batch_size")
FORMATS = ("md", "latex", "csv")
SUFFIX = {"md": "md", "latex": "tex", "csv": "csv"}


@dataclass
class Cell:
    mean: float  # fraction 0..1; NaN when the metric is undefined
    std: float | None = None  # sample standard deviation over seeds, when there are several
    n: int = 1
    reason: str | None = None  # why the value is NaN
    covers: int | None = None  # mean rows of runs: how many categories the mean is over


@dataclass
class Side:
    key: str  # A, B, C ...
    name: str  # run folder name or reference name
    kind: str  # "run" or "reference"
    dataset: str
    cells: dict[tuple[str, str], Cell]  # (category or "mean", metric) -> Cell
    categories: list[str]
    definitions: dict[str, str]
    description: str = ""
    random_teacher: bool = False
    standard: dict[str, bool] = field(default_factory=dict)  # references: metric -> standard definition
    protocol: list[str] = field(default_factory=list)  # references: protocol notes
    records: list[dict] = field(default_factory=list)  # runs
    mixed_definitions: dict[str, list[str]] = field(default_factory=dict)  # runs: metric -> definitions, when several
    published_means: dict[str, float] = field(default_factory=dict)  # references: the mean row as published
    matched_means: list[str] = field(default_factory=list)  # references: metrics whose mean row covers the runs' categories
    path: Path | None = None

    @property
    def metrics(self) -> list[str]:
        return list(dict.fromkeys(metric for _, metric in self.cells))

    @property
    def tag(self) -> str:
        return self.key + ("†" if self.random_teacher else "")


@dataclass
class Report:
    sides: list[Side]
    metrics: list[str]
    categories: list[str]  # table rows before the mean row
    notes: list[str]
    caption: str
    label: str

    @property
    def comparing(self) -> bool:
        return len(self.sides) > 1

    @property
    def rows(self) -> list[str]:
        return self.categories + [MEAN]

    def cell(self, category: str, metric: str, side: Side) -> Cell | None:
        return side.cells.get((category, metric))

    def delta(self, category: str, metric: str, side: Side, *, as_printed: bool = False) -> float | None:
        """A minus `side` (fraction); None when either is missing or undefined. `as_printed`: the
        difference of the values as the table prints them (percent, one decimal), so the columns add up."""
        a, b = self.cell(category, metric, self.sides[0]), self.cell(category, metric, side)
        if a is None or b is None or math.isnan(a.mean) or math.isnan(b.mean):
            return None
        if as_printed:
            return (round(100 * a.mean, 1) - round(100 * b.mean, 1)) / 100
        return a.mean - b.mean

    def best(self, category: str, metric: str) -> set[str]:
        """Keys of the sides with the highest value as printed (ties all count); empty unless two sides have one."""
        shown = {s.key: round(100 * c.mean, 1) for s in self.sides
                 if (c := self.cell(category, metric, s)) is not None and not math.isnan(c.mean)}
        if len(shown) < 2:
            return set()
        top = max(shown.values())
        return {key for key, value in shown.items() if value == top}


# ---- sides ---------------------------------------------------------------------------------------

def _sample_std(values: list[float]) -> float | None:
    return statistics.stdev(values) if len(values) > 1 else None


def _finite(values) -> list[float]:
    return [v for v in values if v is not None and not math.isnan(v)]


def run_side(key: str, run_dir: str | Path) -> Side:
    records = [job.record for job in finished_jobs(run_dir)]
    run_dir = Path(run_dir)
    categories = list(dict.fromkeys(r["category"] for r in records))
    metrics = list(dict.fromkeys(m for r in records for m in r["metrics"]))
    cells: dict[tuple[str, str], Cell] = {}
    for metric in metrics:
        per_seed: dict = defaultdict(dict)  # seed -> category -> value
        for category in categories:
            chosen = [r for r in records if r["category"] == category and metric in r["metrics"]]
            if not chosen:
                continue
            values = [metric_value(r, metric) for r in chosen]
            for record, value in zip(chosen, values):
                per_seed[record.get("seed")][category] = value
            finite = _finite(values)
            reasons = {r["metrics"][metric].get("reason") for r, v in zip(chosen, values) if math.isnan(v)}
            cells[category, metric] = (Cell(statistics.fmean(finite), _sample_std(finite), len(finite)) if finite
                                       else Cell(math.nan, None, 0, "; ".join(sorted(str(x) for x in reasons if x)) or None))
        cells[MEAN, metric] = _mean_cell([cells[c, metric] for c in categories if (c, metric) in cells], per_seed, categories)
    definitions, mixed = {}, {}
    for metric in metrics:
        found = list(dict.fromkeys(r["metrics"][metric].get("definition") or "" for r in records if metric in r["metrics"]))
        definitions[metric] = found[0]
        if len(found) > 1:
            mixed[metric] = found
    seeds = sorted({r.get("seed") for r in records}, key=str)
    side = Side(key, run_dir.name, "run", records[0]["dataset"], cells, categories, definitions,
                random_teacher=any(uses_random_teacher(r) for r in records), records=records, path=run_dir,
                mixed_definitions=mixed)
    side.description = _describe_run(records, seeds)
    return side


def _mean_cell(category_cells: list[Cell], per_seed: dict, categories: list[str]) -> Cell:
    """Mean over categories; its spread is that of the per-seed category means when every seed has every category."""
    finite = _finite(c.mean for c in category_cells)
    if not finite:
        return Cell(math.nan, None, 0, "undefined in every category")
    complete = [seed_values for seed_values in per_seed.values()
                if set(seed_values) >= set(categories) and len(_finite(seed_values.values())) == len(finite)]
    if len(per_seed) > 1 and len(complete) == len(per_seed):
        seed_means = [statistics.fmean(_finite(v.values())) for v in complete]
        return Cell(statistics.fmean(seed_means), _sample_std(seed_means), len(seed_means), covers=len(finite))
    return Cell(statistics.fmean(finite), None, 1, covers=len(finite))


def _describe_run(records: list[dict], seeds: list) -> str:
    first = records[0]
    parts = [first["dataset"], f"{first.get('method', '?')}, profile {first.get('profile', '?')}"]
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
                description="; ".join(reference.sources), standard=standard, protocol=notes, path=reference.path)
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
    from harness.metrics import METRICS

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
    from harness.notes import table_notes

    report.notes = table_notes(report)
    return report


def write_report(report: Report, out: Path, formats: list[str]) -> list[Path]:
    from harness import tables

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
    from harness import tables

    formats = parse_formats(args.format)
    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()] if args.metrics else None
    report = build_report(args.runs, resolve_vs(args.vs) if args.vs else None, metrics, args.caption, args.label)
    out = Path(args.out) if args.out else Path(args.runs[0]) / "report"
    written = write_report(report, out, formats)
    if args.plots:
        from harness import plots

        result = plots.make_plots(report, out / "plots")
        written += result.files
        for note in result.notes:
            print(f"plots: {note}", file=sys.stderr)
    print(tables.markdown(report), end="")
    print("written: " + ", ".join(str(p) for p in written), file=sys.stderr)
    return 0
