"""Rank-based metrics from one sort: ROC AUC, average precision and F1-max (image-level entry
points here; the pixel-level ones in pixels.py share the same counting).

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
    running: np.ndarray = np.cumsum(positive_desc, dtype=dtype)
    tp = running[is_end]
    np.cumsum(~positive_desc, dtype=dtype, out=running)
    fp = running[is_end]
    return RankCounts(tp=tp, fp=fp, n_pos=int(tp[-1]), n_neg=int(fp[-1]))


def rank_counts(scores: np.ndarray, positive: np.ndarray) -> RankCounts:
    """Counts of validated 1-D scores and bool labels (an argsort; for image scores)."""
    order = np.argsort(scores)[::-1]
    return counts_from_sorted(scores[order], positive[order])


def _positive_runs(counts: RankCounts) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The runs of tied scores that hold positives (at most n_pos of them; only there can AUROC,
    AP and F1 change): tp and fp after each such run and fp before it, as int64."""
    tp, fp = counts.tp, counts.fp
    grows = np.empty(len(tp), dtype=bool)
    grows[0] = tp[0] > 0
    np.greater(tp[1:], tp[:-1], out=grows[1:])
    runs = np.flatnonzero(grows)
    fp_before = np.zeros(len(runs), dtype=np.int64)
    fp_before[runs > 0] = fp[runs[runs > 0] - 1]
    return tp[runs].astype(np.int64), fp[runs].astype(np.int64), fp_before


def auroc_from_counts(counts: RankCounts) -> float:
    """Area under the ROC curve, exactly: the Mann-Whitney U in integers, a tie counting one half.

    This is the trapezoid area sklearn's roc_auc_score computes, rounded once instead of many times.
    """
    if counts.n_pos == 0 or counts.n_neg == 0:
        present = "anomalous" if counts.n_pos else "normal"
        raise UndefinedMetricError(
            f"only {present} samples ({counts.n_pos + counts.n_neg}); ROC AUC needs both classes"
        )
    tp, fp, fp_before = _positive_runs(counts)
    new_tp = np.diff(tp, prepend=0)
    # The positives of a run beat the negatives of every later run and tie with those of their own.
    twice_u = int(np.dot(new_tp, 2 * (counts.n_neg - fp) + (fp - fp_before)))
    # Python int / int is correctly rounded: the only rounding in the whole computation.
    return twice_u / (2 * counts.n_pos * counts.n_neg)


def ap_from_counts(counts: RankCounts) -> float:
    """Average precision as sklearn defines it: sum over points of (recall step) x precision."""
    if counts.n_pos == 0:
        raise UndefinedMetricError("no anomalous samples; average precision needs at least one")
    tp, fp, _ = _positive_runs(counts)
    return float(np.sum(np.diff(tp, prepend=0) * (tp / (tp + fp))) / counts.n_pos)


def f1_max_from_counts(counts: RankCounts) -> float:
    """Best F1 = 2 tp / (tp + fp + n_pos) over every threshold (F1 only falls between tp steps)."""
    if counts.n_pos == 0:
        raise UndefinedMetricError("no anomalous samples; F1 needs at least one")
    tp, fp, _ = _positive_runs(counts)
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
