"""What `run` was asked to do: defaults, then the sweep file, then the flags given explicitly.

Everything here is checked before any job starts: conflicting flags are one clear error line.
"""

from __future__ import annotations

import importlib.util
import math
from dataclasses import dataclass, field

from harness.errors import HarnessError
from harness.sweep.backends import BACKENDS, DASK_INSTALL_HINT, Execution
from harness.sweep.plan import PROTOCOLS, Sweep
from harness.tracking import TrackingSettings, check_trackers

# Every option of `run`: its key (the flag's long name with '_', and a sweep file's key) and the kind of its value.
OPTION_KINDS: dict[str, str] = {
    "dataset": "text",
    "root": "text",
    "categories": "names",
    "method": "text",
    "profile": "text",
    "seeds": "integers",
    "metrics": "names",
    "checkpoint": "text",
    "out": "text",
    "rerun": "switch",
    "eval_every": "count",
    "save_checkpoints": "switch",
    "portable": "switch",
    "protocol": "text",
    "backend": "text",
    "jobs": "count",
    "gpus": "integers",
    "job_timeout": "seconds",
    "dask_address": "text",
    "backbone": "text",
    "weights": "text",
    "image_size": "count",
    "epochs": "count",
    "batch_size": "count",
    "device": "text",
    "precision": "text",
    "deterministic": "switch",
    "settings": "table",
    "data_options": "table",
    "track": "names",
    "tracking_uri": "text",
}
# Longest --job-timeout: a finite limit that sweep.json (strict JSON) and every backend's deadline can hold
MAX_JOB_TIMEOUT = 30 * 24 * 3600.0

# The options that are method settings (they override the profile; a sweep file may also put them in [settings])
SETTING_KEYS = ("backbone", "weights", "image_size", "epochs", "batch_size", "device", "precision", "deterministic")


@dataclass
class RunOptions:
    dataset: str = "synthetic"
    root: str | None = None
    categories: tuple[str, ...] = ()  # empty: all
    method: str = ""
    profile: str = ""
    seeds: tuple[int, ...] = ()
    metrics: tuple[str, ...] = ()
    checkpoint: str | None = None
    settings: dict = field(default_factory=dict)  # method settings set explicitly
    data_options: dict = field(default_factory=dict)
    out: str | None = None
    rerun: bool = False
    eval_every: int = 0
    save_checkpoints: bool = False
    portable: bool = False
    protocol: str = ""  # empty: the profile's ("single" for every profile but ADer's)
    backend: str = "serial"
    jobs: int | None = None
    gpus: tuple[int, ...] | None = None
    job_timeout: float | None = None
    dask_address: str | None = None
    track: tuple[str, ...] = ()  # experiment trackers: "mlflow", "tensorboard" (harness.tracking)
    tracking_uri: str | None = None  # MLflow's tracking URI (default: $MLFLOW_TRACKING_URI, else the run folder)

    def validate(self) -> None:
        """Flags that contradict each other, or need something missing, fail here (before any job starts)."""
        device = str(self.settings.get("device") or "auto")
        gpus = f"--gpus {','.join(map(str, self.gpus))}" if self.gpus else ""
        if self.protocol and self.protocol not in PROTOCOLS:
            raise HarnessError(f"unknown protocol '{self.protocol}'; choose one of {', '.join(PROTOCOLS)}")
        if self.backend not in BACKENDS:
            raise HarnessError(f"unknown backend '{self.backend}'; choose one of {', '.join(BACKENDS)}")
        if self.dask_address and self.backend != "dask":
            raise HarnessError(f"--dask-address is for --backend dask, but the backend is {self.backend}")
        if self.backend == "serial" and self.jobs is not None:
            raise HarnessError("--jobs needs --backend local or dask: the serial backend runs one job at a time")
        if self.backend == "serial" and self.gpus:
            raise HarnessError(f"{gpus} needs --backend local or dask; for one GPU in serial use --device cuda:N")
        if self.portable and (device.startswith("cuda") or self.gpus):
            raise HarnessError(
                f"--portable is a CPU mode (for the same bits across x86-64 CPUs); it conflicts with "
                f"{gpus or '--device ' + device}: drop one of them"
            )
        if self.gpus and device == "cpu":
            raise HarnessError(f"{gpus} conflicts with --device cpu; drop one of them")
        if self.gpus and device.startswith("cuda:"):
            raise HarnessError(f"{gpus} pins each job to a GPU itself; use --device auto or cuda, not {device}")
        if self.gpus and len(set(self.gpus)) != len(self.gpus):
            raise HarnessError(f"{gpus}: a GPU is listed twice")
        if self.dask_address and (self.jobs is not None or self.gpus):
            raise HarnessError(
                f"{'--jobs' if self.jobs is not None else gpus} is for a local dask cluster; the "
                "cluster at --dask-address has its own workers (give them --resources GPU=1)"
            )
        if self.job_timeout is not None and not valid_timeout(self.job_timeout):
            raise HarnessError(
                f"--job-timeout must be a positive number of seconds up to {MAX_JOB_TIMEOUT:.0f} (30 days), "
                f"got {self.job_timeout:g}"
            )
        if self.backend == "dask" and importlib.util.find_spec("distributed") is None:
            raise HarnessError(DASK_INSTALL_HINT)
        check_trackers(self.tracking())

    def sweep(self) -> Sweep:
        settings = dict(self.settings) | ({"device": "cpu"} if self.portable else {})
        return Sweep(
            dataset=self.dataset,
            categories=self.categories,
            method=self.method,
            profile=self.profile,
            seeds=self.seeds,
            overrides=settings,
            root=self.root,
            checkpoint=self.checkpoint,
            metrics=self.metrics,
            data_options=dict(self.data_options),
            eval_every=self.eval_every or 0,
            save_checkpoints=bool(self.save_checkpoints),
            portable=bool(self.portable),
            protocol=self.protocol or "",
        )

    def execution(self) -> Execution:
        return Execution(
            backend=self.backend,
            jobs=self.jobs,
            gpus=self.gpus,
            job_timeout=self.job_timeout,
            dask_address=self.dask_address,
        )

    def tracking(self) -> TrackingSettings:
        return TrackingSettings(trackers=tuple(dict.fromkeys(self.track)), uri=self.tracking_uri)

    @property
    def device(self) -> str:
        return str(self.settings.get("device") or "auto")


def valid_timeout(seconds: float) -> bool:
    return math.isfinite(seconds) and 0 < seconds <= MAX_JOB_TIMEOUT


def merge_options(from_file: dict, from_flags: dict) -> RunOptions:
    """Flags given on the command line override the file key by key; settings and data options merge."""
    merged = dict(from_file) | {k: v for k, v in from_flags.items() if k not in ("settings", "data_options")}
    for table in ("settings", "data_options"):
        merged[table] = dict(from_file.get(table, {})) | dict(from_flags.get(table, {}))
    options = RunOptions(**merged)
    options.validate()
    return options
