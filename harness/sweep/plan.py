"""Sweeps and jobs: what to run, resolved and validated before anything starts."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import DataError, HarnessError
from harness.store import EXECUTION_ONLY
from harness.sweep import profiles


@dataclass(frozen=True)
class Job:
    """One model: a data set category, a method with resolved settings, and a seed."""

    dataset: str
    category: str
    method: str
    profile: str
    seed: int
    settings: dict  # the method's Settings fields, fully resolved (seed included)
    root: str | None = None
    checkpoint: str | None = None  # evaluate this checkpoint instead of training
    metrics: tuple[str, ...] = ()
    data_options: dict = field(default_factory=dict)  # adapter options (e.g. VisA's split)
    # Reporting only, never part of the results: test-set metrics logged every k epochs (no model
    # selection), and the trained model kept as checkpoint.pth in the official format.
    eval_every: int = 0
    save_checkpoint: bool = False
    # The adapter's fingerprint of the category's data (file list, labels, sha256 of every file), taken when
    # the sweep is planned; "" when the data could not be read then (the job fails when it loads them).
    data_fingerprint: str = ""
    numerics: str = "native"  # "portable": the same bits on any x86-64 CPU (harness.sweep.numerics)

    def identity(self) -> dict:
        """The part of the configuration that determines the results: the data by content, not by location."""
        settings = {k: v for k, v in sorted(self.settings.items()) if k not in EXECUTION_ONLY}
        return {
            "dataset": self.dataset, "category": self.category, "method": self.method,
            "seed": self.seed, "settings": settings, "checkpoint": self.checkpoint, "metrics": list(self.metrics),
            "data_options": {k: v for k, v in sorted(self.data_options.items()) if k != "cache"},
            "data_fingerprint": self.data_fingerprint,
            "numerics": self.numerics,
        }

    @property
    def job_id(self) -> str:
        digest = hashlib.sha256(json.dumps(self.identity(), sort_keys=True, default=str).encode()).hexdigest()
        return f"{self.category}-s{self.seed}-{digest[:10]}"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self) | {"job_id": self.job_id, "metrics": list(self.metrics)}


@dataclass
class Sweep:
    """A data set x categories x method x seeds, under one profile plus explicit overrides."""

    dataset: str = "synthetic"
    categories: tuple[str, ...] = ()  # empty: all categories of the data set
    method: str = ""  # empty: the profile's method
    profile: str = ""  # empty: the data set's default profile
    seeds: tuple[int, ...] = ()  # empty: the profile's seeds
    overrides: dict = field(default_factory=dict)  # method settings set explicitly (CLI flags)
    root: str | None = None
    checkpoint: str | None = None
    metrics: tuple[str, ...] = ()
    data_options: dict = field(default_factory=dict)  # adapter options as given (strings from the CLI are converted)
    eval_every: int = 0
    save_checkpoints: bool = False
    portable: bool = False

    def resolve(self) -> "ResolvedSweep":
        """Validate everything and expand into jobs; raises HarnessError with one clear line."""
        from harness import datasets, methods
        from harness.metrics import DEFAULT_METRICS, METRICS

        data_options = convert_options(datasets.get(self.dataset), self.data_options)
        adapter = datasets.create(self.dataset, self.root, **data_options)
        profile = profiles.get(self.profile or adapter.default_profile)
        method_name = self.method or profile.method
        method_class = methods.get(method_name)
        known = {f.name for f in dataclasses.fields(method_class.Settings)}
        profile_keys = set(profile.settings).union(*profile.category_settings.values())
        unknown = sorted(profile_keys - known) + sorted(set(self.overrides) - known)
        if unknown:
            raise HarnessError(f"method '{method_name}' has no setting(s) {', '.join(unknown)}; it has: {', '.join(sorted(known))}")
        available = adapter.categories
        categories = self.categories or available
        missing = [c for c in categories if c not in available]
        if missing:
            raise HarnessError(f"unknown category '{missing[0]}' for data set '{self.dataset}'; valid: {', '.join(available)}")
        metrics = self.metrics or DEFAULT_METRICS
        bad = [m for m in metrics if m not in METRICS]
        if bad:
            raise HarnessError(f"unknown metric '{bad[0]}'; known metrics: {', '.join(METRICS)}")
        if self.checkpoint and not Path(self.checkpoint).is_file():
            raise HarnessError(f"{self.checkpoint}: checkpoint file not found")

        seeds = self.seeds or profile.seeds
        for what, values in (("category", categories), ("seed", seeds), ("metric", metrics)):
            twice = [v for v in dict.fromkeys(values) if list(values).count(v) > 1]
            if twice:
                raise HarnessError(f"{what} '{twice[0]}' is listed twice ({','.join(map(str, values))}); list each "
                                   f"{what} once")
        fingerprints = {category: data_fingerprint(adapter, category) for category in categories}
        jobs = []
        for category in categories:
            for seed in seeds:
                settings = dataclasses.asdict(method_class.Settings(**(profile.settings_for(category) | self.overrides)))
                if "seed" in settings:
                    settings["seed"] = seed
                if self.checkpoint:  # the model is loaded, not trained: no epochs to claim or to tell jobs apart by
                    settings = {k: v for k, v in settings.items() if k not in method_class.training_settings}
                jobs.append(Job(self.dataset, category, method_name, profile.name, seed, settings,
                                self.root, self.checkpoint, tuple(metrics), data_options,
                                self.eval_every, self.save_checkpoints, fingerprints[category],
                                "portable" if self.portable else "native"))
        return ResolvedSweep(self, profile.name, method_name, tuple(categories), tuple(seeds), jobs)


def data_fingerprint(adapter, category: str) -> str:
    """The category's data fingerprint; "" when its data cannot be read now, so that only its jobs fail
    (at load, with the adapter's message) and the other categories still run."""
    try:
        return adapter.fingerprint(category)
    except DataError:
        return ""


def convert_options(adapter_class, options: dict) -> dict:
    """Give option values given as text the type of the option's default ('cache' is a switch)."""
    converted = {}
    for key, value in options.items():
        default = adapter_class.option_defaults.get(key)
        kind = bool if key == "cache" else type(default) if default is not None else str
        if isinstance(value, str) and kind is not str:
            try:
                if kind is bool:
                    if value.lower() not in ("1", "0", "true", "false", "yes", "no"):
                        raise ValueError
                    value = value.lower() in ("1", "true", "yes")
                else:
                    value = kind(value)
            except ValueError:
                raise HarnessError(f"data option {key}={value}: expected a {kind.__name__}") from None
        converted[key] = value
    return converted


@dataclass
class ResolvedSweep:
    sweep: Sweep
    profile: str
    method: str
    categories: tuple[str, ...]
    seeds: tuple[int, ...]
    jobs: list[Job]

    @property
    def data_fingerprints(self) -> dict[str, str]:
        """category -> fingerprint of its data, as planned."""
        return {job.category: job.data_fingerprint for job in self.jobs}

    @property
    def name(self) -> str:
        """A stable run name: the same sweep on the same data (by content) gets the same folder, so rerunning
        it resumes; other data make other job ids and so another folder."""
        digest = hashlib.sha256(json.dumps(sorted(j.job_id for j in self.jobs)).encode()).hexdigest()[:6]
        return f"{self.sweep.dataset}-{self.method}-{self.profile}-{digest}"
