"""Intervals and paired tests of a run's metrics, from its stored predictions (never retrains).

Per category, over the test images: I-AUROC by DeLong (the mean over seeds with the seeds'
covariance), every other metric by the stratified image bootstrap (harness.stats.bootstrap), the
seeds of a category sharing each resample. The mean row: DeLong variances add over categories
(their test sets are disjoint, so independent); bootstrap resamples are averaged over categories
resample by resample. Over seeds: Student's t interval of the per-seed values (harness.stats.seeds).
The two are never mixed: every interval carries the method that made it.
"""

from __future__ import annotations

import math
import statistics
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from harness.errors import HarnessError
from harness.metrics import METRICS, evaluate
from harness.stats import delong
from harness.stats.bootstrap import (
    DEFAULT_RESAMPLES,
    DEFAULT_SEED,
    PIXEL_FAST,
    PIXEL_WALK,
    PixelTable,
    Rd4adTable,
    expand,
    percentile_interval,
    resampled_values,
    stratified_multiplicities,
)
from harness.stats.paired import PairedDifference, bootstrap_p_value, paired_bootstrap
from harness.stats.seeds import seed_interval
from harness.store import PREDICTIONS, RECORD, load_predictions, read_json, record_set_complete

MEAN = "mean"  # the mean row over categories (as harness.report names it)
NO_PIXELS = "not applicable: the data set has no pixel masks"


@dataclass
class Options:
    """How intervals are computed (the --ci, --resamples, --ci-seed and --confidence flags)."""

    resamples: int = DEFAULT_RESAMPLES
    seed: int = DEFAULT_SEED
    confidence: float = 0.95
    over: str = "images"  # "images" or "seeds"

    def __post_init__(self) -> None:
        if self.resamples < 1:
            raise HarnessError("--resamples must be at least 1")
        if not 0.5 <= self.confidence < 1:
            raise HarnessError("--confidence must be in [0.5, 1)")
        if self.over not in ("images", "seeds"):
            raise HarnessError(f"--ci {self.over}: choose images or seeds")


@dataclass
class CategoryData:
    """One category of a run: the test set and each seed's predictions."""

    category: str
    labels: np.ndarray
    masks: np.ndarray | None
    paths: list[str]
    fingerprint: str | None
    seeds: list = field(default_factory=list)
    scores: list[np.ndarray] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)  # each seed's predictions.npz (maps are read when needed)
    values: list[dict] = field(default_factory=list)  # the records' metric values, per seed

    def maps(self, s: int) -> np.ndarray:
        """Seed s's maps, read again from its file: a run's maps are not all held in memory at once."""
        return load_predictions(self.files[s])["maps"]


def load_run(run_dir: str | Path, predictions: bool = True) -> dict[str, CategoryData]:
    """category -> its predictions, seeds in order; HarnessError (one line) when they cannot be used.
    Without `predictions`, the records' values only (for intervals over seeds)."""
    jobs = Path(run_dir) / "jobs"
    if not jobs.is_dir():
        raise HarnessError(f"{run_dir}: run folder not found (no jobs/)")
    found: dict[str, CategoryData] = {}
    records = [(path.parent, read_json(path)) for path in sorted(jobs.glob(f"*/{RECORD}"))]
    records = [(folder, r) for folder, r in records if record_set_complete(r, jobs)]
    if not records:
        raise HarnessError(f"{run_dir}: no finished jobs")
    for folder, record in sorted(records, key=lambda item: (str(item[1].get("category")), str(item[1].get("seed")))):
        category = str(record.get("category"))
        fingerprint = (record.get("data") or {}).get("fingerprint")
        if not predictions:
            entry = found.setdefault(category, CategoryData(category, np.zeros(0, bool), None, [], fingerprint))
            entry.seeds.append(record.get("seed"))
            entry.values.append({n: (m or {}).get("value") for n, m in (record.get("metrics") or {}).items()})
            continue
        if not (folder / PREDICTIONS).is_file():
            raise HarnessError(
                f"{folder}: no {PREDICTIONS}: intervals over test images need the stored predictions "
                "(--ci-over seeds needs only the records)"
            )
        data = load_predictions(folder / PREDICTIONS)
        paths = [str(p) for p in data["paths"]]
        known = found.get(category)
        if known is None:
            entry = found[category] = CategoryData(
                category, data["labels"].astype(bool), data["masks"], paths, fingerprint
            )
        else:
            entry = known
        if paths != entry.paths or not np.array_equal(data["labels"].astype(bool), entry.labels):
            raise HarnessError(f"{run_dir}: the seeds of '{category}' were tested on different images")
        entry.seeds.append(record.get("seed"))
        entry.scores.append(np.asarray(data["scores"]))
        entry.files.append(folder / PREDICTIONS)
        del data
        entry.values.append({n: (m or {}).get("value") for n, m in (record.get("metrics") or {}).items()})
    return found


def draws_for(category: str, labels: np.ndarray, options: Options) -> np.ndarray:
    """The resamples of one category: the same for every run compared (seeded by --ci-seed and the name)."""
    seed = int(np.random.SeedSequence([options.seed, zlib.crc32(category.encode())]).generate_state(1)[0])
    return stratified_multiplicities(labels, options.resamples, seed)


@dataclass(frozen=True)
class Interval:
    low: float
    high: float
    method: str  # e.g. "DeLong, logit 95%" or "image bootstrap, percentile 95%, B=1000, seed 0"
    reason: str | None = None  # why there is none (NaN bounds)


def bootstrap_method(options: Options) -> str:
    return (
        f"stratified image bootstrap, percentile {options.confidence:.0%}, B={options.resamples}, seed {options.seed}"
    )


def resampled(data: CategoryData, metric: str, s: int, draws: np.ndarray) -> np.ndarray:
    """Seed s's metric on every resample (exact per resample)."""
    spec = METRICS[metric]
    if spec.level == "image":
        out = np.empty(len(draws))
        for b, w in enumerate(draws):
            index = expand(w)
            out[b] = evaluate(data.scores[s][index], data.labels[index], names=(metric,))[metric].value
        return out
    return resampled_pixels(data, [metric], s, draws)[metric]


def resampled_pixels(data: CategoryData, metrics: list[str], s: int, draws: np.ndarray) -> dict[str, np.ndarray]:
    """Seed s's pixel metrics on every resample, from one set of tables (built, used and dropped here)."""
    maps, found = data.maps(s), {}
    if "pro_rd4ad" in metrics:
        found["pro_rd4ad"] = resampled_values(None, Rd4adTable(maps, data.masks, data.labels), "pro_rd4ad", draws)
    tabled = [m for m in metrics if m in PIXEL_FAST + PIXEL_WALK]
    if tabled:
        table = PixelTable(maps, data.masks, curves=any(m in PIXEL_WALK for m in tabled))
        for metric in tabled:
            found[metric] = resampled_values(table, None, metric, draws)
    return found


def _undefined(data: CategoryData, metric: str) -> str | None:
    if METRICS[metric].level == "pixel" and data.masks is None:
        return NO_PIXELS
    if metric in ("image_auroc", "pixel_auroc") and (data.labels.all() or not data.labels.any()):
        return "undefined: the test set has one class only"
    return None


class RunIntervals:
    """Intervals of one run's metrics; the resampled values are kept for the mean row and for pairing."""

    def __init__(self, run_dir: str | Path, options: Options | None = None) -> None:
        self.run_dir = Path(run_dir)
        self.options = options or Options()
        self.data = load_run(run_dir, predictions=self.options.over == "images")
        self._boot: dict[tuple[str, str], np.ndarray] = {}

    def boot(self, category: str, metric: str) -> np.ndarray:
        """The seed-mean of the metric on each resample of the category. The first pixel metric asked for
        computes every pixel metric the category's records have, so each seed's tables are built once."""
        key = (category, metric)
        if key not in self._boot:
            data = self.data[category]
            draws = draws_for(category, data.labels, self.options)
            seeds = range(len(data.seeds))
            if METRICS[metric].level == "image":
                self._boot[key] = np.mean([resampled(data, metric, s, draws) for s in seeds], axis=0)
            else:
                recorded = {m for values in data.values for m in values if m in METRICS}
                wanted = [m for m in METRICS if METRICS[m].level == "pixel" and (m in recorded or m == metric)]
                wanted = [m for m in wanted if (category, m) not in self._boot]
                per_seed = [resampled_pixels(data, wanted, s, draws) for s in seeds]
                for name in wanted:
                    self._boot[category, name] = np.mean([found[name] for found in per_seed], axis=0)
        return self._boot[key]

    def delong_parts(self, category: str) -> delong.Components:
        data = self.data[category]
        return delong.components(np.stack(data.scores), data.labels)

    def interval(self, category: str, metric: str) -> Interval:
        if metric not in METRICS:
            return Interval(math.nan, math.nan, "", f"unknown metric {metric}")
        if self.options.over == "seeds":
            return self._seed_interval(category, metric)
        if category == MEAN:
            return self._mean_interval(metric)
        data = self.data[category]
        why = _undefined(data, metric)
        if why:
            return Interval(math.nan, math.nan, "", why)
        confidence = self.options.confidence
        if metric == "image_auroc":
            part = self.delong_parts(category)
            k = len(data.seeds)
            auc, variance = float(part.aucs.mean()), float(part.covariance.sum()) / k**2
            low, high = delong.logit_interval(auc, variance, confidence)
            return Interval(low, high, f"DeLong, logit {confidence:.0%}")
        low, high = percentile_interval(self.boot(category, metric), confidence)
        return Interval(low, high, bootstrap_method(self.options))

    def _seed_interval(self, category: str, metric: str) -> Interval:
        values: list[float]
        if category == MEAN:  # the per-seed means over categories, from seeds that have every category
            per_seed: dict = {}
            for data in self.data.values():
                for seed, found in zip(data.seeds, data.values, strict=True):
                    per_seed.setdefault(seed, []).append(found.get(metric))
            values = [statistics.fmean(v) for v in per_seed.values() if None not in v and len(v) == len(self.data)]
        else:
            values = [float(v[metric]) for v in self.data[category].values if v.get(metric) is not None]
        if len(values) < 2:
            return Interval(math.nan, math.nan, "", "one seed: no interval over seeds")
        interval = seed_interval(values, self.options.confidence)
        return Interval(interval.low, interval.high, f"t over {interval.n} seeds, {self.options.confidence:.0%}")

    def _mean_interval(self, metric: str) -> Interval:
        categories = [c for c in self.data if _undefined(self.data[c], metric) is None]
        if not categories:
            reasons = {_undefined(self.data[c], metric) for c in self.data}
            return Interval(math.nan, math.nan, "", "; ".join(sorted(r for r in reasons if r)))
        confidence = self.options.confidence
        if metric == "image_auroc":
            means, variance = [], 0.0
            for category in categories:
                part = self.delong_parts(category)
                k = len(part.aucs)
                means.append(float(part.aucs.mean()))
                variance += float(part.covariance.sum()) / k**2
            mean, se = statistics.fmean(means), math.sqrt(variance) / len(means)
            half = delong._z(confidence) * se
            low, high = max(mean - half, 0.0), min(mean + half, 1.0)  # a mean of AUCs near 1: clipped to [0, 1]
            return Interval(low, high, f"DeLong, categories independent, normal {confidence:.0%}, clipped to [0, 1]")
        stacked = np.mean([self.boot(c, metric) for c in categories], axis=0)
        low, high = percentile_interval(stacked, confidence)
        return Interval(low, high, bootstrap_method(self.options) + ", resample by resample over categories")


# ---- two runs ------------------------------------------------------------------------------------


def same_images(a: RunIntervals, b: RunIntervals) -> str | None:
    """None when the two runs were tested on the same images, else the first difference (one line)."""
    shared = [c for c in a.data if c in b.data]
    if not shared:
        return f"{a.run_dir} and {b.run_dir} share no category"
    for category in shared:
        x, y = a.data[category], b.data[category]
        if x.fingerprint and y.fingerprint and x.fingerprint != y.fingerprint:
            return f"'{category}': data fingerprints differ ({x.fingerprint} vs {y.fingerprint})"
        if x.paths != y.paths:
            return f"'{category}': the test image paths differ ({len(x.paths)} vs {len(y.paths)} images)"
        if not np.array_equal(x.labels, y.labels):
            return f"'{category}': the test labels differ"
    return None


def paired_difference(a: RunIntervals, b: RunIntervals, category: str, metric: str) -> PairedDifference | None:
    """A minus B on the same images: paired DeLong for I-AUROC, paired bootstrap for the rest."""
    options = a.options
    shared = [c for c in a.data if c in b.data]
    rows = shared if category == MEAN else [category]
    rows = [c for c in rows if _undefined(a.data[c], metric) is None]
    if not rows or metric not in METRICS:
        return None
    if metric == "image_auroc":
        differences, variance = [], 0.0
        for c in rows:
            x, y = a.data[c], b.data[c]
            part = delong.components(np.stack(x.scores + y.scores), x.labels)
            contrast = np.concatenate(
                [np.full(len(x.scores), 1 / len(x.scores)), np.full(len(y.scores), -1 / len(y.scores))]
            )
            differences.append(float(contrast @ part.aucs))
            variance += float(contrast @ part.covariance @ contrast)
        found = delong.paired_from_components(
            np.array([statistics.fmean(differences), 0.0]),
            np.array([[variance / len(rows) ** 2, 0.0], [0.0, 0.0]]),
            options.confidence,
        )
        method = "paired DeLong" + (", categories independent" if category == MEAN else "")
        return PairedDifference(found.difference, found.low, found.high, found.p_value, method)
    value_a = np.mean([a.boot(c, metric) for c in rows], axis=0)
    value_b = np.mean([b.boot(c, metric) for c in rows], axis=0)
    point_a = statistics.fmean(_point(a.data[c], metric) for c in rows)
    point_b = statistics.fmean(_point(b.data[c], metric) for c in rows)
    method = "paired " + bootstrap_method(options)
    return paired_bootstrap(point_a, point_b, value_a, value_b, method, options.confidence)


def _point(data: CategoryData, metric: str) -> float:
    """The category's recorded value, mean over seeds (NaN when a seed has it undefined)."""
    values = [v.get(metric) for v in data.values]
    if any(v is None for v in values):
        return math.nan
    return statistics.fmean(float(v) for v in values if v is not None)


__all__ = [
    "Interval",
    "Options",
    "RunIntervals",
    "bootstrap_p_value",
    "load_run",
    "paired_difference",
    "same_images",
]
