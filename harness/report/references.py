"""Published numbers shipped as data (results/reference/*.csv), to put beside a run in a report.

The files are the package data of harness.reference (pyproject maps results/reference/ to it), read
through importlib.resources, so an installed wheel has them as a checkout does.

Each CSV has the columns source, dataset, category, metric, metric_definition, value, protocol_notes,
and optionally protocol: "single" (one model per category, the default when the column is absent or
empty) or "unified" (one model for all categories, the multi-class setting); values are fractions
(0..1) like the records; a reference is named by its file stem (`rd4ad_paper`).
A metric name stands for one definition: the RD4AD paper's per-image PRO is `pro_rd4ad`, never
`au_pro`. A row whose metric_definition is not the standard text below for its metric used another
definition (or an unverified one), and reports flag it.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

from harness.errors import HarnessError

REFERENCE_PACKAGE = "harness.reference"
COLUMNS = ("source", "dataset", "category", "metric", "metric_definition", "value", "protocol_notes")
PROTOCOLS = ("single", "unified")  # the optional column `protocol` (harness.sweep.plan.PROTOCOLS)

# The definition a reference row must state to count as the harness's own metric of that name.
STANDARD_DEFINITIONS = {
    "image_auroc": "ROC AUC of image scores (max of the anomaly map)",
    "pixel_auroc": "ROC AUC over all test pixels",
    "au_pro": "AU-PRO, MVTec AD definition (8-connected regions, FPR limit 0.3, normalised)",
    "pro_rd4ad": "PRO per anomalous image as in the official RD4AD test.py (200 thresholds, FPR < 0.3 rescaled), "
    "averaged over images",
    "image_ap": "average precision of image scores (max of the anomaly map)",
    "pixel_ap": "average precision over all test pixels",
    "image_f1_max": "best F1 over all thresholds of image scores",
    "pixel_f1_max": "best F1 over all thresholds of pixel scores",
}


# The names tables and figures print for the shipped references (others: the file stem, spaced).
DISPLAY_NAMES = {
    "rd4ad_paper": "RD4AD paper",
    "rd4ad_rerun_official": "Official re-run",
    "anomalib_rd": "anomalib RD",
    "rdpp_paper": "RD++ paper",
    "ader_visa_multiclass": "ADer RD (multi-class)",
    "ader_visa_multiclass_300ep": "ADer RD (multi-class, 300 ep.)",
    "bmad_brats": "BMAD RD4AD",
    "novelty": "RD4AD paper",
    "rd4ad_benchmark_listing": "Benchmark listing",
}


@dataclass(frozen=True)
class ReferenceRow:
    source: str
    dataset: str
    category: str
    metric: str
    metric_definition: str
    value: float
    protocol_notes: str
    protocol: str = "single"

    @property
    def standard(self) -> bool:
        """True when the row states the harness's definition of its metric."""
        return STANDARD_DEFINITIONS.get(self.metric) == self.metric_definition


@dataclass(frozen=True)
class Reference:
    name: str
    path: Path
    rows: tuple[ReferenceRow, ...]

    @property
    def display_name(self) -> str:
        return DISPLAY_NAMES.get(self.name) or self.name.replace("_", " ")

    @property
    def datasets(self) -> list[str]:
        return list(dict.fromkeys(row.dataset for row in self.rows))

    @property
    def protocol(self) -> str:
        """ "unified" when every row is from one model for all categories (the multi-class setting), else "single"."""
        return "unified" if all(row.protocol == "unified" for row in self.rows) else "single"

    @property
    def sources(self) -> list[str]:
        return list(dict.fromkeys(row.source for row in self.rows))

    def for_dataset(self, dataset: str) -> list[ReferenceRow]:
        """The rows of one data set; HarnessError naming the reference's data sets when it has none."""
        rows = [row for row in self.rows if row.dataset.lower() == str(dataset).lower()]
        if not rows:
            raise HarnessError(
                f"reference '{self.name}' has no numbers for data set '{dataset}' (it has: {', '.join(self.datasets)})"
            )
        return rows


def shipped() -> Traversable:
    """The folder of the shipped reference files (inside the installed package, or results/reference/)."""
    return resources.files(REFERENCE_PACKAGE)


def names(directory: Traversable | Path | None = None) -> list[str]:
    """The shipped references (or those in `directory`), by file stem."""
    folder = shipped() if directory is None else directory
    return sorted(entry.name[: -len(".csv")] for entry in folder.iterdir() if entry.name.endswith(".csv"))


def load(name_or_path: str | Path, directory: Traversable | Path | None = None) -> Reference:
    """A shipped reference by name (`rd4ad_paper`), or any CSV file in the same format by path."""
    text = str(name_or_path)
    path = Path(text)
    if path.suffix == ".csv" and path.is_file():
        return Reference(path.stem, path, tuple(_read_rows(path, path)))
    folder = shipped() if directory is None else directory
    entry = folder / f"{text}.csv"
    if not entry.is_file():
        known = ", ".join(names(folder)) or f"none in {folder}"
        raise HarnessError(
            f"unknown reference '{text}'; known references: {known} (or give a run folder or a .csv file)"
        )
    # a shipped file has a path on disk unless the package is imported from an archive
    where = Path(str(entry))
    return Reference(text, where, tuple(_read_rows(entry, where)))


def _read_rows(file: Traversable | Path, path: Path) -> list[ReferenceRow]:
    try:
        with io.TextIOWrapper(file.open("rb"), encoding="utf-8", newline="") as handle:
            reader = csv.DictReader(handle)
            missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise HarnessError(
                    f"{path}: not a reference file (missing column(s) {', '.join(missing)}; "
                    f"expected {', '.join(COLUMNS)})"
                )
            raw = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise HarnessError(f"{path}: cannot read the reference ({error})") from None
    rows, seen = [], set()
    for line, entry in enumerate(raw, start=2):
        try:
            value = float(entry["value"])
        except (TypeError, ValueError):
            raise HarnessError(f"{path}:{line}: value '{entry['value']}' is not a number") from None
        if not (0.0 <= value <= 1.0) or math.isnan(value):
            raise HarnessError(f"{path}:{line}: value {value} is outside 0..1 (store fractions, not percent)")
        protocol = str(entry.get("protocol") or "").strip() or "single"
        if protocol not in PROTOCOLS:
            raise HarnessError(f"{path}:{line}: protocol '{protocol}' is not one of {', '.join(PROTOCOLS)}")
        source, dataset, category, metric, definition = (str(entry[c] or "").strip() for c in COLUMNS[:5])
        row = ReferenceRow(
            source,
            dataset,
            category,
            metric,
            definition,
            value,
            str(entry["protocol_notes"] or "").strip(),
            protocol,
        )
        if not (row.dataset and row.category and row.metric):
            raise HarnessError(f"{path}:{line}: dataset, category and metric must not be empty")
        key = (row.dataset.lower(), row.category, row.metric)
        if key in seen:
            raise HarnessError(
                f"{path}:{line}: a second value for {'/'.join(key)} (one value per data set, category, metric)"
            )
        seen.add(key)
        rows.append(row)
    if not rows:
        raise HarnessError(f"{path}: the reference has no rows")
    return rows
