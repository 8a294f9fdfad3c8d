"""Input conversion and validation shared by every metric.

Every public metric validates its input here and fails with a ValueError that says what was wrong
and what was expected (the style of scikit-learn's utils/validation.py). A metric that is well
posed in form but not defined for the data (one class only, no anomalous pixel) raises
UndefinedMetricError instead, which `evaluate` turns into NaN with the reason.
"""

from __future__ import annotations

import numpy as np


class UndefinedMetricError(ValueError):
    """The metric is not defined for this input; the message is the reason recorded beside NaN."""


class MetricWarning(UserWarning):
    """Part of the input was left out of a metric (e.g. an anomalous image with an empty mask)."""


def to_numpy(x, name: str) -> np.ndarray:
    """A numpy view of an array-like or a torch tensor (torch is never imported here)."""
    if x is None:
        raise ValueError(f"{name} is None; expected an array")
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # a torch tensor, detected without importing torch
        x = x.detach().cpu()
        if str(getattr(x, "dtype", "")) == "torch.bfloat16":  # numpy has no bfloat16; float32 is exact
            x = x.float()
        x = x.numpy()
    return np.asarray(x)


def _found_values(a: np.ndarray, limit: int = 8) -> str:
    values = np.unique(a)
    shown = ", ".join(repr(v.item()) for v in values[:limit])
    return f"[{shown}{', ...' if len(values) > limit else ''}] ({len(values)} distinct)"


def _check_real(a: np.ndarray, name: str) -> None:
    if a.dtype.kind not in "biuf":
        raise ValueError(f"{name} must hold real numbers, got dtype {a.dtype}")


def check_finite(a: np.ndarray, name: str) -> None:
    """Raise if a float array holds NaN or infinity (two reductions, no temporary mask)."""
    if a.dtype.kind != "f" or a.size == 0:
        return
    lo, hi = a.min(), a.max()  # NaN propagates through min and max, and an inf is an extreme
    if np.isfinite(lo) and np.isfinite(hi):
        return
    n_nan = int(np.count_nonzero(np.isnan(a)))
    if n_nan:
        raise ValueError(f"{name} contains NaN ({n_nan} of {a.size} values); anomaly scores must be finite")
    n_inf = int(np.count_nonzero(np.isinf(a)))
    raise ValueError(f"{name} contains infinity ({n_inf} of {a.size} values); anomaly scores must be finite")


def as_binary(a: np.ndarray, name: str, allowed: str) -> np.ndarray:
    """Bool view of a binary array: bool, {0, 1} or (for masks) {0, 255}."""
    if a.dtype == np.bool_:
        return a
    _check_real(a, name)
    if a.size == 0:
        return a.astype(bool)
    top = a.max()
    tops = (1, 255) if allowed == "masks" else (1,)
    if a.min() >= 0 and (top == 0 or top in tops):
        positive = a != 0
        if top == 0 or np.count_nonzero(positive) == np.count_nonzero(a == top):
            return positive
    expected = "bool, {0, 1} or {0, 255}" if allowed == "masks" else "bool or {0, 1}"
    hint = " (threshold resized masks first, e.g. masks > 0.5)" if allowed == "masks" else ""
    raise ValueError(f"{name} must be binary: {expected}; found values {_found_values(a)}{hint}")


def check_scores_labels(scores, labels) -> tuple[np.ndarray, np.ndarray]:
    """Validated (scores, labels): 1-D, same length, finite real scores, binary labels as bool."""
    scores = to_numpy(scores, "scores")
    labels = to_numpy(labels, "labels")
    if scores.ndim != 1 or labels.ndim != 1:
        raise ValueError(
            f"scores and labels must be 1-D (one value per image), got shapes {scores.shape} and {labels.shape}"
        )
    if len(scores) != len(labels):
        raise ValueError(
            f"Found input variables with inconsistent numbers of samples: scores {len(scores)}, labels {len(labels)}"
        )
    if len(scores) == 0:
        raise ValueError("scores and labels are empty; at least one image is required")
    _check_real(scores, "scores")
    check_finite(scores, "scores")
    return scores, as_binary(labels, "labels", "labels")


def check_maps_masks(maps, masks) -> tuple[np.ndarray, np.ndarray]:
    """Validated (maps, masks): (N, H, W), same shape, finite maps, binary masks as bool.

    Maps come back as C-contiguous float32 when float32 holds every value exactly (the fast path),
    otherwise in their own dtype (float64, long double, int64, uint64): a cast would merge distinct
    scores, so those maps are ranked by their exact values instead.
    """
    maps = to_numpy(maps, "maps")
    masks = to_numpy(masks, "masks")
    if maps.ndim != 3:
        raise ValueError(f"maps must have shape (N, H, W), got shape {maps.shape}")
    if masks.shape != maps.shape:
        raise ValueError(
            f"maps and masks must have the same shape (N, H, W), got maps {maps.shape} and masks {masks.shape}"
        )
    if maps.size == 0:
        raise ValueError(f"maps and masks are empty (shape {maps.shape}); at least one pixel is required")
    _check_real(maps, "maps")
    check_finite(maps, "maps")
    masks = as_binary(masks, "masks", "masks")
    return _exact_float32(maps), np.ascontiguousarray(masks)


_FLOAT32_INTEGERS = 2**24  # every integer of at most this magnitude is a float32


def _exact_float32(maps: np.ndarray) -> np.ndarray:
    if maps.dtype == np.float32:
        return np.ascontiguousarray(maps)
    if maps.dtype in (np.float16, np.bool_, np.uint8, np.int8, np.uint16, np.int16):
        return maps.astype(np.float32)
    if maps.dtype.kind in "iu":
        # Compared with a float array, integers are converted to float64, which merges those above
        # 2**53: test the range in integers instead (larger ones keep their dtype, ranked exactly).
        if maps.min() >= -_FLOAT32_INTEGERS and maps.max() <= _FLOAT32_INTEGERS:
            return maps.astype(np.float32)
        return np.ascontiguousarray(maps)
    as32 = maps.astype(np.float32)
    if np.array_equal(as32, maps):  # compared in the wider float type: exact
        return as32
    return np.ascontiguousarray(maps)  # float64 or long double, never narrowed


def check_fpr_limit(fpr_limit: float) -> float:
    limit = float(fpr_limit)
    if not 0.0 < limit <= 1.0:
        raise ValueError(f"fpr_limit must be in (0, 1], got {fpr_limit!r}")
    return limit
