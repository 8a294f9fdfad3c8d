"""Metric-only regression: stored predictions with pinned metric values, independent of training.

The metric code is tested against oracles elsewhere; this pins its current output on realistic
predictions, so any change in a value (or a definition string) shows up in review.
"""

import json
from pathlib import Path

import pytest

from harness.metrics import METRICS, evaluate
from harness.store import load_predictions

FIXTURES = Path(__file__).parent / "fixtures"


def test_pinned_metric_values():
    pinned = json.loads((FIXTURES / "metric_regression.json").read_text())
    predictions = load_predictions(FIXTURES / "metric_regression.npz")
    assert set(pinned["values"]) == set(METRICS), "a metric was added or removed: pin its value"
    results = evaluate(
        predictions["scores"], predictions["labels"], predictions["maps"], predictions["masks"], names=tuple(METRICS)
    )
    for name, expected in pinned["values"].items():
        assert results[name].value == pytest.approx(expected, abs=1e-12), name
        assert results[name].definition == pinned["definitions"][name], name
