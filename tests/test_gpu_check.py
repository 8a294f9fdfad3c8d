"""scripts/gpu_check.py (and its launcher scripts/gpu-check): the CPU dry run end to end, the GPU work list,
and how failures are recorded."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from harness.cli import build_parser
from harness.sweep.sweepfile import read_sweep_file

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "gpu_check.py"
LAUNCHER = ROOT / "scripts" / "gpu-check"  # the command the docs name


def load_script():
    loader = importlib.machinery.SourceFileLoader("gpu_check", str(SCRIPT))
    spec = importlib.util.spec_from_loader("gpu_check", loader)
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_check"] = module  # dataclasses look their module up
    loader.exec_module(module)
    return module


gc = load_script()


def script_env() -> dict:
    return os.environ | {"PYTHONPATH": str(ROOT), "HARNESS_CACHE": os.environ["HARNESS_CACHE"]}


@pytest.mark.slow  # about a minute on 2 shared cores, more under load
def test_cpu_dry_run_end_to_end(tmp_path):
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--cpu-dry-run", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        env=script_env(),
        timeout=600,
    )
    seconds = time.monotonic() - started
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    report = json.loads((tmp_path / "gpu-check-cpu-dry-run.json").read_text())
    markdown = (tmp_path / "gpu-check-cpu-dry-run.md").read_text()
    steps = {r["name"]: r for r in report["steps"]}
    assert list(steps) == ["env"] + [s.name for s in gc.build_plan(gc.DRY_SIZES, tmp_path)[1:]]
    assert report["mode"] == "cpu-dry-run" and report["exit_status"] == 0 and report["launcher"] == "fork"
    assert report["environment"]["torch"] == torch.__version__ and report["seconds"] <= seconds

    ran = {name for name, r in steps.items() if r["status"] == "ok"}
    skipped = {name: r["reason"] for name, r in steps.items() if r["status"] == "skipped"}
    assert set(steps) == ran | set(skipped)
    assert {
        "bench-train-resnet18-64-fp32",
        "bench-infer-resnet18-64-fp32",
        "estimate-mvtec-paper",
        "sweep-synthetic",
        "det-1",
        "det-2",
        "compare-det",
        "nondet-1",
        "nondet-2",
        "compare-nondet",
        "tests-cuda",
    } <= ran
    assert "GPU-pass variant" in skipped["bench-train-resnet18-64-bf16"]
    assert "GPU-pass variant" in skipped["bench-infer-resnet18-64-compile"]
    assert "stands in" in skipped["bench-train-wide_resnet50_2-256-fp32"]

    [row] = [r for r in report["summary"]["throughput"] if r["variant"] == "fp32" and r["train_status"] == "ok"]
    assert row["train_images_per_s"] > 0 and row["train_cached_images_per_s"] > 0 and row["infer_images_per_s"] > 0
    assert row["cache_speedup"] == pytest.approx(row["train_cached_images_per_s"] / row["train_images_per_s"])
    assert row["train_rss_mib"] > 0 and row["train_cuda_mib"] is None and row["device"] == "cpu"

    sweep = steps["sweep-synthetic"]["data"]["jobs"]
    assert sorted(job["category"] for job in sweep) == ["disc", "weave"]
    assert all(0 <= v <= 1 for job in sweep for v in job["metrics"].values()) and {j["backend"] for j in sweep} == {
        "local"
    }
    det, nondet = steps["compare-det"]["data"], steps["compare-nondet"]["data"]
    assert det["identical"] and det["deterministic"] and not nondet["deterministic"]
    assert det["job_id"] == next(j["job_id"] for j in sweep if j["category"] == "weave")  # the sweep's job, again
    assert nondet["job_id"] != det["job_id"]  # `deterministic` is part of a job's identity
    assert steps["estimate-mvtec-paper"]["data"]["estimate"]["totals"]["total_s"] > 0
    counts = steps["tests-cuda"]["data"]["counts"]
    assert counts.get("skipped", 0) >= 10 and "passed" not in counts and "failed" not in counts

    for text in (
        "# GPU check, CPU dry run",
        "| software | Python",
        "cuDNN",
        "## Throughput",
        "teacher-cache speed-up",
        "## MVTec AD paper sweep, estimated",
        "## Sweep: synthetic data",
        "## Determinism",
        "deterministic = false",
        "## CUDA tests",
        "needs a CUDA GPU",
        "## Steps",
        "`python -m harness bench train --backbone resnet18",
        "--backend local --jobs 2 --device cpu",
        "bf16 is a GPU-pass variant",
        "exit status 0",
    ):
        assert text in markdown, text
    print(f"dry run: {seconds:.0f} s")


def test_gpu_work_list_is_sized_and_every_command_parses(tmp_path):
    steps = gc.build_plan(gc.GPU_SIZES, tmp_path / "work")
    names = [s.name for s in steps]
    assert len(names) == len(set(names)) and not any(s.skip for s in steps)
    assert {s.section for s in steps} == set(gc.SECTIONS)
    assert [s.section for s in steps][-4:] == ["compile"] * 4  # the costliest last: a slow compiler costs only them
    expected = sum(s.expect_s for s in steps)
    assert expected <= gc.GPU_SIZES.budget_s <= 8 * 60 - 15, expected  # sized to end within 8 minutes
    assert all(s.limit_s >= 2 * s.expect_s for s in steps)
    parser = build_parser()
    for step in steps:
        if step.kind == "harness":
            parser.parse_args(step.argv)  # SystemExit on a flag harness does not know

    bench = [s for s in steps if s.section in ("bench", "compile")]
    measured = {
        (
            s.info["model"]["backbone"],
            s.info["model"]["image_size"],
            s.info["model"]["variant"],
            s.info["model"]["what"],
        )
        for s in bench
    }
    assert measured == {
        (b, px, v, w)
        for b, px in (("resnet18", 128), ("wide_resnet50_2", 256))
        for v in ("fp32", "bf16", "compile")
        for w in ("train", "infer")
    }
    for s in bench:
        argv = " ".join(s.argv)
        assert "--batch-size 16 --device cuda" in argv and argv.endswith(f"--json {gc._rel(Path(s.info['json']))}")
        assert ("--compile" in s.argv) == (s.info["model"]["variant"] == "compile")
    by_name = {s.name: s for s in steps}
    assert by_name["estimate-mvtec-paper"].argv[:6] == ["bench", "estimate", "--dataset", "mvtec", "--profile", "paper"]
    sweep = " ".join(by_name["sweep-synthetic"].argv)
    assert "--profile paper --weights none" in sweep and "--categories weave,disc --backend local --gpus 0" in sweep
    assert by_name["det-1"].argv[:-1] == by_name["det-2"].argv[:-1] and "--deterministic" in by_name["det-1"].argv
    assert by_name["tests-cuda"].argv[1:5] == ["-m", "pytest", "-m", "cuda"]

    sweep_file = tmp_path / "nondeterministic.toml"
    sweep_file.write_text(gc.nondeterministic_sweep_file(gc.GPU_SIZES))
    options = read_sweep_file(sweep_file)
    assert options["profile"] == "paper" and options["categories"] == ("weave",)
    assert options["settings"] == {
        "weights": "none",
        "epochs": gc.GPU_SIZES.epochs,
        "deterministic": False,
        "device": "cuda",
    }
    dry = gc.build_plan(gc.DRY_SIZES, tmp_path / "work")
    assert [s.section for s in dry] == [s.section for s in steps]  # the same steps, smaller


def test_list_prints_the_work_list_without_running_anything(tmp_path):
    result = subprocess.run(
        [sys.executable, str(LAUNCHER), "--list", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        env=script_env(),
        timeout=60,
    )
    assert result.returncode == 0 and "budget 465 s" in result.stdout and "--gpus 0" in result.stdout
    assert not any(tmp_path.iterdir())


def command(name: str, code: str, limit: float = 30, expect: float = 0):
    return gc.Step(name, "tests", "command", [sys.executable, "-c", code], expect_s=expect, limit_s=limit)


def test_a_failing_or_hanging_step_is_recorded_and_the_others_still_run(tmp_path):
    steps = [
        command("first", "print('fine')"),
        command(
            "broken", "import sys; print('working'); print('error: the disk is on fire', file=sys.stderr); sys.exit(3)"
        ),
        command("hanging", "import time; print('waiting', flush=True); time.sleep(60)", limit=1),
        command("crashing", "raise ValueError('bad value')"),
        command("last", "print('still runs')"),
    ]
    started = time.monotonic()
    results = gc.run_plan(
        steps, launcher="exec", budget_s=120, logs=tmp_path, sizes=gc.DRY_SIZES, echo=lambda line: None
    )
    assert time.monotonic() - started < 30
    status = {r["name"]: r for r in results}
    assert [r["status"] for r in results] == ["ok", "failed", "timeout", "failed", "ok"]
    assert status["broken"]["error"] == "exit 3: error: the disk is on fire" and status["broken"]["rc"] == 3
    assert (
        status["hanging"]["error"].startswith("killed after 1 s (its limit")
        and "waiting" in status["hanging"]["log_tail"]
    )
    assert status["crashing"]["error"] == "exit 1: ValueError: bad value"
    assert gc.exit_status(results) == 1 and gc.exit_status([status["first"], status["last"]]) == 0

    report = {
        "mode": "cpu-dry-run",
        "created": "2026-01-01 00:00",
        "seconds": 3.0,
        "budget_s": 120,
        "exit_status": 1,
        "command": "scripts/gpu-check",
        "git_commit": "abc",
        "environment": {},
        "steps": results,
        "sizes": {"batch": 4, "steps": 1, "warmup": 1},
    }
    markdown = gc.render_markdown(report)
    assert "3 step(s) did not pass: broken, hanging, crashing" in markdown
    assert "| broken | failed |" in markdown and "- **broken** (failed): exit 3: error: the disk is on fire" in markdown
    paths = gc.write_report(report, tmp_path, "gpu-check-test")
    assert (
        json.loads(paths[0].read_text())["steps"][1]["status"] == "failed" and paths[1].read_text() == markdown + "\n"
    )


def test_steps_that_do_not_fit_the_budget_are_not_run(tmp_path):
    steps = [
        command("quick", "print(1)"),
        command("long", "print(2)", expect=600),
        gc.Step("skipped", "compile", "command", ["false"], skip="not on this machine"),
    ]
    results = gc.run_plan(
        steps, launcher="exec", budget_s=60, logs=tmp_path, sizes=gc.DRY_SIZES, echo=lambda line: None
    )
    assert [r["status"] for r in results] == ["ok", "not-run", "skipped"]
    assert "the step needs about 600 s" in results[1]["error"] and results[2]["reason"] == "not on this machine"
    assert gc.exit_status(results) == 1 and gc.exit_status([results[0], results[2]]) == 0


def test_the_fork_launcher_kills_a_step_at_its_limit(tmp_path):
    """In a fresh process (forking this test process would copy its threads): a forked step past its limit."""
    code = (
        f"import json, sys; from pathlib import Path; sys.path.insert(0, {str(ROOT / 'tests')!r})\n"
        "from test_gpu_check import load_script\n"
        "script = load_script()\n"
        "script.PROBE = 'import time, os; print(os.getpid(), flush=True); time.sleep(60)'\n"
        "step = script.Step('env', 'env', 'probe', limit_s=1.5)\n"
        f"[r] = script.run_plan([step], launcher='fork', budget_s=60, logs=Path({str(tmp_path)!r}), "
        "sizes=script.DRY_SIZES, echo=lambda line: None)\n"
        "print('RESULT', json.dumps(r))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=script_env(), timeout=60)
    [line] = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
    step = json.loads(line[7:])
    assert step["status"] == "timeout" and step["seconds"] < 10, step
    pid = int(step["log_tail"][0])
    assert not Path(f"/proc/{pid}").exists()  # killed and reaped


def write_run(folder: Path, maps: np.ndarray, metrics: dict, losses: list[float]) -> dict:
    job = folder / "jobs" / "weave-s111-abc"
    job.mkdir(parents=True)
    record = {
        "category": "weave",
        "job_id": "weave-s111-abc",
        "metrics": {k: {"value": v} for k, v in metrics.items()},
        "history": [{"epoch": i + 1, "loss": loss} for i, loss in enumerate(losses)],
        "memory": {},
        "provenance": {"device": "cuda", "backend": "serial"},
        "method_info": {"deterministic": True},
    }
    (job / "record.json").write_text(json.dumps(record))
    np.savez(job / "predictions.npz", maps=maps, scores=maps.reshape(len(maps), -1).max(axis=1))
    return gc.parse_run(gc.Step("run", "determinism", "harness", ["run"], info={"run": str(folder)}))


def test_determinism_comparison_is_bitwise_and_states_the_spread(tmp_path):
    maps = np.random.default_rng(0).random((3, 8, 8), dtype=np.float32)
    metrics = {"image_auroc": 0.9, "pixel_auroc": 0.8, "au_pro": 0.7}
    a = write_run(tmp_path / "a", maps, metrics, [1.0, 0.5])
    b = write_run(tmp_path / "b", maps.copy(), dict(metrics), [1.0, 0.5])
    assert gc.compare_runs(a, b, deterministic=True)["identical"]
    nudged = maps.copy()
    nudged[1, 2, 3] = np.nextafter(nudged[1, 2, 3], np.float32(2))  # one bit of one pixel
    c = write_run(tmp_path / "c", nudged, metrics | {"au_pro": 0.7001}, [1.0, 0.5000001])
    spread = gc.compare_runs(a, c, deterministic=False)
    assert not spread["identical"] and spread["metrics_identical"] is False and spread["maps_identical"] is False
    assert (
        spread["max_abs_metric_diff"]["au_pro"] == pytest.approx(1e-4)
        and spread["max_abs_metric_diff"]["image_auroc"] == 0
    )
    assert 0 < spread["max_abs_map_diff"] < 1e-6 and spread["max_abs_loss_diff"] == pytest.approx(1e-7)
    with pytest.raises(gc.StepFailed, match="deterministic runs differ"):
        gc.compare_runs(a, c, deterministic=True)


def bench_result(variant: str, what: str, rate: float, memory: float) -> dict:
    run = {"images_per_s": rate, "step_s": 16 / rate, "cuda_max_allocated_mib": memory, "peak_rss_mib": 900.0}
    data = {
        "setup": {
            "device": "cuda",
            "precision": "fp32" if variant != "bf16" else "bf16",
            "compiled": variant == "compile",
        }
    }
    if what == "train":
        data |= {
            "uncached": run,
            "cached": run | {"images_per_s": 2 * rate, "teacher_images_per_s": 500.0, "cache_mib": 12.0},
            "cache_speedup": 2.0,
        }
    else:
        data["infer"] = run
    return {
        "name": f"bench-{what}-resnet18-128-{variant}",
        "section": "compile" if variant == "compile" else "bench",
        "status": "ok",
        "data": data,
        "seconds": 5.0,
        "limit_s": 120,
        "command": "python -m harness bench",
        "model": {"what": what, "backbone": "resnet18", "image_size": 128, "variant": variant},
    }


def test_throughput_table_gives_the_speed_ups_and_peak_memory():
    results = [
        bench_result("fp32", "train", 100.0, 2000.0),
        bench_result("fp32", "infer", 400.0, 800.0),
        bench_result("bf16", "train", 180.0, 1200.0),
        bench_result("bf16", "infer", 1000.0, 500.0),
        bench_result("compile", "train", 130.0, 1900.0),
        {
            "name": "bench-infer-resnet18-128-compile",
            "section": "compile",
            "status": "timeout",
            "limit_s": 180,
            "command": "python -m harness bench",
            "error": "killed after 180 s (its limit, 180 s)",
            "model": {"what": "infer", "backbone": "resnet18", "image_size": 128, "variant": "compile"},
        },
    ]
    rows = {row["variant"]: row for row in gc.summarize(results)["throughput"]}
    assert rows["bf16"]["train_speedup"] == pytest.approx(1.8) and rows["bf16"]["infer_speedup"] == pytest.approx(2.5)
    assert rows["compile"]["train_speedup"] == pytest.approx(1.3) and "infer_speedup" not in rows["compile"]
    report = {
        "mode": "gpu",
        "created": "2026-01-01 00:00",
        "seconds": 30.0,
        "budget_s": 450,
        "exit_status": 1,
        "command": "scripts/gpu-check",
        "git_commit": "abc",
        "steps": results,
        "environment": {
            "gpus": [{"name": "NVIDIA H200", "memory_gib": 139.8, "capability": "9.0", "multiprocessors": 132}],
            "torch": "2.x",
            "torch_cuda": "13.0",
            "cudnn": 92400,
        },
        "sizes": {"batch": 16, "steps": 20, "warmup": 3},
    }
    markdown = gc.render_markdown(report)
    assert markdown.startswith("# GPU check: NVIDIA H200\n") and "compute capability 9.0" in markdown
    assert (
        "| resnet18 @128 | bf16 autocast | 180.0 | 360.0 | 2.00x | 1,000.0 | 1.80x | 2.50x | 1,200 / 1,200 / 500 |"
        in markdown
    )
    assert (
        "| resnet18 @128 | fp32 | 100.0 | 200.0 | 2.00x | 400.0 | 1 (reference) | 1 (reference) | 2,000 / 2,000 / 800 |"
        in markdown
    )
    assert "| resnet18 @128 | fp32 + torch.compile | 130.0 | 260.0 | 2.00x | — | 1.30x | — |" in markdown
    assert "1 step(s) did not pass: bench-infer-resnet18-128-compile" in markdown


def test_the_work_folder_of_another_tool_is_left_alone(tmp_path):
    foreign = tmp_path / "gpu-check-x"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("mine")
    with pytest.raises(gc.UsageError, match="not made by gpu-check"):
        gc.prepare_work(foreign)
    assert (foreign / "thesis.tex").exists()
    ours = tmp_path / "gpu-check-y"
    gc.prepare_work(ours)
    (ours / "runs" / "old").mkdir()
    gc.prepare_work(ours)  # a previous pass's folder is replaced
    assert not (ours / "runs" / "old").exists() and (ours / gc.MARKER).exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA: the GPU pass would run")
def test_the_gpu_pass_without_cuda_is_one_line_and_exit_2(tmp_path):
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--out", str(tmp_path), "--sections", "bench"],
        capture_output=True,
        text=True,
        env=script_env(),
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [result.stderr.strip()] and "CUDA is not available" in result.stderr
    assert "--cpu-dry-run" in result.stderr and not list(tmp_path.glob("gpu-check-*"))
