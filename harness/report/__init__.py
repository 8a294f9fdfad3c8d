"""Reading the store: tables, figures, drift checks and rescoring of finished runs.

Nothing here trains or imports torch: everything is computed from the run folders' records and
predictions and from published numbers (results/reference/).

records     finished jobs of a run folder, validated
aggregate   per-category means and spreads over seeds (shared by every table and the check)
model       the data model of a comparison table (Cell, Side, Report)
order       the published order of a data set's categories, their groups, readable names
build       a Report from run folders and references; notes, tables and plots render it
notes       what a reader needs to judge the numbers (short and full)
tables      Markdown and CSV; latex: tables that fit a stated width (compact, wide, transposed)
html        one self-contained HTML file: tables, notes, figures
plots       figures at one-column and two-column paper widths
options     the `report` command's flags
check       drift of a run against a committed baseline
rescore     metrics recomputed from stored predictions
api         `harness.report(...)` and `harness.check(...)`: the commands as functions
"""

from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import Any


class _ReportModule(types.ModuleType):
    """`harness.report` is this package and the public function `harness.report(run, ...)` at once: the
    package's modules stay where they are, and calling it makes a report (harness.report.api.report)."""

    def __call__(self, *runs: str | Path, **options: Any) -> Any:
        from harness.report.api import report

        return report(*runs, **options)


sys.modules[__name__].__class__ = _ReportModule
