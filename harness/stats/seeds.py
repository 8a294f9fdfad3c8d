"""Spread over seeds: mean, sample standard deviation and Student's t interval of the mean.

This interval is about training randomness (the seeds), not about the test images; reports keep the
two apart and say which one a number carries.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

from scipy import stats as scipy_stats


@dataclass(frozen=True)
class SeedInterval:
    mean: float
    std: float | None  # sample standard deviation (n - 1); None with one seed
    n: int
    low: float  # NaN with one seed: no interval over seeds
    high: float


def seed_interval(values: list[float], confidence: float = 0.95) -> SeedInterval:
    """mean +- t_{(1+confidence)/2, n-1} s / sqrt(n) over the seeds' values."""
    if not values:
        raise ValueError("no values")
    mean = statistics.fmean(values)
    if len(values) < 2:
        return SeedInterval(mean, None, len(values), math.nan, math.nan)
    std = statistics.stdev(values)
    half = float(scipy_stats.t.ppf(0.5 + confidence / 2, len(values) - 1)) * std / math.sqrt(len(values))
    return SeedInterval(mean, std, len(values), mean - half, mean + half)
