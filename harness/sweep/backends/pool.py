"""The local backend: jobs in spawned processes, several at a time.

On the CPU, `--jobs N` processes at a time, each with OMP_NUM_THREADS torch threads when the user set
it (as serial uses), else 1/N of the cores. With CUDA,
one job per GPU at a time, each process seeing only its GPU (CUDA_VISIBLE_DEVICES). A fresh process
per job isolates jobs completely (memory, CUDA state, crashes) and can be killed at --job-timeout;
its start-up (a few seconds) is small beside training.
"""

from __future__ import annotations

import multiprocessing
from collections import deque
from collections.abc import Iterator
from multiprocessing.connection import wait

from harness.store import RunStore
from harness.sweep.backends import Backend, Execution, cpu_threads, default_workers, gpu_slots, with_settings
from harness.sweep.backends.child import ChildJob
from harness.sweep.job import JobOutcome
from harness.sweep.plan import Job

POLL_SECONDS = 1.0


def local_backend(execution: Execution, device: str) -> ProcessBackend:
    """One slot per GPU when the jobs use CUDA (device auto on a CUDA machine, cuda, cuda:N, or --gpus),
    else `jobs` CPU slots (default: half the cores)."""
    gpus = gpu_slots(execution, device)
    if gpus:
        return ProcessBackend(list(gpus), threads=cpu_threads(len(gpus)), job_timeout=execution.job_timeout)
    jobs = execution.jobs or default_workers()
    return ProcessBackend([None] * jobs, threads=cpu_threads(jobs), job_timeout=execution.job_timeout)


class ProcessBackend(Backend):
    """Runs each job in its own spawned process, one per slot at a time; a slot is a GPU index or None (CPU)."""

    def __init__(
        self,
        slots: list[int | None],
        *,
        threads: int | None,
        job_timeout: float | None,
        echo: bool = False,
        pin_device: bool = True,
        name: str = "local",
    ) -> None:
        self.slots = slots
        self.threads = threads
        self.job_timeout = job_timeout
        self.echo = echo  # one job at a time may show its epoch bar
        self.name = name
        self.parallel = len(slots) > 1
        self.pin_device = pin_device  # False: the job keeps its own device setting (serial with a timeout)
        self._running: dict[int, ChildJob] = {}

    def describe(self) -> str:
        where = (
            f"{len(self.slots)} GPU(s) {','.join(map(str, self.slots))}, one job each"
            if self.slots[0] is not None
            else f"{len(self.slots)} process(es) at a time"
        )
        threads = f", {self.threads} torch thread(s) each" if self.threads else ""
        timeout = f", timeout {self.job_timeout:g} s" if self.job_timeout else ""
        return f"{self.name}: {where}{threads}{timeout}"

    def _start(self, context, job: Job, slot: int, store: RunStore) -> ChildJob:
        gpu = self.slots[slot]
        # A CPU slot must not pick a GPU by itself ("auto"): it was given a share of the cores instead.
        changes: dict[str, str | bool] = {"device": "cuda" if gpu is not None else "cpu"} if self.pin_device else {}
        if self.parallel:
            changes["progress"] = False
        execution = {"backend": self.name, "gpu": gpu, "process_slot": slot}
        return ChildJob(
            context,
            with_settings(job, **changes),
            str(store.log_path(job.job_id)),
            gpu=gpu,
            threads=self.threads,
            echo=self.echo or not self.parallel,
            job_timeout=self.job_timeout,
            execution=execution,
        )

    def run(self, jobs: list[Job], store: RunStore) -> Iterator[JobOutcome]:
        context = multiprocessing.get_context("spawn")
        pending = deque(jobs)
        free = deque(range(len(self.slots)))
        while pending or self._running:
            while pending and free:
                slot = free.popleft()
                self._running[slot] = self._start(context, pending.popleft(), slot, store)
            deadlines = [left for c in self._running.values() if (left := c.time_left()) is not None]
            wait(
                [w for child in self._running.values() for w in child.waitables()],
                timeout=min([POLL_SECONDS, *deadlines]),
            )
            for slot, child in list(self._running.items()):
                outcome = child.poll()
                if outcome is not None:
                    del self._running[slot]
                    free.append(slot)
                    yield outcome

    def close(self) -> None:
        running, self._running = list(self._running.values()), {}
        for child in running:
            if child.process.is_alive():
                child.process.terminate()
        for child in running:
            child.terminate()
