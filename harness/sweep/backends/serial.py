"""One job at a time in this process, its epoch bar on the terminal; with a job timeout, each job in a
child process instead, because only a process can be stopped in the middle of a job."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from harness.store import RunStore
from harness.sweep.backends import Backend
from harness.sweep.job import JobOutcome, execute_job
from harness.sweep.plan import Job

if TYPE_CHECKING:
    from harness.sweep.backends.pool import ProcessBackend


class SerialBackend(Backend):
    name = "serial"

    def __init__(self, job_timeout: float | None = None) -> None:
        self.job_timeout = job_timeout
        self._children: ProcessBackend | None = None

    def describe(self) -> str:
        return "serial" + (
            f", each job in a child process (timeout {self.job_timeout:g} s)" if self.job_timeout else ""
        )

    def run(self, jobs: list[Job], store: RunStore) -> Iterator[JobOutcome]:
        if self.job_timeout:
            from harness.sweep.backends.pool import ProcessBackend

            self._children = ProcessBackend(
                [None], threads=None, job_timeout=self.job_timeout, echo=True, pin_device=False, name="serial"
            )
            yield from self._children.run(jobs, store)
            return
        for job in jobs:
            yield execute_job(job, log_path=store.log_path(job.job_id), echo=True, execution={"backend": "serial"})

    def close(self) -> None:
        if self._children is not None:
            self._children.close()
