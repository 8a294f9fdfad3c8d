"""One job in a spawned child process: pinned to a GPU or to a share of the CPU threads, killable.

The child streams its log to the run folder (same machine) and sends its outcome, record and
prediction arrays included, back through a pipe; the parent writes the results. This module must
not import torch at the top: the child sets CUDA_VISIBLE_DEVICES and thread counts before it does.
"""

from __future__ import annotations

import os
import signal
import time
from multiprocessing.connection import Connection

from harness.sweep.backends import visible_device
from harness.sweep.job import JobOutcome
from harness.sweep.plan import Job

STARTUP_GRACE = 120.0  # seconds a job may take to start (imports, building its model) before its own time limit applies


def _die_with_parent() -> None:
    """Linux: have the kernel kill this process when the parent dies, even by SIGKILL (no orphans burning CPU)."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def child_main(
    conn: Connection,
    parent_pid: int,
    job: Job,
    log_path: str,
    gpu: int | None,
    threads: int | None,
    echo: bool,
    execution: dict,
) -> None:
    """The child's entry point: set up the process for one job, run it, send the outcome."""
    # The parent decides what an interrupt means (stop the sweep, then stop this process).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent()
    if os.getppid() != parent_pid:  # the parent died before PR_SET_PDEATHSIG took effect
        os._exit(1)
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = visible_device(
            gpu
        )  # read by CUDA when it initialises: before any CUDA call
    if threads:
        os.environ["OMP_NUM_THREADS"] = str(threads)
    import threading

    import torch
    from tqdm import tqdm

    if threads:
        torch.set_num_threads(threads)
    # tqdm's default lock is a multiprocessing semaphore, which a killed child would leak (and the resource
    # tracker would warn about); one process per job needs only a thread lock.
    tqdm.set_lock(threading.RLock())
    from harness.sweep.job import execute_job

    # The job's time limit counts from here: imports and building the model are the process's set-up.
    outcome = execute_job(
        job, log_path=log_path, echo=echo, execution=execution, ready=lambda: conn.send(("started", None))
    )
    conn.send(("outcome", outcome))
    conn.close()


class ChildJob:
    """The parent's handle on one job running in a child process."""

    def __init__(
        self,
        context,
        job: Job,
        log_path: str,
        *,
        gpu: int | None,
        threads: int | None,
        echo: bool,
        job_timeout: float | None,
        execution: dict,
    ) -> None:
        self.job = job
        self.job_timeout = job_timeout
        self.conn, sender = context.Pipe(duplex=False)
        self.process = context.Process(
            target=child_main,
            args=(sender, os.getpid(), job, log_path, gpu, threads, echo, execution),
            name=f"harness-job-{job.job_id}",
            daemon=True,
        )
        self.started = time.monotonic()
        self.process.start()
        sender.close()  # the child holds the only sending end: EOF then means it is gone
        self.deadline = self.started + job_timeout + STARTUP_GRACE if job_timeout else None

    def waitables(self) -> list:
        return [self.conn, self.process.sentinel]

    def seconds(self) -> float:
        return time.monotonic() - self.started

    def poll(self) -> JobOutcome | None:
        """The outcome when the job has ended (finished, failed, died or ran out of time), else None."""
        while self.conn.poll():
            try:
                kind, payload = self.conn.recv()
            except (EOFError, OSError):
                break
            if kind == "started" and self.job_timeout:
                self.deadline = time.monotonic() + self.job_timeout
            elif kind == "outcome":
                self.process.join(timeout=30)
                self.conn.close()
                return payload
        if not self.process.is_alive():
            self.process.join()
            self.conn.close()
            code = self.process.exitcode
            how = (
                f"was killed by signal {signal.Signals(-code).name}"
                if code is not None and code < 0
                else f"exited with code {code}"
            )
            return JobOutcome(
                self.job.job_id,
                "crashed",
                seconds=self.seconds(),
                message=f"the job's process {how} before it finished (out of memory?)",
            )
        if self.deadline is not None and time.monotonic() >= self.deadline:
            self.kill()
            return JobOutcome(
                self.job.job_id,
                "timeout",
                seconds=self.seconds(),
                message=f"timed out: still running after {self.job_timeout:g} s (--job-timeout); "
                "its process was killed",
            )
        return None

    def time_left(self) -> float | None:
        return None if self.deadline is None else max(0.0, self.deadline - time.monotonic())

    def kill(self) -> None:
        """Stop at once (SIGKILL): a job that ran out of time may be stuck where SIGTERM is not handled."""
        if self.process.is_alive():
            self.process.kill()
        self.process.join()
        self.conn.close()

    def terminate(self, grace: float = 5.0) -> None:
        """Stop politely (SIGTERM), then for sure."""
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(timeout=grace)
        self.kill()
