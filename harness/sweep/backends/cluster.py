"""The dask backend: one task per job on a dask.distributed cluster.

With --dask-address, the tasks go to that cluster; otherwise to a local cluster of `jobs` single-
threaded worker processes (with GPUs: one worker per GPU, each seeing only its GPU). Workers return
the record, the prediction arrays and the job's log; this process writes them, so workers need the
harness and the data, but no shared disk with the client. When the cluster's workers declare a GPU
resource (`dask worker --resources GPU=1`), every task asks for GPU=1, so each GPU runs one job at a time.

A job past --job-timeout is cancelled and its worker restarted (dask cannot stop a running task
otherwise); the restarted worker's other tasks are rescheduled by dask.
"""

from __future__ import annotations

import time
import uuid
from typing import Iterator

from harness.errors import HarnessError
from harness.store import RunStore
from harness.sweep.backends import (DASK_INSTALL_HINT, Backend, Execution, cpu_threads, default_workers, gpu_slots,
                                    with_settings)
from harness.sweep.job import JobOutcome
from harness.sweep.plan import Job

STARTED_TOPIC = "harness-job-started"
POLL_SECONDS = 0.5
CONNECT_TIMEOUT = "20s"
# No dashboard; the scheduler's HTTP endpoint on a free loopback port (by default it takes 8787 and warns
# when another cluster holds it)
QUIET_SCHEDULER = {"dashboard_address": "127.0.0.1:0", "scheduler_kwargs": {"dashboard": False}}


def _distributed():
    try:
        import distributed
    except ImportError:
        raise HarnessError(DASK_INSTALL_HINT) from None
    return distributed


def dask_task(job: Job, threads: int | None, capture: bool, execution: dict) -> JobOutcome:
    """Runs on a worker: the job, its output captured into the outcome (no disk shared with the client)."""
    from distributed import get_worker

    from harness.sweep.job import execute_job

    worker = get_worker()
    worker.log_event(STARTED_TOPIC, {"job_id": job.job_id, "worker": worker.address})
    if threads:  # our own local cluster: single-threaded workers, each with its share of the cores
        import threading

        import torch
        from tqdm import tqdm

        torch.set_num_threads(threads)
        tqdm.set_lock(threading.RLock())  # not a semaphore that a worker restarted at a timeout would leak
    return execute_job(job, log_path=None, echo=False, capture=capture,
                       execution=execution | {"worker": worker.address, "worker_name": str(worker.name)})


def _gpu_cluster(distributed, gpus: tuple[int, ...], threads: int):
    """A local cluster with one single-threaded worker per GPU, each seeing only its GPU and offering GPU=1."""
    workers = {
        f"gpu{gpu}": {"cls": distributed.Nanny, "options": {
            "nthreads": 1, "resources": {"GPU": 1}, "host": "127.0.0.1", "silence_logs": 40,
            "env": {"CUDA_VISIBLE_DEVICES": str(gpu), "OMP_NUM_THREADS": str(threads)}}}
        for gpu in gpus
    }
    scheduler = {"cls": distributed.Scheduler, "options": {"host": "127.0.0.1", "dashboard": False,
                                                           "dashboard_address": QUIET_SCHEDULER["dashboard_address"]}}
    return distributed.SpecCluster(workers=workers, scheduler=scheduler, silence_logs=40)


class DaskBackend(Backend):
    name = "dask"
    parallel = True

    def __init__(self, execution: Execution, device: str) -> None:
        """Checks the GPUs of a local cluster before anything starts."""
        self.execution = execution
        self.device = device
        self.client = None
        self.cluster = None
        self.use_gpu = False
        self.threads: int | None = None
        self._futures: dict = {}
        self.gpus = None if execution.dask_address else gpu_slots(execution, device)

    def start(self) -> None:
        distributed = _distributed()
        address = self.execution.dask_address
        if address:
            try:
                self.client = distributed.Client(address, timeout=CONNECT_TIMEOUT)
            except (OSError, TimeoutError) as error:
                raise HarnessError(f"--dask-address {address}: cannot connect to a dask scheduler ({error})") from None
            workers = self.client.scheduler_info().get("workers", {})
            if not workers:
                self.close()
                raise HarnessError(f"--dask-address {address}: the cluster has no workers")
            self.use_gpu = self.device != "cpu" and any("GPU" in w.get("resources", {}) for w in workers.values())
            return
        if self.gpus:
            self.threads = cpu_threads(len(self.gpus))
            self.cluster = _gpu_cluster(distributed, self.gpus, self.threads)
            self.use_gpu = True
        else:
            workers = self.execution.jobs or default_workers()
            self.threads = cpu_threads(workers)
            self.cluster = distributed.LocalCluster(
                n_workers=workers, threads_per_worker=1, processes=True, silence_logs=40,
                env={"OMP_NUM_THREADS": str(self.threads)}, **QUIET_SCHEDULER)
        self.client = distributed.Client(self.cluster)

    def describe(self) -> str:
        workers = len(self.client.scheduler_info().get("workers", {})) if self.client else 0
        where = self.execution.dask_address or "a local cluster"
        return f"dask: {where}, {workers} worker(s)" + (", GPU=1 per task" if self.use_gpu else "")

    def _submit(self, job: Job):
        changes = {"progress": False}
        if self.cluster is not None:  # our own workers: pin the device like the local backend does
            changes["device"] = "cuda" if self.use_gpu else "cpu"
        key = f"harness-{job.job_id}-{uuid.uuid4().hex[:8]}"
        return self.client.submit(
            dask_task, with_settings(job, **changes), self.threads, self.cluster is not None,
            {"backend": "dask", "dask_scheduler": self.client.scheduler.address},
            key=key, pure=False, retries=0, resources={"GPU": 1} if self.use_gpu else None)

    def run(self, jobs: list[Job], store: RunStore) -> Iterator[JobOutcome]:
        distributed = _distributed()
        submitted = time.monotonic()
        self._futures = {self._submit(job): job for job in jobs}
        started: dict[str, tuple[float, str]] = {}  # job id -> (when the client learnt it started, worker)
        pending = set(self._futures)
        while pending:
            try:
                done, pending = distributed.wait(pending, timeout=POLL_SECONDS, return_when="FIRST_COMPLETED")
            except TimeoutError:
                done = set()
            for future in done:
                job = self._futures.pop(future)
                yield self._outcome(future, job, time.monotonic() - started.get(job.job_id, (submitted,))[0])
            if self.execution.job_timeout:
                for _, event in self.client.get_events(STARTED_TOPIC):
                    started.setdefault(event["job_id"], (time.monotonic(), event["worker"]))
                for future in list(pending):
                    job = self._futures[future]
                    since, worker = started.get(job.job_id, (None, None))
                    if since is not None and time.monotonic() - since > self.execution.job_timeout:
                        pending.discard(future)
                        del self._futures[future]
                        yield self._timeout(future, job, worker, time.monotonic() - since)

    def _outcome(self, future, job: Job, seconds: float) -> JobOutcome:
        if future.status == "finished":
            return future.result()
        error = future.exception() if future.status == "error" else None
        message = f"{type(error).__name__}: {error}" if error is not None else f"dask task {future.status}"
        trace = ""
        if error is not None:
            import traceback

            trace = "".join(traceback.format_tb(future.traceback())) if future.traceback() else ""
        status = "crashed" if type(error).__name__ == "KilledWorker" else "failed"
        return JobOutcome(job.job_id, status, message=message, traceback=trace, seconds=seconds,
                          log=f"the job did not run to its end on the dask cluster: {message}\n")

    def _timeout(self, future, job: Job, worker: str, seconds: float) -> JobOutcome:
        future.cancel()
        try:
            self.client.restart_workers([worker], timeout=60)
            how = f"its worker {worker} was restarted"
        except Exception as error:  # no nanny, or the worker is gone already
            how = f"its worker {worker} could not be restarted ({type(error).__name__}) and may still run it"
        message = f"timed out: still running after {self.execution.job_timeout:g} s (--job-timeout); {how}"
        return JobOutcome(job.job_id, "timeout", message=message, seconds=seconds, log=message + "\n")

    def close(self) -> None:
        if self.client is not None:
            if self._futures:
                self.client.cancel(list(self._futures))
                self._futures = {}
            self.client.close()
            self.client = None
        if self.cluster is not None:
            self.cluster.close()
            self.cluster = None
