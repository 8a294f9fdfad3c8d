"""DeLong's variance of the ROC AUC, by the fast algorithm of Sun & Xu (IEEE SPL 2014).

DeLong, DeLong & Clarke-Pearson (1988) write each AUC as the mean of structural components:
for a positive x_i, V10_i = mean over negatives y_j of psi(x_i, y_j); for a negative y_j,
V01_j = mean over positives of psi(x_i, y_j), with psi = 1 when x > y, 1/2 when tied, 0 otherwise.
The covariance of k AUCs on the same samples is S10 / m + S01 / n (S: sample covariances of the
components, m positives, n negatives). Sun & Xu get every component from three midrank vectors
(of all samples, of the positives, of the negatives), so the cost is three sorts, O(N log N),
instead of the m x n comparisons of the definition.

Interval of one AUC: on the logit scale (a plain interval near 1 spills past 1, and anomaly
detection AUCs sit near 1), logit(AUC) +- z se / (AUC (1 - AUC)), mapped back. A perfect or
entirely wrong AUC (0 or 1) has DeLong variance 0: its interval is the point itself, and the
notes say so. Paired difference of two AUCs: a plain normal interval and a two-sided z test.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats as scipy_stats

from harness.metrics.validation import check_scores_labels


def midranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks of `values`, ties sharing the mean of their ranks (float64)."""
    order = np.argsort(values, kind="mergesort")
    ordered = values[order]
    n = len(values)
    starts = np.flatnonzero(np.concatenate([[True], ordered[1:] != ordered[:-1]]))
    ends = np.concatenate([starts[1:], [n]])  # exclusive
    run_rank = (starts + ends + 1) / 2.0  # mean of the 1-based ranks starts+1 .. ends
    ranks = np.empty(n, dtype=np.float64)
    ranks[order] = np.repeat(run_rank, ends - starts)
    return ranks


@dataclass(frozen=True)
class Components:
    """Structural components of k score sets on the same samples."""

    aucs: np.ndarray  # (k,)
    v10: np.ndarray  # (k, m) one per positive
    v01: np.ndarray  # (k, n) one per negative

    @property
    def covariance(self) -> np.ndarray:
        """DeLong's (k, k) covariance of the AUCs: S10 / m + S01 / n."""
        m, n = self.v10.shape[1], self.v01.shape[1]
        s10 = np.atleast_2d(np.cov(self.v10)) if m > 1 else np.zeros((len(self.aucs),) * 2)
        s01 = np.atleast_2d(np.cov(self.v01)) if n > 1 else np.zeros((len(self.aucs),) * 2)
        return s10 / m + s01 / n


def components(scores: np.ndarray, labels: np.ndarray) -> Components:
    """Components of one (N,) or several (k, N) score vectors against the same bool labels (fast algorithm)."""
    scores = np.atleast_2d(np.asarray(scores, dtype=np.float64))
    positive = np.asarray(labels, dtype=bool)
    m, n = int(positive.sum()), int((~positive).sum())
    if m == 0 or n == 0:
        raise ValueError("DeLong's variance needs both positive and negative samples")
    v10 = np.empty((len(scores), m))
    v01 = np.empty((len(scores), n))
    aucs = np.empty(len(scores))
    for r, row in enumerate(scores):
        x, y = row[positive], row[~positive]
        tz = midranks(row)
        tx, ty = midranks(x), midranks(y)
        v10[r] = (tz[positive] - tx) / n  # negatives below each positive (ties 1/2), over n
        v01[r] = 1.0 - (tz[~positive] - ty) / m  # positives above each negative (ties 1/2), over m
        aucs[r] = (tz[positive].sum() / m - (m + 1) / 2.0) / n
    return Components(aucs, v10, v01)


def components_reference(scores: np.ndarray, labels: np.ndarray) -> Components:
    """The definition, O(m n): every positive against every negative (the check of the fast algorithm)."""
    scores = np.atleast_2d(np.asarray(scores, dtype=np.float64))
    positive = np.asarray(labels, dtype=bool)
    v10, v01, aucs = [], [], []
    for row in scores:
        x, y = row[positive][:, None], row[~positive][None, :]
        psi = (x > y) + 0.5 * (x == y)
        v10.append(psi.mean(axis=1))
        v01.append(psi.mean(axis=0))
        aucs.append(psi.mean())
    return Components(np.array(aucs), np.array(v10), np.array(v01))


@dataclass(frozen=True)
class AucInterval:
    auc: float
    variance: float
    low: float
    high: float
    method: str


def _z(confidence: float) -> float:
    return float(scipy_stats.norm.ppf(0.5 + confidence / 2))


def logit_interval(auc: float, variance: float, confidence: float = 0.95) -> tuple[float, float]:
    """The interval of an AUC from its variance on the logit scale (the point itself when AUC is 0 or 1)."""
    if auc <= 0.0 or auc >= 1.0 or variance <= 0.0:
        return auc, auc
    se = math.sqrt(variance) / (auc * (1.0 - auc))
    centre, half = math.log(auc / (1.0 - auc)), _z(confidence) * se
    return 1.0 / (1.0 + math.exp(-(centre - half))), 1.0 / (1.0 + math.exp(-(centre + half)))


def auc_interval(scores, labels, confidence: float = 0.95) -> AucInterval:
    """DeLong interval of one ROC AUC (logit scale)."""
    scores, labels = check_scores_labels(scores, labels)
    part = components(scores, labels)
    auc, variance = float(part.aucs[0]), float(part.covariance[0, 0])
    low, high = logit_interval(auc, variance, confidence)
    return AucInterval(auc, variance, low, high, f"DeLong, logit {confidence:.0%}")


def mean_auc_interval(scores: list[np.ndarray], labels, confidence: float = 0.95) -> AucInterval:
    """Interval of the mean AUC of several score vectors on the same images (seeds): the variance
    of the mean is 1' S 1 / k^2 with S DeLong's covariance, so correlated seeds are not counted twice."""
    part = components(np.stack(scores), np.asarray(labels, dtype=bool))
    k = len(scores)
    auc = float(part.aucs.mean())
    variance = float(part.covariance.sum()) / k**2
    low, high = logit_interval(auc, variance, confidence)
    return AucInterval(auc, variance, low, high, f"DeLong, logit {confidence:.0%}")


@dataclass(frozen=True)
class PairedAuc:
    difference: float  # AUC of a minus AUC of b
    variance: float
    low: float
    high: float
    p_value: float
    method: str = "paired DeLong"


def paired_auc_test(scores_a, scores_b, labels, confidence: float = 0.95) -> PairedAuc:
    """Paired DeLong test of two score sets on the same images: difference, its plain interval, two-sided p."""
    part = components(np.stack([np.asarray(scores_a), np.asarray(scores_b)]), np.asarray(labels, dtype=bool))
    return paired_from_components(part.aucs, part.covariance, confidence)


def paired_from_components(aucs: np.ndarray, covariance: np.ndarray, confidence: float = 0.95) -> PairedAuc:
    """The paired test from two AUCs (or two means of AUCs) and their 2 x 2 covariance."""
    difference = float(aucs[0] - aucs[1])
    variance = float(covariance[0, 0] + covariance[1, 1] - 2 * covariance[0, 1])
    variance = max(variance, 0.0)
    if variance == 0.0:
        p_value = 1.0 if difference == 0.0 else 0.0
        return PairedAuc(difference, 0.0, difference, difference, p_value)
    se = math.sqrt(variance)
    z = difference / se
    p_value = float(2 * scipy_stats.norm.sf(abs(z)))
    half = _z(confidence) * se
    return PairedAuc(difference, variance, difference - half, difference + half, p_value)
