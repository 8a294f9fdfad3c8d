"""TensorBoard: event files under RUN/tensorboard/, one folder (a TensorBoard run) per job, `sweep/` for the sweep.

Scalars: `loss` per epoch, `interim_test/<metric>` (--eval-every), `test/<metric>` (the reported values).
Text: the settings, tags (data fingerprint, provenance), metric definitions, status, record and log.
A job logged again (resumed, rerun) writes into the same folder and first discards what it held
(a purge from step 0), so TensorBoard shows each job once.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from harness.tracking.base import JobEntry, SweepEntry, Tracker

FOLDER = "tensorboard"
SWEEP = "sweep"
_LOG_LIMIT = 100_000  # characters of a job's log shown as text (the run folder has all of it)


def _table(values: dict[str, str]) -> str:
    return "| name | value |\n|---|---|\n" + "\n".join(f"| {k} | {v.replace('|', '/')} |" for k, v in values.items())


def _code(text: str) -> str:
    # four spaces: TensorBoard renders the text as Markdown, this keeps it verbatim
    return "\n".join("    " + line for line in text.splitlines())


def _value(text: str) -> float | str:
    """A parameter as HParams compares it: numbers as numbers (they sort and plot), the rest as text."""
    try:
        return float(text)
    except ValueError:
        return text


class TensorBoardTracker(Tracker):
    name = "tensorboard"

    def __init__(self, run_dir: Path) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self._writer = SummaryWriter
        self.root = run_dir / FOLDER

    def same_target(self, state: dict) -> bool:
        return bool(state.get("logdir")) and (self.root.parent / state["logdir"]).is_dir()

    def _open(self, name: str):
        """A writer of the folder `name`; when it holds events already, they are purged (logged again)."""
        folder = self.root / name
        again = folder.is_dir() and any(folder.glob("events.out.tfevents.*"))
        return self._writer(str(folder), purge_step=0 if again else None, flush_secs=3600)

    def start_sweep(self, sweep: SweepEntry) -> None:
        writer = self._open(SWEEP)
        try:
            writer.add_text("description", sweep.description, 0)
            writer.add_text("params", _table(sweep.params), 0)
        finally:
            writer.close()

    def log_job(self, entry: JobEntry, state: dict, save: Callable[[dict], None]) -> dict:
        logdir = f"{FOLDER}/{entry.run_id}"
        writer = self._open(entry.run_id)
        try:
            for epoch, loss in entry.losses:
                writer.add_scalar("loss", loss, epoch)
            for epoch, name, value in entry.interim:
                writer.add_scalar(f"interim_test/{name}", value, epoch)
            for name, value in entry.final.items():
                writer.add_scalar(f"test/{name}", value, entry.final_step)
            writer.add_text(
                "status", f"{entry.status}" + (f": {entry.tags['failure']}" if "failure" in entry.tags else ""), 0
            )
            if entry.final:
                self._hparams(writer, entry)
            writer.add_text("description", entry.description(), 0)
            writer.add_text("params", _table(entry.params), 0)
            writer.add_text("tags", _table(entry.tags), 0)
            for path in entry.files:
                if path.suffix == ".json":
                    writer.add_text(
                        f"artifact/{path.name}", _code(json.dumps(json.loads(path.read_text()), indent=2)), 0
                    )
                elif path.suffix == ".txt":
                    writer.add_text(f"artifact/{path.name}", _code(path.read_text(errors="replace")[-_LOG_LIMIT:]), 0)
                elif path.suffix.lower() in (".png", ".jpg"):
                    self._image(writer, f"figure/{path.stem}", path)
        finally:
            writer.close()
        return {"logdir": logdir}

    @staticmethod
    def _hparams(writer, entry: JobEntry) -> None:
        """The job's parameters and reported metrics for TensorBoard's HParams dashboard (jobs side by side)."""
        from torch.utils.tensorboard.summary import hparams

        values = {name: _value(text) for name, text in entry.params.items()}
        for summary in hparams(values, {f"test/{name}": value for name, value in entry.final.items()}):
            writer.file_writer.add_summary(summary)

    @staticmethod
    def _image(writer, tag: str, path: Path) -> None:
        import numpy as np
        from PIL import Image

        with Image.open(path) as image:
            writer.add_image(tag, np.asarray(image.convert("RGB")), 0, dataformats="HWC")

    def finish_sweep(self, status: str, files: list[Path], texts: dict[str, str]) -> None:
        writer = self._writer(str(self.root / SWEEP), flush_secs=3600)
        try:
            writer.add_text("status", status, 0)
            for name, text in texts.items():
                writer.add_text(name.rsplit(".", 1)[0], text, 0)
        finally:
            writer.close()
