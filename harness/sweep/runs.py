"""`python -m harness runs [FOLDER]`: the run folders under FOLDER (default results/runs), one line each.

Read from each folder's sweep.json (what `run` planned) and its jobs/ (what finished or failed); nothing is
trained or changed. What differs from the profile is computed as the run's folder name says it.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path

from tabulate import tabulate

from harness.errors import HarnessError
from harness.store import FAILURE, RECORD, read_json
from harness.sweep import profiles
from harness.sweep.plan import profile_differences

DEFAULT_FOLDER = Path("results") / "runs"


@dataclass
class RunSummary:
    """One run folder as `runs` lists it."""

    folder: Path
    dataset: str
    method: str
    profile: str
    differs: str  # settings, seeds and protocol that differ from the profile; "" when none
    seeds: str
    done: int  # finished records
    failed: int  # records of jobs that failed and have not finished since
    planned: int
    date: str  # when `run` last started on the folder (sweep.json written), local time

    def row(self) -> list[str]:
        return [
            self.folder.name,
            self.dataset,
            self.method,
            self.profile,
            self.differs or "–",
            self.seeds,
            f"{self.done}/{self.failed}/{self.planned}",
            self.date,
        ]


HEADERS = ["run", "dataset", "method", "profile", "differs from the profile", "seeds", "done/failed/planned", "date"]


def summarise(folder: Path) -> RunSummary:
    """A run folder's summary; HarnessError naming the file when its sweep.json cannot be used."""
    path = folder / "sweep.json"
    try:
        sweep = read_json(path)
    except OSError as error:
        raise HarnessError(f"{path}: cannot read ({error.strerror or error})") from None
    if not isinstance(sweep, dict) or not isinstance(sweep.get("sweep"), dict):
        raise HarnessError(f"{path}: not a run's sweep.json (no 'sweep' object)")
    asked = sweep["sweep"]
    records = [str(r) for r in sweep.get("records") or sweep.get("jobs") or []]
    jobs = [str(j) for j in sweep.get("jobs") or []]
    seeds = list(sweep.get("seeds") or asked.get("seeds") or [])
    profile_name = str(sweep.get("profile") or asked.get("profile") or "?")
    try:
        differs = profile_differences(
            asked.get("overrides") or {},
            profiles.get(profile_name, str(sweep.get("method") or "")),
            seeds,
            str(sweep.get("protocol") or ""),
        )
        differs_text = ", ".join(f"{key} {value}" for key, value in differs)
    except (HarnessError, ValueError, TypeError):
        differs_text = "? (profile unknown)"
    done = {r for r in records if (folder / "jobs" / r / RECORD).is_file()}
    failed_jobs = [j for j in jobs if (folder / "jobs" / j / FAILURE).is_file()]
    # a failed unified job (not itself a record) fails its records: one per category, same "-s<seed>-<digest>"
    endings = {"-" + "-".join(j.rsplit("-", 2)[1:]) for j in failed_jobs if j not in records}
    failed = {r for r in records if r not in done and (r in failed_jobs or any(r.endswith(e) for e in endings))}
    started = datetime.datetime.fromtimestamp(path.stat().st_mtime).strftime("%Y-%m-%d %H:%M")
    return RunSummary(
        folder,
        str(asked.get("dataset", "?")),
        str(sweep.get("method") or asked.get("method") or "?"),
        profile_name,
        differs_text,
        ",".join(map(str, seeds)),
        len(done),
        len(failed),
        len(records),
        started,
    )


def find_runs(folder: Path) -> list[Path]:
    """FOLDER itself when it is a run folder, else its sub-folders that are (hold a sweep.json)."""
    if not folder.is_dir():
        raise HarnessError(f"{folder}: folder not found (give the folder that holds run folders, e.g. results/runs)")
    if (folder / "sweep.json").is_file():
        return [folder]
    return sorted(p for p in folder.iterdir() if (p / "sweep.json").is_file())


def list_runs(folder: Path) -> tuple[list[RunSummary], list[str]]:
    """The summaries, oldest first, and one line per folder that could not be read."""
    summaries, problems = [], []
    for run in find_runs(folder):
        try:
            summaries.append(summarise(run))
        except HarnessError as error:
            problems.append(str(error))
    return sorted(summaries, key=lambda s: (s.date, s.folder.name)), problems


def format_runs(summaries: list[RunSummary]) -> str:
    return tabulate([s.row() for s in summaries], headers=HEADERS, tablefmt="github", disable_numparse=True)


def run_folder_name(name: str, out: str | None) -> str:
    """`run --name`: a folder name under results/runs (one path part), never beside --out (flag or sweep file)."""
    if out:
        raise HarnessError("give --name or --out, not both (--name NAME is --out results/runs/NAME)")
    if not name.strip() or name in (".", "..") or "/" in name or "\\" in name or name.startswith("-"):
        raise HarnessError(f"--name '{name}': give a folder name (no '/', not '.' or '..')")
    return name


def command_runs(folder: str | None) -> int:
    """Print the table (oldest first); a folder that cannot be read is a warning line, not a failure."""
    import sys

    summaries, problems = list_runs(Path(folder) if folder else DEFAULT_FOLDER)
    for problem in problems:
        print(f"warning: {problem}", file=sys.stderr)
    if not summaries:
        print(f"no run folders in {folder or DEFAULT_FOLDER}")
        return 0
    print(format_runs(summaries))
    return 0
