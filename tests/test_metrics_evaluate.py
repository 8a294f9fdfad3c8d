"""Validation messages, evaluate() (registry, NaN with reasons, one shared sort), torch inputs, purity."""

import ast
import math
import pathlib
import subprocess
import sys

import numpy as np
import pytest

import harness.metrics as metrics
from harness.metrics import (
    DEFAULT_METRICS,
    LABELS,
    METRICS,
    MetricSpec,
    MetricValue,
    UndefinedMetricError,
    au_pro,
    evaluate,
    image_auroc,
    pixel_auroc,
    pro_curve,
)


def small_set(seed=0):
    rng = np.random.default_rng(seed)
    masks = np.zeros((4, 12, 12), dtype=bool)
    masks[1, 2:6, 3:8] = masks[2, 7:10, 1:4] = masks[2, 0, 11] = True
    maps = (rng.random(masks.shape) + 0.6 * masks).astype(np.float32)
    return maps.max(axis=(1, 2)), masks.any(axis=(1, 2)), maps, masks


# --- validation -----------------------------------------------------------------------------


def test_shape_mismatch_names_both_shapes():
    _, _, maps, masks = small_set()
    with pytest.raises(ValueError, match=r"same shape.*maps \(4, 12, 12\) and masks \(4, 1, 12, 12\)"):
        pixel_auroc(maps, masks[:, None])
    with pytest.raises(ValueError, match=r"maps must have shape \(N, H, W\), got shape \(4, 144\)"):
        au_pro(maps.reshape(4, -1), masks.reshape(4, -1))
    with pytest.raises(ValueError, match=r"inconsistent numbers of samples: scores 3, labels 4"):
        image_auroc([0.1, 0.2, 0.3], [0, 1, 0, 1])


@pytest.mark.parametrize("bad, word", [(np.nan, "NaN"), (np.inf, "infinity"), (-np.inf, "infinity")])
def test_non_finite_scores_are_rejected(bad, word):
    scores, labels, maps, masks = small_set()
    maps[1, 3, 3] = maps[2, 0, 0] = bad
    with pytest.raises(ValueError, match=rf"maps contains {word} \(2 of 576 values\)"):
        pixel_auroc(maps, masks)
    scores[0] = bad
    with pytest.raises(ValueError, match=rf"scores contains {word}"):
        image_auroc(scores, labels)
    with pytest.raises(ValueError, match=word):
        evaluate(scores, labels, maps, masks)


def test_masks_that_are_not_binary_say_what_was_found():
    _, _, maps, masks = small_set()
    resized = masks.astype(np.float32) * 0.5 + masks * 0.25
    with pytest.raises(
        ValueError, match=r"masks must be binary: bool, \{0, 1\} or \{0, 255\}; found values \[0\.0, 0\.75\]"
    ):
        au_pro(maps, resized)
    mixed = masks.astype(np.uint8)
    mixed[0, 0, 0] = 255
    with pytest.raises(ValueError, match=r"found values \[0, 1, 255\]"):
        pixel_auroc(maps, mixed)
    with pytest.raises(ValueError, match=r"labels must be binary: bool or \{0, 1\}; found values \[0, 2\]"):
        image_auroc([0.1, 0.2], [0, 2])


def test_empty_input_is_rejected():
    with pytest.raises(ValueError, match="empty"):
        image_auroc([], [])
    with pytest.raises(ValueError, match="empty"):
        pixel_auroc(np.zeros((0, 8, 8), np.float32), np.zeros((0, 8, 8), bool))


def test_other_bad_arguments():
    _, _, maps, masks = small_set()
    with pytest.raises(ValueError, match=r"fpr_limit must be in \(0, 1\], got 0"):
        au_pro(maps, masks, fpr_limit=0)
    with pytest.raises(ValueError, match="maps must hold real numbers"):
        pixel_auroc(maps.astype(complex), masks)
    with pytest.raises(ValueError, match=r"unknown metric name\(s\) \['p_auroc'\]"):
        evaluate(*small_set(), names=("p_auroc",))
    with pytest.raises(ValueError, match="inconsistent numbers of images: scores 3, maps 4"):
        evaluate(np.zeros(3), [0, 1, 1], *small_set()[2:])


def test_undefined_direct_calls_raise_undefined_metric_error():
    _, _, maps, masks = small_set()
    with pytest.raises(UndefinedMetricError, match="only normal samples"):
        pixel_auroc(maps, np.zeros_like(masks))
    with pytest.raises(UndefinedMetricError, match="no anomalous pixel"):
        pro_curve(maps, np.zeros_like(masks))
    with pytest.raises(UndefinedMetricError, match="no normal pixel"):
        au_pro(maps, np.ones_like(masks))


# --- evaluate ---------------------------------------------------------------------------------


def test_evaluate_equals_the_direct_functions_and_records_definitions():
    scores, labels, maps, masks = small_set()
    results = evaluate(scores, labels, maps, masks, names=tuple(METRICS))
    assert set(results) == set(METRICS)
    for name, result in results.items():
        spec = METRICS[name]
        args = (scores, labels) if spec.level == "image" else (maps, masks)
        expected = spec.compute(*args, labels) if name == "pro_rd4ad" else spec.compute(*args)
        assert result.value == expected, name
        assert result.reason is None and result.definition == spec.definition
        assert result.to_dict() == {"value": expected, "definition": spec.definition, "reason": None}
    assert "8-connected" in METRICS["au_pro"].definition and "FPR limit 0.3" in METRICS["au_pro"].definition
    assert DEFAULT_METRICS == ("image_auroc", "pixel_auroc", "au_pro")
    assert set(evaluate(scores, labels, maps, masks)) == set(DEFAULT_METRICS)


def test_evaluate_fpr_limit_changes_value_and_definition():
    scores, labels, maps, masks = small_set()
    result = evaluate(scores, labels, maps, masks, names=("au_pro",), fpr_limit=0.05)["au_pro"]
    assert result.value == au_pro(maps, masks, fpr_limit=0.05)
    assert "FPR limit 0.05" in result.definition


def test_evaluate_undefined_cases_are_nan_with_a_reason():
    scores, labels, maps, masks = small_set()
    names = tuple(METRICS)
    no_masks = evaluate(scores, labels, maps, None, names=names)  # e.g. CIFAR-10
    for name in names:
        if METRICS[name].level == "pixel":
            assert math.isnan(no_masks[name].value) and "no pixel masks" in no_masks[name].reason
            assert no_masks[name].to_dict()["value"] is None
    assert no_masks["image_auroc"].reason is None
    no_maps = evaluate(scores, labels, None, masks, names=("pixel_auroc",))
    assert "no anomaly maps" in no_maps["pixel_auroc"].reason
    normal_only = evaluate(scores, np.zeros(4), maps, np.zeros_like(masks), names=names)
    assert "only normal samples (4)" in normal_only["image_auroc"].reason
    assert "no anomalous samples" in normal_only["image_ap"].reason
    assert "only normal samples (576)" in normal_only["pixel_auroc"].reason
    assert "no anomalous pixel" in normal_only["au_pro"].reason
    assert "no anomalous image" in normal_only["pro_rd4ad"].reason
    assert all(math.isnan(v.value) for v in normal_only.values())
    anomalous_only = evaluate(scores, np.ones(4), maps, masks, names=("image_auroc", "image_ap"))
    assert "only anomalous samples" in anomalous_only["image_auroc"].reason
    assert anomalous_only["image_ap"].value == 1.0  # AP is defined without negatives, as in sklearn


def test_evaluate_sorts_the_pixels_once(monkeypatch):
    calls = []
    original = metrics.rank_pixels
    monkeypatch.setattr(metrics, "rank_pixels", lambda *a, **k: calls.append(1) or original(*a, **k))
    results = evaluate(*small_set(), names=("pixel_auroc", "au_pro", "pixel_ap", "pixel_f1_max", "image_auroc"))
    assert len(calls) == 1
    scores, labels, maps, masks = small_set()
    assert results["pixel_auroc"].value == pixel_auroc(maps, masks)
    assert results["au_pro"].value == au_pro(maps, masks)


def test_public_api_keeps_its_shape():
    assert MetricValue(0.5, "d").to_dict() == {"value": 0.5, "definition": "d", "reason": None}
    assert MetricValue(math.nan, "d", "why").to_dict() == {"value": None, "definition": "d", "reason": "why"}
    spec = MetricSpec("x", "image", "def at {fpr_limit}", image_auroc, image_auroc, label="X")
    assert spec.definition == "def at 0.3" and spec.label == "X"
    for name, spec in METRICS.items():
        assert spec.name == name and spec.level in ("image", "pixel") and spec.definition and spec.label
        assert callable(spec.from_inputs)  # evaluate() computes every registered metric from its shared sorts
    assert LABELS["au_pro"] == "AU-PRO" and LABELS["pro_rd4ad"] == "PRO (RD4AD)"


# --- torch and purity ----------------------------------------------------------------------


def test_torch_tensors_are_accepted():
    torch = pytest.importorskip("torch")
    scores, labels, maps, masks = small_set()
    as_tensors = dict(
        scores=torch.tensor(scores, requires_grad=True),
        labels=torch.from_numpy(labels),
        maps=torch.from_numpy(maps).requires_grad_(),
        masks=torch.from_numpy(masks.astype(np.uint8)),
    )
    expected = evaluate(scores, labels, maps, masks, names=tuple(METRICS))
    got = evaluate(**as_tensors, names=tuple(METRICS))
    assert {k: v.value for k, v in got.items()} == {k: v.value for k, v in expected.items()}
    assert pixel_auroc(torch.from_numpy(maps).to(torch.bfloat16), as_tensors["masks"]) == pixel_auroc(
        torch.from_numpy(maps).to(torch.bfloat16).float().numpy(), masks
    )


def test_metrics_package_is_pure():
    package = pathlib.Path(metrics.__file__).parent
    for path in package.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                roots = [alias.name.split(".")[0] for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                roots = [] if node.level else [node.module.split(".")[0]]
            else:
                continue
            assert set(roots) <= {
                "__future__",
                "dataclasses",
                "typing",
                "math",
                "sys",
                "warnings",
                "collections",
                "numpy",
                "scipy",
            }, (path.name, roots)
        assert len(path.read_text().splitlines()) <= 400, path.name
    code = "import sys, harness.metrics; print(sorted({'torch', 'sklearn', 'pandas'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
