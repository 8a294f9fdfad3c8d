"""The dask backend: one task per job on a dask.distributed cluster.

With --dask-address, the tasks go to that cluster; otherwise to a local cluster of `jobs` single-
threaded worker processes (with GPUs: one worker per GPU, each seeing only its GPU). Workers return
the record, the prediction arrays and the job's log; this process writes them, so workers need the
harness and the data, but no shared disk with the client. When the cluster's workers declare a GPU
resource (`dask worker --resources GPU=1`), every task asks for GPU=1, so each GPU runs one job at a time.

Tasks report to the client through dask events as they go: when they begin, when the job's own work
starts (its model built: --job-timeout counts from there, as in the local backend) and every piece
of their log, so a job that is killed still leaves its log. A job past --job-timeout is cancelled and
its worker restarted (dask cannot stop a running task otherwise); the restarted worker's other tasks
are rescheduled by dask.

The workers of a local cluster ignore SIGINT: Ctrl-C reaches the whole process group, and this
process stops the sweep and then the cluster (a worker interrupted on its own prints a traceback).
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING

from harness.errors import HarnessError
from harness.store import RunStore
from harness.sweep.backends import (
    DASK_INSTALL_HINT,
    Backend,
    Execution,
    cpu_threads,
    default_workers,
    gpu_slots,
    visible_device,
    with_settings,
)
from harness.sweep.backends.child import STARTUP_GRACE
from harness.sweep.job import JobOutcome
from harness.sweep.plan import Job

if TYPE_CHECKING:
    from distributed import Client, LocalCluster

TOPIC = "harness-job"  # events {"key", "kind": "begun" | "started" | "log", "text"} from the tasks
POLL_SECONDS = 0.5
CONNECT_SECONDS = 20.0
# No dashboard; the scheduler's HTTP endpoint on a free loopback port (by default it takes 8787 and warns
# when another cluster holds it)
QUIET_SCHEDULER = {"dashboard_address": "127.0.0.1:0", "scheduler_kwargs": {"dashboard": False}}


def _distributed():
    try:
        import distributed
    except ImportError:
        raise HarnessError(DASK_INSTALL_HINT) from None
    return distributed


def check_address(address: str) -> None:
    """A scheduler address the client can parse (HOST:PORT or SCHEME://HOST:PORT), else one clear error."""
    _distributed()
    from distributed.comm.addressing import get_address_host_port, parse_address

    try:
        parse_address(address)
        host, port = get_address_host_port(address)
    except ValueError as error:
        raise HarnessError(
            f"--dask-address {address}: not a scheduler address ({error}); expected HOST:PORT or tcp://HOST:PORT"
        ) from None
    if not host or not 0 < port < 65536:
        raise HarnessError(
            f"--dask-address {address}: not a scheduler address (host '{host}', port {port}); "
            "expected HOST:PORT or tcp://HOST:PORT"
        )


def probe_scheduler(address: str, seconds: float = CONNECT_SECONDS) -> None:
    """Ask the server at `address` who it is, within `seconds`: the client's own connect waits forever on a
    server that accepts the connection and says nothing. HarnessError unless a dask scheduler answers."""
    import asyncio

    from distributed.comm.core import connect
    from distributed.security import Security

    async def identity():
        comm = await connect(address, timeout=seconds, **Security().get_connection_args("client"))
        try:
            await comm.write({"op": "identity", "reply": True})
            return await comm.read()
        finally:
            comm.abort()

    try:
        reply = asyncio.run(asyncio.wait_for(identity(), seconds))
    except TimeoutError:
        raise HarnessError(
            f"--dask-address {address}: no dask scheduler answered within {seconds:g} s (something "
            "accepted the connection but did not speak dask's protocol)"
        ) from None
    except (OSError, ValueError) as error:
        raise HarnessError(f"--dask-address {address}: cannot connect to a dask scheduler ({error})") from None
    kind = reply.get("type") if isinstance(reply, dict) else None
    if kind != "Scheduler":
        raise HarnessError(
            f"--dask-address {address}: not a dask scheduler (it answered as {kind or 'something else'}); "
            "give the scheduler's address"
        )


def dask_task(job: Job, key: str, threads: int | None, capture: bool, execution: dict) -> JobOutcome:
    """Runs on a worker: the job, its output captured into the outcome (no disk shared with the client) and
    streamed to the client as events."""
    from distributed import get_worker

    from harness.sweep.job import execute_job

    worker = get_worker()

    def event(kind: str, text: str = "") -> None:
        worker.log_event(TOPIC, {"key": key, "kind": kind, "text": text})

    event("begun", worker.address)
    if threads:  # our own local cluster: single-threaded workers with the thread count chosen for them
        import torch
        from tqdm import tqdm

        torch.set_num_threads(threads)
        tqdm.set_lock(threading.RLock())  # not a semaphore that a worker restarted at a timeout would leak
    return execute_job(
        job,
        log_path=None,
        echo=False,
        capture=capture,
        execution=execution | {"worker": worker.address, "worker_name": str(worker.name)},
        ready=lambda: event("started"),
        sink=lambda text: event("log", text),
    )


@contextlib.contextmanager
def _workers_ignore_sigint() -> Iterator[None]:
    """Worker processes started in here inherit an ignored SIGINT (Python then leaves it ignored). A Ctrl-C
    in these seconds is lost: the user presses it again once the cluster is up."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    saved = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, saved)


class _Events:
    """What the tasks reported, filled by the client's event thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.begun: dict[str, tuple[float, str]] = {}  # key -> (when the client learnt it, worker)
        self.started: dict[str, float] = {}  # key -> when the client learnt that the job's own work started
        self.logs: dict[str, list[str]] = {}

    def __call__(self, event) -> None:
        _, message = event
        now = time.monotonic()
        with self._lock:
            key, kind = message.get("key"), message.get("kind")
            if kind == "begun":
                self.begun.setdefault(key, (now, message.get("text", "")))
            elif kind == "started":
                self.started.setdefault(key, now)
            elif kind == "log":
                self.logs.setdefault(key, []).append(message.get("text", ""))

    def log(self, key: str) -> str:
        with self._lock:
            return "".join(self.logs.pop(key, []))


# Local workers log only what is fatal: a job's own failures come back as outcomes, and a worker that
# loses the scheduler while the cluster shuts down (Ctrl-C, a busy machine) is not news to the user.
QUIET_LOGS = logging.CRITICAL


def _gpu_cluster(distributed, gpus: tuple[int, ...], threads: int):
    """A local cluster with one single-threaded worker per GPU, each seeing only its GPU and offering GPU=1."""
    workers = {
        f"gpu{gpu}": {
            "cls": distributed.Nanny,
            "options": {
                "nthreads": 1,
                "resources": {"GPU": 1},
                "host": "127.0.0.1",
                "silence_logs": QUIET_LOGS,
                "env": {"CUDA_VISIBLE_DEVICES": visible_device(gpu), "OMP_NUM_THREADS": str(threads)},
            },
        }
        for gpu in gpus
    }
    scheduler = {
        "cls": distributed.Scheduler,
        "options": {"host": "127.0.0.1", "dashboard": False, "dashboard_address": QUIET_SCHEDULER["dashboard_address"]},
    }
    return distributed.SpecCluster(workers=workers, scheduler=scheduler, silence_logs=QUIET_LOGS)


class DaskBackend(Backend):
    name = "dask"
    parallel = True

    def __init__(self, execution: Execution, device: str) -> None:
        """Checks what can be checked before anything starts: the address's form, or the GPUs of a local cluster."""
        self.execution = execution
        self.device = device
        self.client: Client | None = None
        self.cluster: LocalCluster | None = None
        self.use_gpu = False
        self.threads: int | None = None
        self.gpus: tuple[int, ...] | None = None
        self._futures: dict = {}
        self._events = _Events()
        if execution.dask_address:
            check_address(execution.dask_address)
        else:
            _distributed()
            self.gpus = gpu_slots(execution, device)

    def start(self) -> None:
        distributed = _distributed()
        address = self.execution.dask_address
        if address:
            probe_scheduler(address)
            try:
                self.client = distributed.Client(address, timeout=f"{CONNECT_SECONDS:g}s")
            except (OSError, TimeoutError, ValueError) as error:
                raise HarnessError(f"--dask-address {address}: cannot connect to a dask scheduler ({error})") from None
            workers = self._dask.scheduler_info().get("workers", {})
            if not workers:
                self.close()
                raise HarnessError(f"--dask-address {address}: the cluster has no workers")
            self.use_gpu = self.device != "cpu" and any("GPU" in w.get("resources", {}) for w in workers.values())
        else:
            with _workers_ignore_sigint():
                if self.gpus:
                    self.threads = cpu_threads(len(self.gpus))
                    self.cluster = _gpu_cluster(distributed, self.gpus, self.threads)
                    self.use_gpu = True
                else:
                    workers = self.execution.jobs or default_workers()
                    self.threads = cpu_threads(workers)
                    self.cluster = distributed.LocalCluster(
                        n_workers=workers,
                        threads_per_worker=1,
                        processes=True,
                        silence_logs=QUIET_LOGS,
                        env={"OMP_NUM_THREADS": str(self.threads)},
                        **QUIET_SCHEDULER,
                    )
                self.client = distributed.Client(self.cluster)
        self._dask.subscribe_topic(TOPIC, self._events)

    @property
    def _dask(self) -> Client:
        """The client, once start() has connected it."""
        if self.client is None:
            raise HarnessError("the dask backend was used before it was started")
        return self.client

    def describe(self) -> str:
        workers = len(self.client.scheduler_info().get("workers", {})) if self.client else 0
        where = self.execution.dask_address or "a local cluster"
        threads = f", {self.threads} torch thread(s) each" if self.threads else ""
        return f"dask: {where}, {workers} worker(s){threads}" + (", GPU=1 per task" if self.use_gpu else "")

    def _submit(self, job: Job):
        changes: dict[str, bool | str] = {"progress": False}
        if self.cluster is not None:  # our own workers: pin the device like the local backend does
            changes["device"] = "cuda" if self.use_gpu else "cpu"
        key = f"harness-{job.job_id}-{uuid.uuid4().hex[:8]}"
        return self._dask.submit(
            dask_task,
            with_settings(job, **changes),
            key,
            self.threads,
            self.cluster is not None,
            {"backend": "dask", "dask_scheduler": getattr(self._dask.scheduler, "address", None)},
            key=key,
            pure=False,
            retries=0,
            resources={"GPU": 1} if self.use_gpu else None,
        )

    def _overdue(self, key: str) -> tuple[str, float] | None:
        """(worker, seconds since the job's own work started) when the job ran out of time, else None; before
        its model is built, a job gets STARTUP_GRACE seconds on top, as a local child process does."""
        events = self._events
        begun = events.begun.get(key)
        if begun is None:
            return None
        since, worker = begun
        started = events.started.get(key)
        now = time.monotonic()
        limit = self.execution.job_timeout
        if limit is None:
            return None
        if started is not None and now - started > limit:
            return worker, now - started
        if started is None and now - since > limit + STARTUP_GRACE:
            return worker, now - since
        return None

    def run(self, jobs: list[Job], store: RunStore) -> Iterator[JobOutcome]:
        distributed = _distributed()
        submitted = time.monotonic()
        self._futures = {self._submit(job): job for job in jobs}
        pending = set(self._futures)
        while pending:
            try:
                done, pending = distributed.wait(pending, timeout=POLL_SECONDS, return_when="FIRST_COMPLETED")
            except TimeoutError:
                done = set()
            for future in done:
                job = self._futures.pop(future)
                since = self._events.started.get(future.key) or self._events.begun.get(future.key, (submitted,))[0]
                yield self._outcome(future, job, time.monotonic() - since)
            if self.execution.job_timeout:
                for future in list(pending):
                    overdue = self._overdue(future.key)
                    if overdue is not None:
                        pending.discard(future)
                        job = self._futures.pop(future)
                        yield self._timeout(future, job, *overdue)

    def _outcome(self, future, job: Job, seconds: float) -> JobOutcome:
        streamed = self._events.log(future.key)
        if future.status == "finished":
            return future.result()
        error = future.exception() if future.status == "error" else None
        message = f"{type(error).__name__}: {error}" if error is not None else f"dask task {future.status}"
        trace = ""
        if error is not None:
            import traceback

            trace = "".join(traceback.format_tb(future.traceback())) if future.traceback() else ""
        status = "crashed" if type(error).__name__ == "KilledWorker" else "failed"
        return JobOutcome(
            job.job_id,
            status,
            message=message,
            traceback=trace,
            seconds=seconds,
            log=streamed + f"the job did not run to its end on the dask cluster: {message}\n",
        )

    def _timeout(self, future, job: Job, worker: str, seconds: float) -> JobOutcome:
        future.cancel()
        try:
            with _workers_ignore_sigint():  # the restarted worker ignores Ctrl-C like the others
                self._dask.restart_workers([worker], timeout=60)
            how = f"its worker {worker} was restarted"
        except Exception as error:  # no nanny, or the worker is gone already
            how = f"its worker {worker} could not be restarted ({type(error).__name__}) and may still run it"
        message = f"timed out: still running after {self.execution.job_timeout:g} s (--job-timeout); {how}"
        # what the job logged until then (from the streamed events); the scheduler adds the TIMEOUT line
        return JobOutcome(job.job_id, "timeout", message=message, seconds=seconds, log=self._events.log(future.key))

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
