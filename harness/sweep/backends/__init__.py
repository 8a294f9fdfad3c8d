"""Backends run jobs and hand back their outcomes as they finish; the scheduler writes them to the store.

  serial  one job at a time in this process (or, with a job timeout, in one child process per job)
  local   a pool of spawned processes: `jobs` at a time on the CPU, or one job per GPU, each pinned to it
  dask    tasks on a dask.distributed cluster (an existing one, or a local one); workers need no shared
          disk: they return records and prediction arrays, and this process writes them

Backends are imported on first use, so dask is needed only when the dask backend is chosen.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from dataclasses import dataclass

from harness.errors import HarnessError
from harness.store import RunStore
from harness.sweep.job import JobOutcome
from harness.sweep.plan import Job

BACKENDS = ("serial", "local", "dask")
DASK_INSTALL_HINT = 'the dask backend needs dask.distributed; install it with: pip install -e ".[dask]"'


@dataclass(frozen=True)
class Execution:
    """How to run a sweep's jobs (none of it changes results, so none of it is in a job id)."""

    backend: str = "serial"
    jobs: int | None = None  # local: processes at a time on the CPU; dask: workers of a local cluster
    gpus: tuple[int, ...] | None = None  # CUDA devices, one job per device at a time
    job_timeout: float | None = None  # seconds; the job is killed and marked failed
    dask_address: str | None = None  # scheduler address of an existing dask.distributed cluster


class Backend:
    """Runs jobs; `run` yields one JobOutcome per job, in the order they finish."""

    name = ""
    parallel = False  # several jobs at once: their epoch bars would interleave, so they are turned off

    def start(self) -> None:
        """Acquire what the backend needs (processes, a cluster); a HarnessError here stops the sweep
        before any job starts."""

    def run(self, jobs: list[Job], store: RunStore) -> Iterator[JobOutcome]:
        raise NotImplementedError

    def close(self) -> None:
        """Stop whatever still runs (called after the last job and when the sweep is interrupted)."""

    def describe(self) -> str:
        return self.name


def visible_device(index: int) -> str:
    """What CUDA_VISIBLE_DEVICES must say for a process to see only GPU `index` as this process numbers them:
    through this process's own CUDA_VISIBLE_DEVICES when it has one (`--gpus 0` with CUDA_VISIBLE_DEVICES=3,5
    is physical GPU 3), else the index itself."""
    visible = [part.strip() for part in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if part.strip()]
    if not visible:
        return str(index)
    if index >= len(visible):
        raise HarnessError(
            f"--gpus {index}: this process sees only {len(visible)} GPU(s) "
            f"(CUDA_VISIBLE_DEVICES={os.environ['CUDA_VISIBLE_DEVICES']})"
        )
    return visible[index]


def with_settings(job: Job, **settings) -> Job:
    """The job with execution-only settings changed (device, progress): the same job id. Only the settings the
    method declares execution-only are set; a method without a `device` setting is not told one."""
    declared = {k: v for k, v in settings.items() if k in job.execution_settings and k in job.settings}
    return dataclasses.replace(job, settings=job.settings | declared)


def user_threads() -> int | None:
    """The torch thread count the user chose with OMP_NUM_THREADS (torch reads it too), or None."""
    text = os.environ.get("OMP_NUM_THREADS", "").strip()
    return int(text) if text.isdigit() and int(text) > 0 else None


def cpu_threads(parallel_jobs: int) -> int:
    """Torch threads per job: the user's OMP_NUM_THREADS when set (then every backend computes like serial,
    whose floating-point sums depend on the thread count), else a share of the cores so that
    `parallel_jobs` jobs together use them once, not N times over."""
    return user_threads() or max(1, (os.cpu_count() or 1) // max(1, parallel_jobs))


def default_workers() -> int:
    """CPU jobs at a time when --jobs is not given: half the cores."""
    return max(1, (os.cpu_count() or 1) // 2)


def available_gpus() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def check_gpus(gpus: tuple[int, ...]) -> None:
    """Every requested GPU exists on this machine, else one clear error before any job starts."""
    count = available_gpus()
    text = ",".join(map(str, gpus))
    if count == 0:
        raise HarnessError(f"--gpus {text}: CUDA is not available on this machine; drop --gpus to run on the CPU")
    missing = [g for g in gpus if g >= count]
    if missing:
        raise HarnessError(f"--gpus {text}: GPU {missing[0]} does not exist; this machine has {count} (0-{count - 1})")


def gpu_slots(execution: Execution, device: str) -> tuple[int, ...] | None:
    """The GPUs that processes or workers started here run jobs on, one job per GPU at a time (checked to
    exist), or None for the CPU: --gpus, else the device's GPU (cuda:N), else every GPU (auto, cuda).
    --jobs counts CPU processes, so it conflicts with GPUs, given or found."""
    gpus = execution.gpus
    if gpus is None and device.startswith("cuda:"):
        gpus = (int(device[5:]),)
    elif gpus is None and device in ("auto", "cuda"):
        gpus = tuple(range(available_gpus())) or None
        if gpus is None and device == "cuda":
            raise HarnessError("device 'cuda' requested but CUDA is not available; use --device auto or cpu")
    if gpus and execution.jobs is not None:
        if execution.gpus:
            raise HarnessError(
                f"--jobs conflicts with --gpus {','.join(map(str, gpus))}: with GPUs, one job runs on "
                "each GPU at a time"
            )
        raise HarnessError(
            "--jobs sets CPU processes, but these jobs run on CUDA, one per GPU: choose the GPUs "
            "with --gpus, or run on the CPU with --device cpu --jobs N"
        )
    if gpus:
        check_gpus(gpus)
    return gpus


def make_backend(execution: Execution, device: str = "auto") -> Backend:
    """The backend for `execution`; `device` is the sweep's device setting (auto, cpu, cuda, cuda:N)."""
    if execution.backend == "serial":
        from harness.sweep.backends.serial import SerialBackend

        return SerialBackend(execution.job_timeout)
    if execution.backend == "local":
        from harness.sweep.backends.pool import local_backend

        return local_backend(execution, device)
    if execution.backend == "dask":
        from harness.sweep.backends.cluster import DaskBackend

        return DaskBackend(execution, device)
    raise HarnessError(f"unknown backend '{execution.backend}'; choose one of {', '.join(BACKENDS)}")


__all__ = [
    "BACKENDS",
    "Backend",
    "Execution",
    "JobOutcome",
    "make_backend",
    "with_settings",
    "cpu_threads",
    "default_workers",
    "gpu_slots",
]
