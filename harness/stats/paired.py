"""Tests of differences: paired bootstrap over images, Wilcoxon signed-rank over categories,
Friedman over three or more runs with Holm-corrected post-hoc tests and Demšar's critical difference.

Demšar, "Statistical comparisons of classifiers over multiple data sets", JMLR 7 (2006): rank the
runs within each category (1 = best, ties share the mean rank), Friedman's chi-square on the mean
ranks, then pairwise z = (R_i - R_j) / sqrt(k (k + 1) / (6 N)) with Holm's step-down correction;
the critical difference of the Nemenyi test, CD = q_alpha sqrt(k (k + 1) / (6 N)), sets the scale
of the diagram.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats as scipy_stats

from harness.stats.bootstrap import percentile_interval

# Nemenyi's q at alpha 0.05 for k = 2..10 runs (Demšar 2006, table 5a: studentised range / sqrt 2)
NEMENYI_Q05 = {2: 1.960, 3: 2.343, 4: 2.569, 5: 2.728, 6: 2.850, 7: 2.949, 8: 3.031, 9: 3.102, 10: 3.164}


@dataclass(frozen=True)
class PairedDifference:
    difference: float  # a minus b on the test set as it is
    low: float
    high: float
    p_value: float
    method: str

    @property
    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0


def bootstrap_p_value(differences: np.ndarray) -> float:
    """Two-sided: twice the smaller share of resampled differences on either side of 0, with the +1
    of a Monte Carlo p-value ((1 + count) / (1 + B)) so that it is never 0, capped at 1."""
    finite = differences[~np.isnan(differences)]
    if len(finite) == 0:
        return math.nan
    below = (1 + np.count_nonzero(finite <= 0)) / (1 + len(finite))
    above = (1 + np.count_nonzero(finite >= 0)) / (1 + len(finite))
    return float(min(1.0, 2 * min(below, above)))


def paired_bootstrap(
    value_a: float,
    value_b: float,
    resampled_a: np.ndarray,
    resampled_b: np.ndarray,
    method: str,
    confidence: float = 0.95,
) -> PairedDifference:
    """Difference of two runs from their values on the same resamples (same images for both sides)."""
    differences = np.asarray(resampled_a) - np.asarray(resampled_b)
    low, high = percentile_interval(differences, confidence)
    return PairedDifference(value_a - value_b, low, high, bootstrap_p_value(differences), method)


@dataclass(frozen=True)
class SignedRank:
    statistic: float
    p_value: float
    n: int  # categories with a non-zero difference (zero differences are dropped: Wilcoxon's rule)


def wilcoxon_categories(a: list[float], b: list[float]) -> SignedRank:
    """Two-sided Wilcoxon signed-rank test of per-category values of two runs (scipy, exact when small)."""
    differences = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    nonzero = int(np.count_nonzero(differences))
    if nonzero == 0:
        return SignedRank(0.0, 1.0, 0)
    result = scipy_stats.wilcoxon(differences, zero_method="wilcox", alternative="two-sided")
    return SignedRank(float(result.statistic), float(result.pvalue), nonzero)


def holm(p_values: list[float]) -> list[float]:
    """Holm's step-down adjusted p-values (monotone, capped at 1), in the input order."""
    order = np.argsort(p_values, kind="stable")
    m = len(p_values)
    adjusted = np.empty(m)
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[index]))
        adjusted[index] = running
    return adjusted.tolist()


@dataclass(frozen=True)
class Friedman:
    names: list[str]
    mean_ranks: list[float]  # 1 = best
    statistic: float
    p_value: float
    n: int  # categories
    critical_difference: float | None  # Nemenyi at 0.05 (None beyond 10 runs)
    pairs: list[tuple[int, int, float, float]]  # (i, j, raw p, Holm-adjusted p)


def friedman(names: list[str], values: np.ndarray, alpha: float = 0.05) -> Friedman:
    """values (categories, runs), higher is better: Friedman's test and Holm-corrected pairwise tests."""
    values = np.asarray(values, dtype=float)
    n, k = values.shape
    if k < 3:
        raise ValueError("the Friedman test compares three or more runs")
    ranks = np.vstack([scipy_stats.rankdata(-row) for row in values])  # 1 = best, ties averaged
    mean_ranks = ranks.mean(axis=0)
    if np.all(ranks == ranks[0]) and np.all(ranks == (k + 1) / 2):  # every category a full tie: no evidence
        statistic, p_value = 0.0, 1.0
    else:
        result = scipy_stats.friedmanchisquare(*values.T)
        statistic, p_value = float(result.statistic), float(result.pvalue)
    se = math.sqrt(k * (k + 1) / (6.0 * n))
    raw = []
    pairs = [(i, j) for i in range(k) for j in range(i + 1, k)]
    for i, j in pairs:
        z = (mean_ranks[i] - mean_ranks[j]) / se
        raw.append(float(2 * scipy_stats.norm.sf(abs(z))))
    adjusted = holm(raw)
    q = NEMENYI_Q05.get(k) if alpha == 0.05 else None
    return Friedman(
        list(names),
        mean_ranks.tolist(),
        statistic,
        p_value,
        n,
        None if q is None else q * se,
        [(i, j, p, a) for (i, j), p, a in zip(pairs, raw, adjusted, strict=True)],
    )
