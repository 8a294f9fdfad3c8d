"""Rank-based metrics from one sort: ROC AUC, average precision and F1-max, image level.

Every one of these metrics is a function of the operating points of the score ranking: for each
distinct score t, taken from the highest down, the number of positives (tp) and negatives (fp)
with score >= t. `RankCounts` holds exactly those integer counts (a run of tied scores is one
point, the last of the run, as in sklearn's `_binary_clf_curve`); the metrics are computed from
integers so that they equal sklearn's values up to one final rounding.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .validation import UndefinedMetricError, check_scores_labels


@dataclass(frozen=True)
class RankCounts:
    """Cumulative counts at each distinct score, from the highest score down."""

    tp: np.ndarray  # positives with score >= the k-th highest distinct score
    fp: np.ndarray  # negatives with score >= the k-th highest distinct score
    n_pos: int
    n_neg: int


def _count_dtype(n: int) -> type:
    return np.int32 if n < 2**31 - 1 else np.int64


def counts_from_sorted(values_desc: np.ndarray, positive_desc: np.ndarray) -> RankCounts:
    """Counts from scores sorted in descending order (order within ties is irrelevant).

    `values_desc` may be any array whose equality means a tie (scores, or order-preserving keys).
    """
    n = len(values_desc)
    dtype = _count_dtype(n)
    is_end = np.empty(n, dtype=bool)
    np.not_equal(values_desc[1:], values_desc[:-1], out=is_end[:-1])
    is_end[-1] = True
    cum_pos = np.cumsum(positive_desc, dtype=dtype)
    tp = cum_pos[is_end]
    n_pos = int(cum_pos[-1])
    del cum_pos
    ends = np.flatnonzero(is_end).astype(dtype, copy=False)
    fp = ends - tp
    fp += 1
    return RankCounts(tp=tp, fp=fp, n_pos=n_pos, n_neg=n - n_pos)


def rank_counts(scores: np.ndarray, positive: np.ndarray) -> RankCounts:
    """Counts of validated 1-D scores and bool labels (an argsort; for image scores)."""
    order = np.argsort(scores)[::-1]
    return counts_from_sorted(scores[order], positive[order])


def _steps(counts: RankCounts) -> tuple[np.ndarray, np.ndarray]:
    """(tp, fp) at the operating points where tp grows: the only ones where AP and F1 can change."""
    tp = counts.tp
    grows = np.empty(len(tp), dtype=bool)
    grows[0] = tp[0] > 0
    np.greater(tp[1:], tp[:-1], out=grows[1:])
    return tp[grows].astype(np.int64), counts.fp[grows].astype(np.int64)


def auroc_from_counts(counts: RankCounts) -> float:
    """Trapezoid area under the ROC curve, computed exactly in integers (= the Mann-Whitney U)."""
    if counts.n_pos == 0 or counts.n_neg == 0:
        present = "anomalous" if counts.n_pos else "normal"
        raise UndefinedMetricError(f"only {present} samples ({counts.n_pos + counts.n_neg}); ROC AUC needs both classes")
    tp = counts.tp.astype(np.int64)
    fp = counts.fp.astype(np.int64)
    # Twice the area times n_pos * n_neg: sum over points of d(fp) * (tp + previous tp).
    height = tp.copy()
    height[1:] += tp[:-1]
    dfp = fp.copy()
    dfp[1:] -= fp[:-1]
    twice_area = int(np.dot(dfp, height))
    # Python int / int is correctly rounded: the only rounding in the whole computation.
    return twice_area / (2 * counts.n_pos * counts.n_neg)


def ap_from_counts(counts: RankCounts) -> float:
    """Average precision as sklearn defines it: sum over points of (recall step) x precision."""
    if counts.n_pos == 0:
        raise UndefinedMetricError("no anomalous samples; average precision needs at least one")
    tp, fp = _steps(counts)
    dtp = np.diff(tp, prepend=0)
    return float(np.sum(dtp * (tp / (tp + fp))) / counts.n_pos)


def f1_max_from_counts(counts: RankCounts) -> float:
    """Best F1 = 2 tp / (tp + fp + n_pos) over every threshold (F1 only falls between tp steps)."""
    if counts.n_pos == 0:
        raise UndefinedMetricError("no anomalous samples; F1 needs at least one")
    tp, fp = _steps(counts)
    return float(np.max(2 * tp / (tp + fp + counts.n_pos)))


def image_auroc(scores, labels) -> float:
    """Exact ROC AUC of image scores against binary labels (sklearn's roc_auc_score, never flipped)."""
    return auroc_from_counts(rank_counts(*check_scores_labels(scores, labels)))


def image_ap(scores, labels) -> float:
    """Average precision of image scores (sklearn's average_precision_score, step-wise)."""
    return ap_from_counts(rank_counts(*check_scores_labels(scores, labels)))


def image_f1_max(scores, labels) -> float:
    """Best F1 of image scores over every distinct threshold (anomalous iff score >= threshold)."""
    return f1_max_from_counts(rank_counts(*check_scores_labels(scores, labels)))
