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
"""
