#!/usr/bin/env python3
"""scripts/gpu-check: one sized pass over everything in the harness that only a GPU can show.

    python scripts/gpu-check                 # on a CUDA machine: about 7 minutes (budget 465 s)
    python scripts/gpu-check --list          # the work list: every step, its expected time, limit and command
    python scripts/gpu-check --cpu-dry-run   # the same steps at tiny sizes on the CPU (plumbing only)

The work list (GPU sizes; `--list` prints it with the exact commands):

  env          versions (torch, CUDA, cuDNN, triton), the GPU, the CPU
  bench        `bench train` (teacher on the fly and from the cache) and `bench infer` for resnet18 @128
               and wide_resnet50_2 @256, batch 16, fp32 and bf16: img/s and CUDA max allocated per phase
  estimate     `bench estimate --dataset mvtec --profile paper`: the full MVTec AD paper sweep's wall time
  sweep        2 synthetic categories at the paper profile's settings, random weights, 2 epochs,
               `--backend local --gpus 0`: metrics, wall time, CUDA_VISIBLE_DEVICES in the records
  determinism  one of those jobs twice with --deterministic (identical metrics and maps required) and
               twice without (the spread is stated)
  tests        `python -m pytest -m cuda` (the CUDA-marked tests)
  compile      `bench train` and `bench infer` with --compile for both backbones (last: the costliest)

Each step runs in its own process with its own time limit; a step that fails or runs out of time is
recorded with its error and the others still run. The whole pass stops starting steps when the time
budget (--budget, default 465 s) would be overrun, so it ends within 8 minutes; a step it could not
start is recorded as not run (`--sections compile,...` reruns a part). It uses the first visible GPU;
the sweep's `--gpus 0` is physical GPU 0 (the local backend sets CUDA_VISIBLE_DEVICES itself), so with
CUDA_VISIBLE_DEVICES set to another GPU the sweep would run elsewhere: use GPU 0. Exit status: 0 all steps
passed (or were skipped by design), 1 a step failed, timed out or was not run, 2 bad usage or no CUDA
without --cpu-dry-run.

Writes results/bench/gpu-check-<device>.json and .md (--out moves them), and keeps every step's
log, bench JSON and run folder under results/bench/gpu-check-<device>/ (replaced on the next pass).
The Markdown names the device, the versions, the date and every command, so it can be committed as
docs/benchmarks/gpu-<device>.md as it is.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SECTIONS = ("env", "bench", "estimate", "sweep", "determinism", "tests", "compile")
VARIANTS = ("fp32", "bf16", "compile")
METRICS = (("image_auroc", "I-AUROC"), ("pixel_auroc", "P-AUROC"), ("au_pro", "AU-PRO"))
MARKER = ".gpu-check"  # a work folder holding it was made by this script and may be replaced
ENV_PREFIX = "GPU-CHECK-ENV "


# ---------------------------------------------------------------------------------------------------
# sizes and the work list


@dataclass(frozen=True)
class Sizes:
    mode: str  # "gpu" | "cpu-dry-run"
    device: str  # --device of the bench commands and of the determinism runs
    models: tuple[tuple[str, int], ...]  # (backbone, px) measured by bench; the GPU list, in order
    batch: int
    steps: int  # timed steps per bench measurement
    warmup: int  # untimed steps before them (torch.compile compiles here)
    threads: int | None  # torch threads of every step (bench --threads, OMP_NUM_THREADS); None: torch's choice
    run_overrides: tuple[str, ...]  # flags on top of the paper profile for the sweep and determinism jobs
    epochs: int
    categories: tuple[str, ...]
    sweep_backend: tuple[str, ...]
    estimate_overrides: tuple[str, ...]
    pytest_paths: tuple[str, ...]
    budget_s: float


GPU_SIZES = Sizes(
    mode="gpu",
    device="cuda",
    models=(("resnet18", 128), ("wide_resnet50_2", 256)),
    batch=16,
    steps=20,
    warmup=3,
    threads=None,
    run_overrides=(),
    epochs=2,
    categories=("weave", "disc"),
    sweep_backend=("--backend", "local", "--gpus", "0"),
    estimate_overrides=(),
    pytest_paths=(),
    budget_s=465,
)

DRY_SIZES = Sizes(
    mode="cpu-dry-run",
    device="cpu",
    models=(("resnet18", 64),),
    batch=4,
    steps=1,
    warmup=1,
    threads=1,
    run_overrides=("--backbone", "resnet18", "--image-size", "64"),
    epochs=1,
    categories=("weave", "disc"),
    sweep_backend=("--backend", "local", "--jobs", "2", "--device", "cpu"),
    estimate_overrides=("--backbone", "resnet18", "--image-size", "64", "--batch-size", "4", "--threads", "1"),
    pytest_paths=("tests/test_cuda.py",),
    budget_s=900,
)

# Expected seconds on one H200-class GPU (process start included: about 3 s) and the limit of each kind of
# step: estimates made without a GPU, to be corrected from the first pass's Steps table. They add up to
# about 430 s against the 465 s budget; compile comes last, so a slow compiler costs the compile figures
# only, and the summary says so (rerun them alone with --sections compile).
GPU_TIMES = {  # kind: (expected, limit)
    "env": (8, 60),
    "bench-train-resnet18": (10, 120),
    "bench-infer-resnet18": (7, 120),
    "bench-train-wide_resnet50_2": (15, 150),
    "bench-infer-wide_resnet50_2": (9, 120),
    "estimate": (18, 150),
    "sweep": (40, 300),
    "run": (12, 150),
    "compare": (1, 60),
    "tests": (60, 240),
    "compile-train-resnet18": (45, 240),
    "compile-infer-resnet18": (25, 180),
    "compile-train-wide_resnet50_2": (70, 300),
    "compile-infer-wide_resnet50_2": (35, 240),
}
DRY_LIMITS = {
    "env": 120,
    "bench": 180,
    "estimate": 180,
    "sweep": 300,
    "run": 240,
    "compare": 60,
    "tests": 300,
    "compile": 180,
}


@dataclass
class Step:
    name: str
    section: str
    kind: str  # harness (`python -m harness ARGV`) | pytest | command (ARGV as is) | probe (the environment) | compare
    argv: list[str] = field(default_factory=list)
    expect_s: float = 0.0
    limit_s: float = 60.0
    skip: str = ""  # why this step is not run in this mode
    note: str = ""  # how it differs from the GPU plan in this mode
    info: dict = field(default_factory=dict)  # what the parser needs: json file, run folder, pair, ...

    def command(self) -> str:
        if self.kind == "harness":
            return "python -m harness " + " ".join(_quote(a) for a in self.argv)
        if self.kind in ("pytest", "command"):
            return " ".join(_quote(a) for a in self.argv)
        if self.kind == "probe":
            return "python -c <environment probe>"
        return f"compare {self.info['pair'][0]} with {self.info['pair'][1]}"


def _quote(arg: str) -> str:
    return arg if re.fullmatch(r"[\w@%+=:,./-]+", arg) else "'" + arg.replace("'", "'\\''") + "'"


def _rel(path: Path) -> str:
    """A path as the commands show it: relative to the repository (their working folder) when inside it."""
    path = Path(path).resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "unknown"


def build_plan(sizes: Sizes, work: Path) -> list[Step]:
    """Every step of one pass, in the order they run (GPU sizes, or the dry run's, with skips stated)."""
    dry = sizes.mode != "gpu"

    def times(kind: str, section: str) -> tuple[float, float]:
        """(expected, limit) seconds of a step: the GPU pass's, or a dry run's generous limits."""
        return (5.0, DRY_LIMITS[section]) if dry else GPU_TIMES[kind]

    steps = [Step("env", "env", "probe", expect_s=times("env", "env")[0], limit_s=times("env", "env")[1])]

    def bench(what: str, backbone: str, px: int, variant: str, section: str, skip: str = "", note: str = "") -> Step:
        name = f"bench-{what}-{backbone}-{px}-{variant}"
        path = work / "bench" / f"{name}.json"
        argv = [
            "bench",
            what,
            "--backbone",
            backbone,
            "--image-size",
            str(px),
            "--batch-size",
            str(sizes.batch),
            "--device",
            sizes.device,
            "--steps",
            str(sizes.steps),
            "--warmup",
            str(sizes.warmup),
        ]
        argv += ["--precision", "bf16"] if variant == "bf16" else ["--precision", "fp32"]
        argv += ["--compile"] if variant == "compile" else []
        argv += ["--threads", str(sizes.threads)] if sizes.threads else []
        argv += ["--json", _rel(path)]
        expect, limit = times(f"{section}-{what}-{backbone}", section)
        return Step(
            name,
            section,
            "harness",
            argv,
            expect,
            limit,
            skip,
            note,
            {"json": str(path), "model": {"what": what, "backbone": backbone, "image_size": px, "variant": variant}},
        )

    def models():
        """(backbone, px, skip reason) of the GPU's model list at this mode's sizes."""
        for index, (backbone, px) in enumerate(GPU_SIZES.models):
            if not dry:
                yield backbone, px, ""
            elif index < len(sizes.models):
                yield sizes.models[index][0], sizes.models[index][1], ""
            else:
                yield (
                    backbone,
                    px,
                    (
                        f"CPU dry run: {sizes.models[0][0]} @{sizes.models[0][1]} stands in for every "
                        "model (the commands differ only in their sizes)"
                    ),
                )

    for backbone, px, skip in models():
        for variant in ("fp32", "bf16"):
            reason = skip or (
                "the CPU dry run times fp32 only: bf16 is a GPU-pass variant (CPU bf16: docs/speed.md)"
                if dry and variant == "bf16"
                else ""
            )
            for what in ("train", "infer"):
                steps.append(bench(what, backbone, px, variant, "bench", reason))

    estimate_json = work / "bench" / "estimate-mvtec-paper.json"
    argv = [
        "bench",
        "estimate",
        "--dataset",
        "mvtec",
        "--profile",
        "paper",
        "--device",
        sizes.device,
        "--steps",
        str(sizes.steps),
        "--warmup",
        str(sizes.warmup),
        *sizes.estimate_overrides,
        "--json",
        _rel(estimate_json),
    ]
    steps.append(
        Step(
            "estimate-mvtec-paper",
            "estimate",
            "harness",
            argv,
            *times("estimate", "estimate"),
            note="CPU dry run: resnet18 @64 rates instead of the paper's model" if dry else "",
            info={"json": str(estimate_json)},
        )
    )

    job = [
        "--dataset",
        "synthetic",
        "--profile",
        "paper",
        "--weights",
        "none",
        "--epochs",
        str(sizes.epochs),
        *sizes.run_overrides,
    ]
    sweep_dir = work / "runs" / "sweep"
    steps.append(
        Step(
            "sweep-synthetic",
            "sweep",
            "harness",
            ["run", *job, "--categories", ",".join(sizes.categories), *sizes.sweep_backend, "--out", _rel(sweep_dir)],
            *times("sweep", "sweep"),
            note="CPU dry run: --jobs 2 --device cpu instead of --gpus 0" if dry else "",
            info={"run": str(sweep_dir)},
        )
    )

    category = sizes.categories[0]
    sweep_file = work / "nondeterministic.toml"
    for label, deterministic in (("det", True), ("nondet", False)):
        names = []
        for copy in (1, 2):
            name = f"{label}-{copy}"
            out = work / "runs" / name
            if deterministic:
                argv = [
                    "run",
                    *job,
                    "--categories",
                    category,
                    "--device",
                    sizes.device,
                    "--deterministic",
                    "--out",
                    _rel(out),
                ]
            else:
                argv = ["run", "--sweep", _rel(sweep_file), "--out", _rel(out)]
            steps.append(
                Step(
                    name,
                    "determinism",
                    "harness",
                    argv,
                    *times("run", "run"),
                    info={"run": str(out), "deterministic": deterministic, "sweep_file": str(sweep_file)},
                )
            )
            names.append(name)
        steps.append(
            Step(
                f"compare-{label}",
                "determinism",
                "compare",
                [],
                *times("compare", "compare"),
                info={"pair": names, "deterministic": deterministic},
            )
        )

    pytest = [sys.executable, "-m", "pytest", "-m", "cuda", "-q", "-p", "no:cacheprovider", "-rs", *sizes.pytest_paths]
    steps.append(
        Step(
            "tests-cuda",
            "tests",
            "pytest",
            pytest,
            *times("tests", "tests"),
            note="CPU dry run: the CUDA test module only; every CUDA test skips itself" if dry else "",
            info={"display": "python -m pytest -m cuda -q -p no:cacheprovider -rs " + " ".join(sizes.pytest_paths)},
        )
    )

    for backbone, px, skip in models():
        reason = skip or (
            "the CPU dry run does not compile: compile is a GPU-pass variant (CPU compile: docs/speed.md)"
            if dry
            else ""
        )
        for what in ("train", "infer"):
            steps.append(bench(what, backbone, px, "compile", "compile", reason))
    return steps


def nondeterministic_sweep_file(sizes: Sizes) -> str:
    """The determinism job with deterministic algorithms off: the paper profile turns them on, and `run` has
    no flag to turn them off again, so these runs read a sweep file."""
    lines = [
        "# written by scripts/gpu-check: the determinism job without deterministic algorithms",
        'dataset = "synthetic"',
        f'categories = ["{sizes.categories[0]}"]',
        'profile = "paper"',
        "",
        "[settings]",
        'weights = "none"',
        f"epochs = {sizes.epochs}",
        "deterministic = false",
        f'device = "{sizes.device}"',
    ]
    overrides = dict(zip(sizes.run_overrides[::2], sizes.run_overrides[1::2], strict=True))
    for flag, value in overrides.items():
        key = flag.lstrip("-").replace("-", "_")
        lines.append(f"{key} = {value}" if value.isdigit() else f'{key} = "{value}"')
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------------
# running one step


PROBE = r"""
import importlib.metadata as metadata, json, os, platform, subprocess
import torch

def version(name):
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None

def cpu_model():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()

info = {"python": platform.python_version(), "platform": platform.platform(), "torch": torch.__version__,
        "torch_cuda": torch.version.cuda, "torchvision": version("torchvision"), "numpy": version("numpy"),
        "triton": version("triton"), "distributed": version("distributed"), "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"), "cuda_available": torch.cuda.is_available(),
        "cudnn": None, "gpus": [], "driver": None}
try:
    info["cudnn"] = torch.backends.cudnn.version()
except Exception:
    pass
if info["cuda_available"]:
    for index in range(torch.cuda.device_count()):
        p = torch.cuda.get_device_properties(index)
        info["gpus"].append({"index": index, "name": p.name, "memory_gib": round(p.total_memory / 2**30, 1),
                             "capability": f"{p.major}.{p.minor}", "multiprocessors": p.multi_processor_count})
    try:
        smi = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20)
        info["driver"] = smi.stdout.strip().splitlines()[0] if smi.returncode == 0 and smi.stdout.strip() else None
    except (OSError, subprocess.SubprocessError):
        pass
print("GPU-CHECK-ENV " + json.dumps(info), flush=True)
"""


@dataclass
class Finished:
    rc: int | None
    seconds: float
    timed_out: bool


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def launch_exec(step: Step, log_path: Path, limit_s: float) -> Finished:
    """The step in a fresh process (`python -m harness ...`, pytest, or the probe), in its own process group."""
    if step.kind == "harness":
        command = [sys.executable, "-m", "harness", *step.argv]
    elif step.kind == "probe":
        command = [sys.executable, "-c", PROBE]
    else:
        command = list(step.argv)
    start = time.monotonic()
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=ROOT, start_new_session=True
        )
        try:
            rc = process.wait(timeout=limit_s)
            return Finished(rc, time.monotonic() - start, False)
        except subprocess.TimeoutExpired:
            _kill_group(process.pid)
            process.wait()
            return Finished(None, time.monotonic() - start, True)
        except BaseException:  # Ctrl-C: take the step's processes down with us
            _kill_group(process.pid)
            process.wait()
            raise


def warm_up(threads: int | None) -> None:
    """Import what the harness commands need once, so forked steps start at once. Nothing here may touch
    CUDA: a process that initialised CUDA cannot hand it to a forked child."""
    import importlib

    sys.path.insert(0, str(ROOT))
    import torch

    if threads:
        torch.set_num_threads(threads)  # what OMP_NUM_THREADS gives a fresh process
    for name in (
        "numpy",
        "torchvision",
        "harness.cli",
        "harness.bench.command",
        "harness.bench.model_speed",
        "harness.sweep.job",
        "harness.sweep.schedule",
        "harness.report.summary",
    ):
        importlib.import_module(name)
    if torch.cuda.is_initialized():
        raise RuntimeError("CUDA was initialised while warming up; the fork launcher cannot be used")


def _forked_child(step: Step, log_path: Path) -> None:
    code = 1
    try:
        os.setsid()
        fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
        for stream in (sys.stdout, sys.stderr):
            if isinstance(stream, io.TextIOWrapper):
                stream.reconfigure(line_buffering=True)
        os.chdir(ROOT)
        if step.kind == "probe":
            exec(compile(PROBE, "<environment probe>", "exec"), {"__name__": "__probe__"})
            code = 0
        else:
            from harness.cli import main

            code = main(list(step.argv))
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    except BaseException:
        traceback.print_exc()
        code = 1
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code if isinstance(code, int) else 1)


def launch_fork(step: Step, log_path: Path, limit_s: float) -> Finished:
    """A harness step in a child forked from this (warmed-up) process: the same `harness.cli.main(ARGV)` as
    `python -m harness ARGV`, without starting Python and importing torch again. Other steps are exec'd."""
    if step.kind not in ("harness", "probe"):
        return launch_exec(step, log_path, limit_s)
    sys.stdout.flush()
    sys.stderr.flush()
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:
        _forked_child(step, log_path)  # never returns
    try:
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                return Finished(os.waitstatus_to_exitcode(status), time.monotonic() - start, False)
            if time.monotonic() - start > limit_s:
                _kill_group(pid)
                os.waitpid(pid, 0)
                return Finished(None, time.monotonic() - start, True)
            time.sleep(0.05)
    except BaseException:
        _kill_group(pid)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
        raise


LAUNCHERS = {"exec": launch_exec, "fork": launch_fork}


def _tail(path: Path, lines: int = 15) -> list[str]:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return []
    # progress bars rewrite their line with carriage returns: keep what each line finally showed
    shown = (line.rsplit("\r", 1)[-1].rstrip() for line in text.split("\n"))
    return [line for line in shown if line.strip()][-lines:]


def error_line(log_path: Path) -> str:
    """The line that says what went wrong: the harness's one-line error, an exception, or the last line."""
    lines = _tail(log_path, 60)
    for line in reversed(lines):
        if line.startswith("error: "):
            return line
    for line in reversed(lines):
        if re.match(r"^[\w.]+(Error|Exception|Interrupt|Diverged|Exit)\b.*:", line) or line.startswith("FAILED "):
            return line
    return lines[-1] if lines else "no output"


# ---------------------------------------------------------------------------------------------------
# reading what a step left


class UsageError(Exception):
    """Bad input: one line on standard error, exit status 2."""


class StepFailed(Exception):
    """The step ran but its result is not acceptable (a non-finite loss, differing deterministic runs, ...)."""


def parse_bench(step: Step) -> dict:
    data = json.loads(Path(step.info["json"]).read_text())
    setup = data.get("setup", {})
    out = {"setup": setup, "json": _rel(Path(step.info["json"]))}
    if "train" in data:
        train = data["train"]
        if not all(train[k]["finite_losses"] for k in ("uncached", "cached")):
            raise StepFailed("a training loss was not finite: some steps skipped the backward pass, timing invalid")
        for key in ("uncached", "cached"):
            r = train[key]
            out[key] = {
                "images_per_s": r["images_per_s"],
                "step_s": r["step_s"],
                "cuda_max_allocated_mib": r.get("cuda_max_allocated_mib"),
                "peak_rss_mib": r.get("peak_rss_mib"),
            }
        out["cached"] |= {
            "teacher_images_per_s": train["cached"].get("teacher_images_per_s"),
            "cache_mib": train["cached"].get("cache_mib"),
        }
        out["cache_speedup"] = train["cache_speedup"]
    if "infer" in data:
        r = data["infer"]
        out["infer"] = {
            "images_per_s": r["images_per_s"],
            "cuda_max_allocated_mib": r.get("cuda_max_allocated_mib"),
            "peak_rss_mib": r.get("peak_rss_mib"),
        }
    if "estimate" in data:
        e = data["estimate"]
        out["estimate"] = {
            key: e[key]
            for key in (
                "dataset",
                "profile",
                "counts",
                "epochs",
                "seeds",
                "n_train",
                "n_test",
                "teacher_cache",
                "totals",
                "not_included",
                "teacher_cache_plan",
            )
        }
        out["estimate"]["categories"] = len(e["categories"])
        out["settings"] = {
            k: data["settings"][k]
            for k in ("backbone", "image_size", "batch_size", "epochs", "deterministic", "tf32", "precision")
        }
    expected = step.info.get("variant")
    if expected == "compile" and setup.get("device", "").startswith("cuda") and not setup.get("compiled"):
        raise StepFailed("--compile was asked for but the model was not compiled")
    return out


def parse_run(step: Step) -> dict:
    run = Path(step.info["run"])
    jobs = []
    for path in sorted((run / "jobs").glob("*/record.json")):
        record = json.loads(path.read_text())
        provenance = record.get("provenance", {})
        jobs.append(
            {
                "category": record["category"],
                "job_id": record["job_id"],
                "metrics": {name: record["metrics"][name]["value"] for name, _ in METRICS if name in record["metrics"]},
                "timings": record.get("timings", {}),
                "memory": record.get("memory", {}),
                "losses": [entry["loss"] for entry in record.get("history", [])],
                "device": provenance.get("device"),
                "device_name": provenance.get("device_name"),
                "backend": provenance.get("backend"),
                "gpu": provenance.get("gpu"),
                "cuda_visible_devices": provenance.get("cuda_visible_devices"),
                "deterministic": record.get("method_info", {}).get("deterministic"),
                "cuda_numerics": record.get("method_info", {}).get("cuda_numerics"),
                "teacher_cache": record.get("method_info", {}).get("teacher_cache"),
            }
        )
    failed = sorted(p.parent.name for p in (run / "jobs").glob("*/failure.json")) if (run / "jobs").is_dir() else []
    if not jobs:
        raise StepFailed(f"no finished job in {_rel(run)}")
    return {"run": _rel(run), "jobs": jobs, "failed_jobs": failed}


def compare_runs(a: dict, b: dict, deterministic: bool) -> dict:
    """Two runs of the same job: metrics, loss curves, scores and maps, bit for bit and by how much."""
    import numpy as np

    (job_a,), (job_b,) = a["jobs"], b["jobs"]
    if job_a["job_id"] != job_b["job_id"]:
        raise StepFailed(f"not the same job: {job_a['job_id']} and {job_b['job_id']}")
    arrays = []
    for run, job in ((a, job_a), (b, job_b)):
        with np.load(ROOT / run["run"] / "jobs" / job["job_id"] / "predictions.npz") as data:
            arrays.append((data["scores"], data["maps"]))
    (scores_a, maps_a), (scores_b, maps_b) = arrays
    metric_diff = {
        name: abs(job_a["metrics"][name] - job_b["metrics"][name])
        for name in job_a["metrics"]
        if job_a["metrics"][name] is not None and job_b["metrics"].get(name) is not None
    }
    result = {
        "job_id": job_a["job_id"],
        "deterministic": deterministic,
        "metrics": {"a": job_a["metrics"], "b": job_b["metrics"]},
        "metrics_identical": job_a["metrics"] == job_b["metrics"],
        "losses_identical": job_a["losses"] == job_b["losses"],
        "maps_identical": bool(np.array_equal(maps_a, maps_b)),
        "scores_identical": bool(np.array_equal(scores_a, scores_b)),
        "max_abs_metric_diff": metric_diff,
        "max_abs_loss_diff": max(
            (abs(x - y) for x, y in zip(job_a["losses"], job_b["losses"], strict=False)), default=0.0
        ),
        "max_abs_map_diff": float(np.max(np.abs(maps_a.astype(np.float64) - maps_b))),
        "max_abs_score_diff": float(np.max(np.abs(scores_a.astype(np.float64) - scores_b))),
    }
    result["identical"] = all(
        result[k] for k in ("metrics_identical", "losses_identical", "maps_identical", "scores_identical")
    )
    if deterministic and not result["identical"]:
        raise StepFailed(
            f"deterministic runs differ: max |d map| {result['max_abs_map_diff']:.3g}, "
            + ", ".join(f"{n} {d:.3g}" for n, d in metric_diff.items()),
            result,
        )
    return result


def parse_pytest(log_path: Path) -> dict:
    text = log_path.read_text(errors="replace") if log_path.exists() else ""
    counts = {}
    summary = [line for line in text.splitlines() if re.search(r"\d+ (passed|failed|skipped|error|deselected)", line)]
    if summary:
        for number, word in re.findall(
            r"(\d+) (passed|failed|skipped|errors?|deselected|xfailed|xpassed)", summary[-1]
        ):
            counts[word.rstrip("s") if word.startswith("error") else word] = int(number)
    failed = [line for line in text.splitlines() if line.startswith(("FAILED ", "ERROR "))]
    skipped: dict[str, int] = {}  # reason -> tests
    for line in text.splitlines():
        found = re.match(r"^SKIPPED \[(\d+)\] [^:]+:\d+: (.*)$", line)
        if found:
            skipped[found.group(2)] = skipped.get(found.group(2), 0) + int(found.group(1))
    return {"counts": counts, "failed": failed, "skip_reasons": skipped}


def parse_env(log_path: Path) -> dict:
    for line in reversed(_tail(log_path, 200)):
        if line.startswith(ENV_PREFIX):
            return json.loads(line[len(ENV_PREFIX) :])
    raise StepFailed("the environment probe printed no result")


# ---------------------------------------------------------------------------------------------------
# the pass


def run_plan(
    steps: list[Step],
    *,
    launcher: str,
    budget_s: float,
    logs: Path,
    sizes: Sizes,
    on_step=lambda result: None,
    echo=print,
) -> list[dict]:
    """Run the steps in order, each within its limit and what is left of the budget; never raises for a step."""
    launch = LAUNCHERS[launcher]
    deadline = time.monotonic() + budget_s
    results: dict[str, dict] = {}
    for number, step in enumerate(steps, start=1):
        result = {
            "name": step.name,
            "section": step.section,
            "command": step.info.get("display") or step.command(),
            "expect_s": step.expect_s,
            "limit_s": step.limit_s,
            "note": step.note,
        }
        if "model" in step.info:
            result["model"] = step.info["model"]
        results[step.name] = result
        left = deadline - time.monotonic()
        if step.skip:
            result |= {"status": "skipped", "reason": step.skip}
        elif left < step.expect_s or left < 1:
            result |= {
                "status": "not-run",
                "error": f"not started: {max(left, 0):.0f} s of the {budget_s:.0f} s budget "
                f"left, the step needs about {step.expect_s:.0f} s",
            }
        elif step.kind == "compare":
            started = time.monotonic()
            pair = [results.get(name, {}) for name in step.info["pair"]]
            bad = [p["name"] for p in pair if p.get("status") != "ok"]
            if bad:
                result |= {"status": "failed", "error": f"cannot compare: {', '.join(bad)} did not finish"}
            else:
                try:
                    result |= {
                        "status": "ok",
                        "data": compare_runs(pair[0]["data"], pair[1]["data"], step.info["deterministic"]),
                    }
                except StepFailed as error:
                    result |= {
                        "status": "failed",
                        "error": str(error.args[0]),
                        **({"data": error.args[1]} if len(error.args) > 1 else {}),
                    }
                except Exception as error:  # a broken predictions file, ...
                    result |= {"status": "failed", "error": f"{type(error).__name__}: {error}"}
            result["seconds"] = round(time.monotonic() - started, 2)
        else:
            limit = min(step.limit_s, left)
            log_path = logs / f"{step.name}.log"
            echo(f"[{number}/{len(steps)}] {step.name}: {result['command']}")
            if step.kind == "harness" and step.argv[0] == "run" and "--sweep" in step.argv:
                path = Path(step.info["sweep_file"])
                if not path.exists():
                    path.write_text(nondeterministic_sweep_file(sizes))
            finished = launch(step, log_path, limit)
            result |= {
                "seconds": round(finished.seconds, 2),
                "rc": finished.rc,
                "log": _rel(log_path),
                "limit_used_s": round(limit, 1),
            }
            if finished.timed_out:
                why = "the time budget ran out" if limit < step.limit_s else "its limit"
                result |= {
                    "status": "timeout",
                    "error": f"killed after {finished.seconds:.0f} s ({why}, {limit:.0f} s)",
                }
            elif step.kind == "pytest":
                parsed = parse_pytest(log_path)
                result["data"] = parsed
                counts = parsed["counts"]
                if finished.rc != 0:
                    result |= {
                        "status": "failed",
                        "error": (
                            f"pytest exit {finished.rc}: "
                            + (", ".join(f"{n} {w}" for w, n in counts.items()) or error_line(log_path))
                        ),
                    }
                elif sizes.mode == "gpu" and not counts.get("passed"):
                    result |= {
                        "status": "failed",
                        "error": "no CUDA test passed (all skipped: is CUDA usable in pytest?)",
                    }
                else:
                    result["status"] = "ok"
            elif finished.rc != 0:
                result |= {"status": "failed", "error": f"exit {finished.rc}: {error_line(log_path)}"}
            else:
                try:
                    if step.kind == "probe":
                        data = parse_env(log_path)
                    elif step.kind == "command":
                        data = None
                    elif step.argv[0] == "bench":
                        data = parse_bench(step)
                    else:
                        data = parse_run(step)
                    result |= {"status": "ok", "data": data}
                except StepFailed as error:
                    result |= {"status": "failed", "error": str(error.args[0])}
                except Exception as error:
                    result |= {"status": "failed", "error": f"cannot read its output: {type(error).__name__}: {error}"}
            if result["status"] != "ok":
                result["log_tail"] = _tail(log_path)
        shown = f"{result['status']}" + (f" ({result['seconds']:.1f} s)" if "seconds" in result else "")
        detail = result.get("error") or result.get("reason") or ""
        echo(f"    {step.name}: {shown}" + (f": {detail}" if detail else ""))
        on_step(result)
    return list(results.values())


FAILED = ("failed", "timeout", "not-run")


def exit_status(results: list[dict]) -> int:
    return 1 if any(r["status"] in FAILED for r in results) else 0


# ---------------------------------------------------------------------------------------------------
# the summary


def summarize(results: list[dict]) -> dict:
    """The headline figures, gathered from the step results (pure: testable without running anything)."""
    by_name = {r["name"]: r for r in results}
    pairs: dict[tuple, dict] = {}  # (backbone, px, variant) -> {"train": result, "infer": result}
    for r in results:
        if "model" in r:
            m = r["model"]
            pairs.setdefault((m["backbone"], m["image_size"], m["variant"]), {})[m["what"]] = r
    models = list(dict.fromkeys(key[:2] for key in pairs))
    throughput = []
    for backbone, px, variant in sorted(pairs, key=lambda k: (models.index(k[:2]), VARIANTS.index(k[2]))):
        pair = pairs[(backbone, px, variant)]
        train, infer = pair.get("train", {}), pair.get("infer", {})
        row = {
            "backbone": backbone,
            "image_size": px,
            "variant": variant,
            "train_status": train.get("status"),
            "infer_status": infer.get("status"),
            "train_reason": train.get("reason") or train.get("error"),
            "infer_reason": infer.get("reason") or infer.get("error"),
        }
        if train.get("status") == "ok":
            d = train["data"]
            row |= {
                "train_images_per_s": d["uncached"]["images_per_s"],
                "train_cached_images_per_s": d["cached"]["images_per_s"],
                "cache_speedup": d["cache_speedup"],
                "teacher_images_per_s": d["cached"]["teacher_images_per_s"],
                "train_cuda_mib": d["uncached"]["cuda_max_allocated_mib"],
                "train_cached_cuda_mib": d["cached"]["cuda_max_allocated_mib"],
                "train_rss_mib": d["uncached"]["peak_rss_mib"],
                "train_cached_rss_mib": d["cached"]["peak_rss_mib"],
                "device": d["setup"].get("device"),
                "precision": d["setup"].get("precision"),
                "compiled": d["setup"].get("compiled"),
            }
        if infer.get("status") == "ok":
            d = infer["data"]
            row |= {
                "infer_images_per_s": d["infer"]["images_per_s"],
                "infer_cuda_mib": d["infer"]["cuda_max_allocated_mib"],
                "infer_rss_mib": d["infer"]["peak_rss_mib"],
            }
        throughput.append(row)
    for row in throughput:  # speed-ups against the same model in eager fp32
        base = next(
            (
                b
                for b in throughput
                if (b["backbone"], b["image_size"], b["variant"]) == (row["backbone"], row["image_size"], "fp32")
            ),
            None,
        )
        if base is None or row["variant"] == "fp32":
            continue
        for key in ("train", "train_cached", "infer"):
            if row.get(f"{key}_images_per_s") and base.get(f"{key}_images_per_s"):
                row[f"{key}_speedup"] = row[f"{key}_images_per_s"] / base[f"{key}_images_per_s"]

    def status(name: str) -> dict:
        r = by_name.get(name, {})
        return {"status": r.get("status", "not-run"), **({"error": r["error"]} if r.get("error") else {})}

    summary: dict[str, Any] = {"throughput": throughput}
    sweep = by_name.get("sweep-synthetic", {})
    summary["sweep"] = status("sweep-synthetic") | (
        {
            "seconds": sweep["seconds"],
            "jobs": {job["category"]: job["metrics"] for job in sweep["data"]["jobs"]},
            "cuda_max_allocated_mib": {
                job["category"]: job["memory"].get("cuda_max_allocated_mib") for job in sweep["data"]["jobs"]
            },
        }
        if sweep.get("status") == "ok"
        else {}
    )
    summary["determinism"] = {}
    for label in ("det", "nondet"):
        d = by_name.get(f"compare-{label}", {}).get("data") or {}
        summary["determinism"][label] = status(f"compare-{label}") | {
            key: d[key] for key in ("identical", "max_abs_metric_diff", "max_abs_map_diff") if key in d
        }
    estimate = by_name.get("estimate-mvtec-paper", {})
    summary["estimate"] = status("estimate-mvtec-paper") | (
        {"total_h": estimate["data"]["estimate"]["totals"]["total_s"] / 3600} if estimate.get("status") == "ok" else {}
    )
    tests = by_name.get("tests-cuda", {})
    summary["tests"] = status("tests-cuda") | ({"counts": tests["data"]["counts"]} if tests.get("data") else {})
    return summary


def _num(value, digits=1, unit="") -> str:
    if value is None:
        return "—"
    return f"{value:,.{digits}f}{unit}"


def _duration(seconds) -> str:
    if seconds is None:
        return "—"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _speedup(row: dict, key: str) -> str:
    if row["variant"] == "fp32":
        return "1 (reference)"
    return _num(row.get(f"{key}_speedup"), 2, "x")


def _memory(row: dict, key: str) -> str:
    cuda, rss = row.get(f"{key}_cuda_mib"), row.get(f"{key}_rss_mib")
    if cuda is not None:
        return f"{cuda:,.0f}"
    return f"RSS {rss:,.0f}" if rss is not None else "—"


def render_markdown(report: dict) -> str:
    env, sizes, summary = report.get("environment") or {}, report["sizes"], summarize(report["steps"])
    gpu = (env.get("gpus") or [None])[0]
    dry = report["mode"] != "gpu"
    device = gpu["name"] if gpu else f"CPU: {env.get('cpu_model', platform.processor() or 'unknown')}"
    title = f"# GPU check: {device}" if not dry else f"# GPU check, CPU dry run ({device})"
    out = [title, ""]
    failed = [r for r in report["steps"] if r["status"] in FAILED]
    verdict = (
        "all steps passed"
        if not failed
        else f"{len(failed)} step(s) did not pass: " + ", ".join(r["name"] for r in failed)
    )
    if dry:
        out += [
            "A CPU dry run: the same steps as on a GPU at tiny sizes (resnet18 @64, 1 timed step, 1 epoch), to "
            "check the script's plumbing. Its figures measure nothing of interest; steps that need CUDA are "
            "skipped with the reason.",
            "",
        ]
    gpu_text = (
        f"{gpu['name']}, {gpu['memory_gib']} GiB, compute capability {gpu['capability']}, "
        f"{gpu['multiprocessors']} SMs" + (f", driver {env['driver']}" if env.get("driver") else "")
        if gpu
        else "none (CUDA not available)"
    )
    cudnn = env.get("cudnn")
    out += [
        "| | |",
        "|---|---|",
        f"| date | {report['created']} (UTC), {report['seconds']:.0f} s in all, budget {report['budget_s']:.0f} s |",
        f"| result | exit status {report['exit_status']}: {verdict} |",
        f"| GPU | {gpu_text}"
        + (f" (CUDA_VISIBLE_DEVICES={env['cuda_visible_devices']})" if env.get("cuda_visible_devices") else "")
        + " |",
        f"| CPU | {env.get('cpu_model', '—')}, {env.get('cpu_count', '—')} logical CPUs |",
        f"| software | Python {env.get('python', '—')}, torch {env.get('torch', '—')} "
        f"(CUDA {env.get('torch_cuda') or '—'}, cuDNN {cudnn if cudnn else '—'}), "
        f"torchvision {env.get('torchvision') or '—'}, triton {env.get('triton') or '—'}, "
        f"numpy {env.get('numpy') or '—'}, dask.distributed {env.get('distributed') or '—'} |",
        f"| platform | {env.get('platform', '—')} |",
        f"| code | rd-harness at commit {report.get('git_commit') or 'unknown'} |",
        f"| command | `{report['command']}` |",
        "",
    ]

    out += [
        "## Throughput",
        "",
        f"`bench train` and `bench infer`: random images and random teacher weights (the speed does not depend on "
        f"them), batch {sizes['batch']}, {sizes['steps']} timed step(s) after {sizes['warmup']} warm-up step(s) "
        "(torch.compile compiles during the warm-up), fp32 without TF32, deterministic algorithms off (cuDNN "
        "autotuning on). Training is measured with the teacher run in every step and from cached teacher "
        "features; inference includes the anomaly map and the Gaussian blur. Speed-ups are against the same "
        "model in eager fp32; peak memory is CUDA max allocated per phase (RSS on the CPU).",
        "",
        "| model | variant | train img/s (teacher on the fly) | train img/s (cached teacher) | teacher-cache speed-up "
        "| inference img/s | train speed-up | inference speed-up | peak MiB: train / train cached / inference |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for row in summary["throughput"]:
        model = f"{row['backbone']} @{row['image_size']}"
        variant = {"fp32": "fp32", "bf16": "bf16 autocast", "compile": "fp32 + torch.compile"}[row["variant"]]
        if row["train_status"] != "ok" and row["infer_status"] != "ok":
            why = (
                row["train_reason"]
                if row["train_status"] == row["infer_status"]
                else (f"train: {row['train_reason']}; infer: {row['infer_reason']}")
            )
            out.append(f"| {model} | {variant} | {row['train_status']}: {why} | | | | | | |")
            continue
        out.append(
            f"| {model} | {variant} | {_num(row.get('train_images_per_s'))} | "
            f"{_num(row.get('train_cached_images_per_s'))} | {_num(row.get('cache_speedup'), 2, 'x')} | "
            f"{_num(row.get('infer_images_per_s'))} | {_speedup(row, 'train')} | {_speedup(row, 'infer')} | "
            f"{_memory(row, 'train')} / {_memory(row, 'train_cached')} / {_memory(row, 'infer')} |"
        )
    out.append("")

    steps = {r["name"]: r for r in report["steps"]}
    out += _estimate_section(steps.get("estimate-mvtec-paper", {}))
    out += _sweep_section(steps.get("sweep-synthetic", {}))
    out += _determinism_section({label: steps.get(f"compare-{label}", {}) for label in ("det", "nondet")})
    if report.get("nondeterministic_sweep_file"):
        out += [
            "The runs without deterministic algorithms read this sweep file:",
            "",
            "```toml",
            report["nondeterministic_sweep_file"].rstrip(),
            "```",
            "",
        ]
    out += _tests_section(steps.get("tests-cuda", {}))

    out += [
        "## Steps",
        "",
        "Each step ran in its own process with its own time limit (seconds); commands run in the repository folder.",
        "",
        "| step | status | seconds | limit | command |",
        "|---|---|--:|--:|---|",
    ]
    for r in report["steps"]:
        seconds = _num(r.get("seconds"), 1) if "seconds" in r else ""
        out.append(f"| {r['name']} | {r['status']} | {seconds} | {r['limit_s']:.0f} | `{r['command']}` |")
    out.append("")
    notes = [r for r in report["steps"] if r.get("reason") or r.get("error") or r.get("note")]
    if notes:
        out += ["Skipped, failed and adapted steps:", ""]
        for r in notes:
            text = r.get("error") or r.get("reason") or ""
            if r.get("note"):
                text = f"{text}; {r['note']}" if text else r["note"]
            log = f" (log: `{r['log']}`)" if r.get("log") and r["status"] in FAILED else ""
            out.append(f"- **{r['name']}** ({r['status']}): {text}{log}")
        out.append("")
    return "\n".join(out)


def _estimate_section(step: dict) -> list[str]:
    out = ["## MVTec AD paper sweep, estimated", ""]
    if step.get("status") != "ok":
        return out + [
            f"Not available: {step.get('status', 'not run')}: {step.get('error') or step.get('reason') or ''}",
            "",
        ]
    d = step["data"]
    e, s = d["estimate"], d["settings"]
    t = e["totals"]
    out += [
        f"`bench estimate --dataset mvtec --profile paper`: {e['categories']} categories ({e['counts']}: "
        f"{e['n_train']:,} training and {e['n_test']:,} test images) x {e['seeds']} seed(s), {s['backbone']} "
        f"@{s['image_size']}, batch {s['batch_size']}, {e['epochs']} epochs, "
        f"deterministic {str(s['deterministic']).lower()}, "
        f"teacher cache {'on' if e['teacher_cache'] else 'off'} ({e['teacher_cache_plan']['reason']}), at the rates "
        f"measured in that step "
        f"(training {_num(d['cached' if e['teacher_cache'] else 'uncached']['images_per_s'])} img/s, "
        f"inference {_num(d['infer']['images_per_s'])} img/s).",
        "",
        "| part | time |",
        "|---|--:|",
        f"| training | {_duration(t['train_s'])} |",
    ]
    if t.get("cache_s"):
        out.append(f"| teacher cache | {_duration(t['cache_s'])} |")
    out += [f"| inference | {_duration(t['infer_s'])} |", f"| **total** | **{_duration(t['total_s'])}** |", ""]
    if e["not_included"]:
        out += [f"Not included: {', '.join(e['not_included'])} (and the metrics).", ""]
    return out


def _sweep_section(step: dict) -> list[str]:
    out = ["## Sweep: synthetic data, paper settings, random teacher", ""]
    if step.get("status") != "ok":
        return out + [
            f"Not available: {step.get('status', 'not run')}: {step.get('error') or step.get('reason') or ''}",
            "",
        ]
    d = step["data"]
    out += [
        f"`{step['command']}`: wall time {step['seconds']:.1f} s for {len(d['jobs'])} job(s), process starts and "
        "data generation included. Random teacher weights: the metrics check the pipeline and are not comparable "
        "to published numbers.",
        "",
        "| category | "
        + " | ".join(label for _, label in METRICS)
        + " | fit s | predict s | peak CUDA MiB | peak RSS MiB | device | CUDA_VISIBLE_DEVICES | backend |",
        "|---|" + "--:|" * (len(METRICS) + 4) + "---|---|---|",
    ]
    for job in d["jobs"]:
        values = " | ".join(_num(job["metrics"].get(name), 4) for name, _ in METRICS)
        out.append(
            f"| {job['category']} | {values} | {_num(job['timings'].get('fit'), 1)} | "
            f"{_num(job['timings'].get('predict'), 1)} | {_num(job['memory'].get('cuda_max_allocated_mib'), 0)} | "
            f"{_num(job['memory'].get('peak_rss_mib'), 0)} | {job['device']} | {job['cuda_visible_devices'] or '—'} | "
            f"{job['backend']} |"
        )
    if d["failed_jobs"]:
        out.append(f"\nFailed jobs: {', '.join(d['failed_jobs'])}")
    return out + [""]


def _determinism_section(pairs: dict) -> list[str]:
    out = [
        "## Determinism",
        "",
        "The sweep's first job run twice with `--deterministic` (the paper profile's cuDNN settings: deterministic "
        "algorithms, no autotuning) and twice without (a sweep file setting `deterministic = false`), each in a "
        "fresh process. Deterministic runs must agree bit for bit (metrics, loss curve, scores, maps).",
        "",
        "| runs | identical | "
        + " | ".join(f"max abs diff {label}" for _, label in METRICS)
        + " | max abs diff loss | max abs diff map |",
        "|---|---|" + "--:|" * (len(METRICS) + 2),
    ]
    for label, title in (("det", "deterministic"), ("nondet", "not deterministic")):
        step = pairs.get(label) or {}
        d = step.get("data")
        if not d:
            out.append(
                f"| {title} | {step.get('status', 'not run')}: {step.get('error') or step.get('reason') or ''} |"
                + " |" * (len(METRICS) + 2)
            )
            continue
        diffs = " | ".join(_sci(d["max_abs_metric_diff"].get(name)) for name, _ in METRICS)
        out.append(
            f"| {title} | {'yes' if d['identical'] else 'no'} | {diffs} | {_sci(d['max_abs_loss_diff'])} | "
            f"{_sci(d['max_abs_map_diff'])} |"
        )
    return out + [""]


def _sci(value) -> str:
    if value is None:
        return "—"
    return "0" if value == 0 else f"{value:.2e}"


def _tests_section(step: dict) -> list[str]:
    out = ["## CUDA tests", ""]
    if step.get("status") in (None, "skipped", "not-run") or "data" not in step:
        return out + [f"Not run: {step.get('error') or step.get('reason') or step.get('status', '')}", ""]
    d = step["data"]
    counts = ", ".join(f"{n} {w}" for w, n in d["counts"].items()) or "no summary line"
    out += [f"`{step['command']}`: {counts} ({step['status']}, {step.get('seconds', 0):.0f} s).", ""]
    for line in d["failed"]:
        out.append(f"- {line}")
    if d["skip_reasons"]:
        out += ["Skipped:", ""] + [f"- {n} test(s): {reason}" for reason, n in d["skip_reasons"].items()]
    return out + [""]


# ---------------------------------------------------------------------------------------------------
# command line


def git_commit() -> str | None:
    try:
        head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def prepare_work(work: Path) -> None:
    """An empty work folder: a previous pass's folder is replaced, anything else is left alone."""
    if work.exists():
        if not (work / MARKER).exists() and any(work.iterdir()):
            raise UsageError(f"{work} exists and was not made by gpu-check; move it or choose another --out")
        shutil.rmtree(work)
    (work / "logs").mkdir(parents=True)
    (work / "bench").mkdir()
    (work / "runs").mkdir()
    (work / MARKER).write_text("made by scripts/gpu-check; replaced by its next pass\n")


def write_report(report: dict, out: Path, stem: str) -> tuple[Path, Path]:
    json_path, md_path = out / f"{stem}.json", out / f"{stem}.md"
    for path, text in (
        (json_path, json.dumps(report, indent=2, default=str) + "\n"),
        (md_path, render_markdown(report) + "\n"),
    ):
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text)
        tmp.replace(path)
    return json_path, md_path


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="scripts/gpu-check",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n\n".join(__doc__.split("\n\n")[1:]),
    )
    parser.add_argument(
        "--cpu-dry-run",
        action="store_true",
        help="run the same steps at tiny sizes on the CPU, skipping what needs CUDA (plumbing check)",
    )
    parser.add_argument("--list", action="store_true", help="print the work list (steps, expected s, limits, commands)")
    parser.add_argument(
        "--sections",
        help=f"comma-separated subset of {','.join(SECTIONS)} (default: all); "
        "the summary is then named gpu-check-<device>-<sections>",
    )
    parser.add_argument("--budget", type=float, help="seconds for the whole pass (default 465; 900 in the dry run)")
    parser.add_argument(
        "--launcher",
        choices=sorted(LAUNCHERS),
        help="exec: each harness step in a fresh `python -m harness` process (default on a GPU); "
        "fork: forked from this process after importing torch once (default in the dry run)",
    )
    parser.add_argument("--out", help="folder of the summary and the work folder (default results/bench)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    try:
        return check(parse_args(argv), argv if argv is not None else sys.argv[1:])
    except UsageError as error:
        print(f"gpu-check: {error}", file=sys.stderr)
        return 2


def check(args: argparse.Namespace, given: list[str]) -> int:
    sizes = DRY_SIZES if args.cpu_dry_run else GPU_SIZES
    budget = args.budget if args.budget else sizes.budget_s
    launcher = args.launcher or ("fork" if args.cpu_dry_run else "exec")
    sections = SECTIONS
    if args.sections:
        sections = tuple(s.strip() for s in args.sections.split(",") if s.strip())
        unknown = [s for s in sections if s not in SECTIONS]
        if unknown or not sections:
            raise UsageError(f"--sections {args.sections}: choose from {', '.join(SECTIONS)}")
    if budget <= 0:
        raise UsageError(f"--budget {args.budget:g}: expected a positive number of seconds")
    out = Path(args.out).resolve() if args.out else ROOT / "results" / "bench"
    os.environ["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    )
    os.environ["PYTHONUNBUFFERED"] = "1"
    if sizes.threads:
        # one torch thread in every step: on a small shared CPU, OpenMP threads spin-wait on busy cores
        os.environ["OMP_NUM_THREADS"] = str(sizes.threads)

    if args.list:
        steps = build_plan(sizes, out / "gpu-check-<device>")
        total = sum(s.expect_s for s in steps if not s.skip)
        print(f"gpu-check work list ({sizes.mode}; expected {total:.0f} s in all, budget {budget:.0f} s):")
        for s in steps:
            state = f"skipped: {s.skip}" if s.skip else f"~{s.expect_s:.0f} s, limit {s.limit_s:.0f} s"
            print(f"  {s.name:<42} {s.section:<12} {state}\n      {s.info.get('display') or s.command()}")
        return 0

    started = time.monotonic()
    created = datetime.now(UTC).strftime("%Y-%m-%d %H:%M")
    out.mkdir(parents=True, exist_ok=True)
    if launcher == "fork":
        warm_up(sizes.threads)

    # the environment first: it names the device (and so the files), and a GPU pass needs CUDA
    with tempfile.TemporaryDirectory() as scratch:
        env_step = build_plan(sizes, Path(scratch))[0]
        [env_result] = run_plan([env_step], launcher=launcher, budget_s=budget, logs=Path(scratch), sizes=sizes)
        env_log = Path(scratch) / "env.log"
        env_text = env_log.read_text(errors="replace") if env_log.exists() else ""
    env = env_result.get("data") or {}
    if env_result["status"] != "ok":
        raise UsageError(f"the environment probe failed: {env_result.get('error')}")
    if sizes.mode == "gpu" and not env.get("cuda_available"):
        raise UsageError(
            f"CUDA is not available (torch {env.get('torch')}, built for CUDA {env.get('torch_cuda')}); "
            "run it on a GPU machine, or check the plumbing with --cpu-dry-run"
        )
    slug = _slug(env["gpus"][0]["name"]) if sizes.mode == "gpu" else "cpu-dry-run"
    stem = f"gpu-check-{slug}" + (f"-{'-'.join(sections)}" if args.sections else "")
    work = out / stem
    prepare_work(work)
    (work / "logs" / "env.log").write_text(env_text)
    env_result["log"] = _rel(work / "logs" / "env.log")

    steps = build_plan(sizes, work)
    for step in steps:
        if step.section not in sections and not step.skip:
            step.skip = f"not selected (--sections {args.sections})"
    report: dict[str, Any] = {
        "schema": 1,
        "tool": "scripts/gpu-check",
        "mode": sizes.mode,
        "created": created,
        "command": " ".join(["scripts/gpu-check", *(_quote(a) for a in given)]),
        "launcher": launcher,
        "budget_s": budget,
        "sizes": asdict(sizes),
        "git_commit": git_commit(),
        "environment": env,
        "work": _rel(work),
        "steps": [env_result],
        "seconds": 0.0,
        "exit_status": None,
        "nondeterministic_sweep_file": nondeterministic_sweep_file(sizes) if "determinism" in sections else None,
    }

    def save(result: dict | None = None) -> None:
        if result is not None:
            report["steps"].append(result)
        report["summary"] = summarize(report["steps"])
        report["seconds"] = round(time.monotonic() - started, 1)
        report["exit_status"] = exit_status(report["steps"])
        write_report(report, out, stem)

    save()
    interrupted = False
    try:
        run_plan(
            steps[1:],
            launcher=launcher,
            budget_s=budget - (time.monotonic() - started),
            logs=work / "logs",
            sizes=sizes,
            on_step=save,
        )
    except KeyboardInterrupt:
        interrupted = True
    done = {r["name"] for r in report["steps"]}
    for step in steps[1:]:
        if step.name not in done:
            report["steps"].append(
                {
                    "name": step.name,
                    "section": step.section,
                    "command": step.command(),
                    "expect_s": step.expect_s,
                    "limit_s": step.limit_s,
                    "note": step.note,
                    "status": "not-run",
                    "error": "interrupted (Ctrl-C)",
                }
            )
    save()
    json_path, md_path = write_report(report, out, stem)
    print("\n" + render_markdown(report))
    print(f"\nsummary: {_rel(md_path)} and {_rel(json_path)}; logs and run folders: {_rel(work)}")
    return 130 if interrupted else report["exit_status"]


if __name__ == "__main__":
    sys.exit(main())
