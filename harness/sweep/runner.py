"""`run` as a function: options in, a finished (or resumed) run folder out. The command line and
`harness.run` both go through `execute`, so they make the same jobs and the same records."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from harness.errors import HarnessError
from harness.store import RunStore, flatten_record
from harness.sweep.options import RunOptions
from harness.sweep.plan import ResolvedSweep

if TYPE_CHECKING:
    import pandas


@dataclass
class RunResult:
    """What a run left: its folder, the records of this sweep's jobs (in the sweep's order) and the outcome."""

    run_dir: Path
    records: list[dict]
    metrics: tuple[str, ...]
    finished: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (job id, message)
    profile: str = ""
    method: str = ""

    @property
    def ok(self) -> bool:
        return not self.failed

    @property
    def results(self) -> pandas.DataFrame:
        """One row per record, the columns of results.csv (category, seed, settings, every metric's value)."""
        import pandas

        return pandas.DataFrame([flatten_record(record) for record in self.records])


def refuse_process_local_plugins(resolved: ResolvedSweep, options: RunOptions) -> None:
    """A class registered with register_* exists in this process only: backends that run jobs in other
    processes could not find it, so they are refused before anything is written."""
    from harness import datasets, methods

    other_processes = options.backend != "serial" or options.job_timeout is not None
    if not other_processes:
        return
    for registry, name in ((methods.REGISTRY, resolved.method), (datasets.REGISTRY, resolved.sweep.dataset)):
        if registry.registered_here(name):
            how = "--backend local and dask" if options.backend != "serial" else "--job-timeout"
            raise HarnessError(
                f"{registry.what} '{name}' was registered in this process only, which {how} cannot see "
                f"(their jobs run in other processes): declare it as a '{registry.group}' entry point of an "
                "installed package, or use the serial backend without a job timeout"
            )


def profile_text(resolved: ResolvedSweep) -> str:
    from harness.sweep.profiles import DEFAULTS

    if resolved.profile == DEFAULTS:
        return f"no profile (the {resolved.method} settings' defaults and the options given)"
    return f"profile {resolved.profile}"


def execute(options: RunOptions, *, name: str | None = None, echo: Callable[[str], None] = print) -> RunResult:
    """Plan, check and run a sweep in `options.out`, else results/runs/<name>, else results/runs/<a name that
    says what differs from the profile>; raises HarnessError (one line) before writing anything when the options,
    the data's root, the method's settings or the checkpoint are wrong, and SweepInterrupted on SIGINT/SIGTERM."""
    from harness.order import ordered
    from harness.sweep.backends import make_backend
    from harness.sweep.schedule import SweepInterrupted, preflight, run_sweep

    sweep = options.sweep()
    resolved = sweep.resolve()
    refuse_process_local_plugins(resolved, options)
    backend = make_backend(options.execution(), options.device)  # checks GPUs and addresses; starts nothing yet
    # Builds the model and checks the data's root: an invalid sweep stops here, before anything is written.
    # With an existing dask cluster the data may be on its workers only: the jobs check it there.
    preflight(resolved.jobs[0], data=not options.dask_address, categories=resolved.categories)
    store = RunStore(options.out or Path("results") / "runs" / (name or resolved.name))
    with store.locked():  # one `run` per run folder at a time; another one stops here with one line
        store.prepare(
            {
                "sweep": vars(sweep) | {"categories": list(resolved.categories)},
                "profile": resolved.profile,
                "method": resolved.method,
                "seeds": list(resolved.seeds),
                "jobs": [j.job_id for j in resolved.jobs],
                "protocol": resolved.protocol,
                "records": resolved.record_ids,
                "data_fingerprints": resolved.data_fingerprints,
                "execution": vars(options.execution()),
                "settings": resolved.settings,  # a folder of another sweep's settings is refused here
            }
        )
        echo(
            f"{len(resolved.jobs)} job(s): {resolved.sweep.dataset} "
            f"[{', '.join(ordered(resolved.sweep.dataset, resolved.categories))}], "
            f"method {resolved.method}, {profile_text(resolved)}, seeds {', '.join(map(str, resolved.seeds))}; "
            f"protocol {resolved.protocol}; backend {options.backend}"
        )
        try:
            outcome = run_sweep(resolved, store, backend=backend, rerun=options.rerun, tracking=options.tracking())
        except SweepInterrupted as interrupted:
            interrupted.run_dir = store.run_dir  # where the resume command finds the finished jobs
            raise

    order = {record_id: position for position, record_id in enumerate(resolved.record_ids)}
    records = sorted((r for r in store.records() if r["job_id"] in order), key=lambda r: order[r["job_id"]])
    return RunResult(
        store.run_dir,
        records,
        tuple(resolved.jobs[0].metrics),
        [str(record.get("job_id")) for record in outcome.finished],
        list(outcome.skipped),
        list(outcome.failed),
        resolved.profile,
        resolved.method,
    )
