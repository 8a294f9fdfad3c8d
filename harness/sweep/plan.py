"""Sweeps and jobs: what to run, resolved and validated before anything starts."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import DataError, HarnessError
from harness.files import content_hashes
from harness.store import SHARED
from harness.sweep import profiles
from harness.sweep.profiles import Profile
from harness.sweep.setting_types import check_setting_types

# "single": one model per category (the RD4AD paper's protocol); "unified": one model per seed trained on the
# training images of every selected category together, evaluated on each category's test set (UniAD, ADer).
PROTOCOLS = ("single", "unified")
UNIFIED = "unified"
# Seeds that every random generator a job seeds accepts (numpy takes no negative seed, torch none above 64 bits)
SEED_RANGE = (0, 2**32 - 1)


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
    numerics: str = "native"  # "portable": meant for the same bits across x86-64 CPUs (harness.sweep.numerics)
    # The unified protocol: `category` is "unified", `categories` the categories trained on together (in the
    # sweep's order) and `data_fingerprints` theirs (category -> fingerprint, "" when unreadable when planned).
    protocol: str = "single"
    categories: tuple[str, ...] = ()
    data_fingerprints: dict = field(default_factory=dict)
    checkpoint_sha256: str = ""  # the content of `checkpoint` (its path alone would not tell two files apart)
    # The settings the method declares execution-only (Method.execution_settings): not part of the identity.
    execution_settings: tuple[str, ...] = ()

    def identity(self) -> dict:
        """The part of the configuration that determines the results: the data by content, not by location."""
        settings = {k: v for k, v in sorted(self.settings.items()) if k not in self.execution_settings}
        if self.protocol == UNIFIED:
            return unified_identity(self, settings) | self._checkpoint_content()
        return {
            "dataset": self.dataset,
            "category": self.category,
            "method": self.method,
            "seed": self.seed,
            "settings": settings,
            "checkpoint": self.checkpoint,
            "metrics": list(self.metrics),
            "data_options": {k: v for k, v in sorted(self.data_options.items()) if k != "cache"},
            "data_fingerprint": self.data_fingerprint,
            "numerics": self.numerics,
        } | self._checkpoint_content()

    def _checkpoint_content(self) -> dict:
        # only where there is a checkpoint, so that the ids of trained jobs stay what they were
        return {"checkpoint_sha256": self.checkpoint_sha256} if self.checkpoint else {}

    @property
    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.identity(), sort_keys=True, default=str).encode()).hexdigest()[:10]

    @property
    def job_id(self) -> str:
        return f"{self.category}-s{self.seed}-{self.digest}"

    @property
    def record_ids(self) -> tuple[str, ...]:
        """The job folders holding this job's records: its own; for a unified job one per category
        (`<category>-s<seed>-<the job's digest>`). The job is done iff every one has its record."""
        if self.protocol != UNIFIED:
            return (self.job_id,)
        digest = self.digest
        return tuple(f"{category}-s{self.seed}-{digest}" for category in self.categories)

    def to_dict(self) -> dict:
        extra = {"record_ids": list(self.record_ids)} if self.protocol == UNIFIED else {}
        return dataclasses.asdict(self) | {"job_id": self.job_id, "metrics": list(self.metrics)} | extra


def unified_identity(job: Job, settings: dict) -> dict:
    """A unified job's identity: the protocol and every category it trains on, with its data's fingerprint,
    instead of one category."""
    return {
        "dataset": job.dataset,
        "protocol": UNIFIED,
        "categories": list(job.categories),
        "method": job.method,
        "seed": job.seed,
        "settings": settings,
        "checkpoint": job.checkpoint,
        "metrics": list(job.metrics),
        "data_options": {k: v for k, v in sorted(job.data_options.items()) if k != "cache"},
        "data_fingerprints": {category: job.data_fingerprints.get(category, "") for category in job.categories},
        "numerics": job.numerics,
    }


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
    protocol: str = ""  # "single" | "unified"; empty: the profile's (single unless the profile says otherwise)

    def resolve(self) -> ResolvedSweep:
        """Validate everything and expand into jobs; raises HarnessError with one clear line."""
        from harness import datasets, methods
        from harness.metrics import DEFAULT_METRICS, METRICS

        data_options = convert_options(datasets.get(self.dataset), self.data_options)
        adapter = datasets.create(self.dataset, self.root, **data_options)
        method_name, profile = choose_profile(self.method, self.profile, adapter.default_profile)
        method_class = methods.get(method_name)
        check_capabilities(method_name, method_class, self)
        known = {f.name for f in dataclasses.fields(method_class.Settings)}
        profile_keys = set(profile.settings).union(*profile.category_settings.values())
        unknown = sorted(profile_keys - known) + sorted(set(self.overrides) - known)
        if unknown:
            raise HarnessError(
                f"method '{method_name}' has no setting(s) {', '.join(unknown)}; it has: {', '.join(sorted(known))}"
            )
        overrides = check_setting_types(method_name, method_class.Settings, self.overrides)
        available = adapter.categories
        categories = self.categories or available
        missing = [c for c in categories if c not in available]
        if missing:
            raise HarnessError(
                f"unknown category '{missing[0]}' for data set '{self.dataset}'; valid: {', '.join(available)}"
            )
        metrics = self.metrics or DEFAULT_METRICS
        bad = [m for m in metrics if m not in METRICS]
        if bad:
            raise HarnessError(f"unknown metric '{bad[0]}'; known metrics: {', '.join(METRICS)}")
        if self.checkpoint and not Path(self.checkpoint).is_file():
            raise HarnessError(f"{self.checkpoint}: checkpoint file not found")
        # a checkpoint is known by its content: another file under the same name makes other jobs
        checkpoint_sha256 = content_hashes([self.checkpoint])[Path(self.checkpoint)] if self.checkpoint else ""
        protocol = self.protocol or profile.protocol
        if protocol not in PROTOCOLS:
            raise HarnessError(f"unknown protocol '{protocol}'; choose one of {', '.join(PROTOCOLS)}")

        seeds = self.seeds or profile.seeds
        wild = [seed for seed in seeds if not SEED_RANGE[0] <= seed <= SEED_RANGE[1]]
        if wild:
            raise HarnessError(
                f"seed {wild[0]} is out of range: seeds are integers from {SEED_RANGE[0]} to {SEED_RANGE[1]}"
            )
        for what, values in (("category", categories), ("seed", seeds), ("metric", metrics)):
            twice = [v for v in dict.fromkeys(values) if list(values).count(v) > 1]
            if twice:
                raise HarnessError(
                    f"{what} '{twice[0]}' is listed twice ({','.join(map(str, values))}); list each {what} once"
                )
        fingerprints = {category: data_fingerprint(adapter, category) for category in categories}
        jobs = []
        for category in categories:
            for seed in seeds:
                settings = dataclasses.asdict(method_class.Settings(**(profile.settings_for(category) | overrides)))
                if "seed" in settings:
                    settings["seed"] = seed
                if self.checkpoint:  # the model is loaded, not trained: no epochs to claim or to tell jobs apart by
                    settings = {k: v for k, v in settings.items() if k not in method_class.training_settings}
                settings = without_optional_settings(method_class, settings)
                jobs.append(
                    Job(
                        self.dataset,
                        category,
                        method_name,
                        profile.name,
                        seed,
                        settings,
                        self.root,
                        self.checkpoint,
                        tuple(metrics),
                        data_options,
                        self.eval_every,
                        self.save_checkpoints,
                        fingerprints[category],
                        "portable" if self.portable else "native",
                        checkpoint_sha256=checkpoint_sha256,
                        execution_settings=tuple(sorted(method_class.execution_settings)),
                    )
                )
        if protocol == UNIFIED:
            jobs = unified_jobs(jobs, tuple(categories), tuple(seeds))
        resolved = ResolvedSweep(self, profile.name, method_name, tuple(categories), tuple(seeds), jobs, protocol)
        resolved.available_categories = tuple(available)
        return resolved


def choose_profile(method: str, profile: str, dataset_default: str) -> tuple[str, profiles.Profile]:
    """The method and the profile a sweep runs under: the profile given; else the data set's default profile
    when it is made for the method; else the method's own counterpart of it (Method.default_profiles); else
    none, that is the method's Settings defaults plus the flags."""
    from harness import methods

    if profile:
        chosen = profiles.get(profile)
        return method or chosen.method, chosen
    default = profiles.get(dataset_default)
    if not method or method == default.method:
        return default.method, default
    own = methods.get(method).default_profiles.get(dataset_default)
    if own:
        return method, profiles.get(own)
    return method, profiles.defaults_of(method)


def check_capabilities(name: str, method_class, sweep: Sweep) -> None:
    """Options that need a hook the method does not declare are refused before anything runs."""
    if (sweep.checkpoint or sweep.save_checkpoints) and not method_class.checkpoints:
        flag = "--checkpoint" if sweep.checkpoint else "--save-checkpoints"
        raise HarnessError(f"{flag}: method '{name}' does not save or load checkpoints (Method.checkpoints)")


def without_optional_settings(method_class, settings: dict) -> dict:
    """The settings without those a method added later that are at the value that reproduces earlier results
    (Method.optional_settings), so that job ids made before they existed stay the same."""
    optional = method_class.optional_settings
    return {k: v for k, v in settings.items() if not (k in optional and v == optional[k])}


# settings that `run` has a flag for (--epochs, ...): named in the unified protocol's refusal
FLAGGED_SETTINGS = ("epochs", "batch_size", "image_size", "backbone", "weights", "device", "precision")


def unified_jobs(jobs: list[Job], categories: tuple[str, ...], seeds: tuple[int, ...]) -> list[Job]:
    """The single-class jobs of a sweep folded into one unified job per seed: one model for every category,
    which therefore needs the same settings for all of them."""
    unified = []
    for seed in seeds:
        mine = [job for job in jobs if job.seed == seed]
        differing = [job for job in mine if job.settings != mine[0].settings]
        if differing:
            first, other = mine[0], differing[0]
            keys = sorted(
                k for k in set(first.settings) | set(other.settings) if first.settings.get(k) != other.settings.get(k)
            )
            shown = ", ".join(
                f"{k} {first.settings.get(k)} for {first.category} but {other.settings.get(k)} for {other.category}"
                for k in keys[:2]
            )
            how = " ".join(
                f"--{k.replace('_', '-')} N" if k in FLAGGED_SETTINGS else f"{k} in a sweep file's [settings]"
                for k in keys[:2]
            )
            raise HarnessError(
                f"the unified protocol trains one model for all categories, but the profile sets "
                f"{shown}; set one value for all ({how}), select categories that share it, or use "
                "--protocol single"
            )
        unified.append(
            dataclasses.replace(
                mine[0],
                category=UNIFIED,
                data_fingerprint="",
                protocol=UNIFIED,
                categories=categories,
                data_fingerprints={job.category: job.data_fingerprint for job in mine},
            )
        )
    return unified


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


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.+]+", "", text.replace(",", "+"))


def _text(value) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value))
    return str(value)


def profile_differences(overrides: dict, profile: Profile, seeds: list, protocol: str) -> list[tuple[str, str]]:
    """(name, value as text) for every setting in `overrides` whose value differs from `profile`'s (a setting
    the profile leaves at the method's default counts when given), then the seeds and the protocol when they
    differ from the profile's."""
    found = []
    for key in sorted(overrides):
        value = overrides[key]
        if key in profile.settings and _text(profile.settings[key]) == _text(value):
            continue
        found.append((key, _text(value)))
    if [int(s) for s in seeds] != [int(s) for s in profile.seeds]:
        found.append(("seeds", _text(seeds)))
    if protocol and protocol != profile.protocol:
        found.append(("protocol", protocol))
    return found


@dataclass
class ResolvedSweep:
    sweep: Sweep
    profile: str
    method: str
    categories: tuple[str, ...]
    seeds: tuple[int, ...]
    jobs: list[Job]
    protocol: str = "single"
    available_categories: tuple[str, ...] = ()  # every category of the data set (a sweep may take fewer)

    @property
    def data_fingerprints(self) -> dict[str, str]:
        """category -> fingerprint of its data, as planned."""
        found: dict[str, str] = {}
        for job in self.jobs:
            found.update(job.data_fingerprints if job.protocol == UNIFIED else {job.category: job.data_fingerprint})
        return found

    @property
    def settings(self) -> dict[str, dict]:
        """category (or "unified") -> what its jobs share beyond seed and data, and under SHARED what every
        category shares (less the settings the profile sets per category): a run folder holds one sweep's."""
        apart = ("seed", "category", "categories", "data_fingerprint", "data_fingerprints")
        per_category = set().union(*profiles.get(self.profile, self.method).category_settings.values())
        found = {}
        for job in self.jobs:
            identity = {k: v for k, v in job.identity().items() if k not in apart}
            found[job.category] = identity | {
                "settings": {k: v for k, v in identity["settings"].items() if k != "seed"}
            }
        first = next(iter(found.values()))
        found[SHARED] = first | {"settings": {k: v for k, v in first["settings"].items() if k not in per_category}}
        return found

    @property
    def record_ids(self) -> list[str]:
        """Every job folder that will hold a record, in the sweep's order."""
        return [record_id for job in self.jobs for record_id in job.record_ids]

    @property
    def name(self) -> str:
        """A stable run name that says what differs from the profile: the same sweep on the same data (by
        content) gets the same folder, so rerunning it resumes; other data make other job ids and so another
        folder. E.g. synthetic-rd-demo-epochs2-seeds0+1-3f9a1c."""
        digest = hashlib.sha256(json.dumps(sorted(j.job_id for j in self.jobs)).encode()).hexdigest()[:6]
        unified = "-unified" if self.protocol == UNIFIED else ""
        differs = [(k, v) for k, v in self.differences() if k != "protocol"]
        if self.sweep.categories and set(self.categories) != set(self.available_categories):
            differs.append(
                ("", "+".join(self.categories) if len(self.categories) <= 3 else f"{len(self.categories)}cats")
            )
        parts = "".join(f"-{_slug(key)}{_slug(value)}" for key, value in differs)[:80]
        return f"{self.sweep.dataset}-{self.method}-{self.profile}{unified}{parts}-{digest}"

    def differences(self) -> list[tuple[str, str]]:
        """What this sweep sets other than its profile: (setting, value as text), seeds and protocol included."""
        return profile_differences(
            self.sweep.overrides, profiles.get(self.profile, self.method), list(self.seeds), self.protocol
        )
