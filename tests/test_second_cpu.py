"""Golden output of a second physical CPU (an Intel Xeon; fixtures/second_cpu/ci_sweep.json says where it comes
from): what must come out the same on any CPU, checked on the one running the tests. The synthetic data are
the same bytes (their content fingerprints), and the metrics of the same predictions are the same bits."""

import json
from pathlib import Path

import pytest

from harness.datasets.synthetic import SyntheticAdapter, ensure_generated
from harness.metrics import evaluate
from harness.store import load_predictions

FIXTURES = Path(__file__).parent / "fixtures" / "second_cpu"
GOLDEN = json.loads((FIXTURES / "ci_sweep.json").read_text())


@pytest.mark.parametrize("category", sorted(GOLDEN["categories"]))
def test_synthetic_data_have_the_second_cpus_fingerprints(category, tmp_path):
    root = ensure_generated(tmp_path / "synthetic")
    assert SyntheticAdapter(str(root)).fingerprint(category) == GOLDEN["categories"][category]["data_fingerprint"]


def test_the_second_cpus_predictions_score_to_its_metrics_bit_for_bit():
    predictions = load_predictions(FIXTURES / "disc_predictions.npz")
    values = evaluate(predictions["scores"], predictions["labels"], predictions["maps"], predictions["masks"])
    expected = GOLDEN["categories"]["disc"]["metrics"]
    assert {name: value.value for name, value in values.items()} == expected  # exact: no tolerance
