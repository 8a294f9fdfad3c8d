"""Published numbers (one CSV file per reference), installed as the package data of harness.reference.

The files live here, beside the run folders and baselines, and pyproject maps this folder to the package
harness.reference so that a wheel ships them; harness.report.references reads them through
importlib.resources. Add a reference by adding a CSV file here (its format: harness/report/references.py).
"""
