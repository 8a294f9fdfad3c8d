"""`python -m harness bench` for a tiny configuration: all sections end to end in a subprocess, each
command and bad input in-process."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from harness import cli
from harness.datasets.synthetic import CATEGORIES, COUNTS, DEFECTS

TINY = ["--backbone", "resnet18", "--image-size", "32", "--batch-size", "4", "--steps", "2", "--threads", "1"]
SMALL_METRICS = ["--n-images", "8", "--size", "32", "--repeats", "1"]
N_SYNTHETIC = COUNTS["train"] + COUNTS["good"] + COUNTS["defect"] * len(DEFECTS)  # one category, train + test


@pytest.fixture
def restore_threads():
    previous = torch.get_num_threads()
    yield
    torch.set_num_threads(previous)


def test_bench_all_end_to_end_with_the_sweep_estimate(tmp_path):
    path = tmp_path / "out.json"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "harness",
            "bench",
            "all",
            *TINY,
            *SMALL_METRICS,
            "--dataset",
            "synthetic",
            "--json",
            str(path),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=os.environ.copy(),
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(path.read_text())
    assert out["command"] == "all" and out["setup"]["backbone"] == "resnet18" and out["setup"]["image_size"] == 32
    assert out["settings"]["weights"] == "none" and out["settings"]["epochs"] == 30  # the demo profile of synthetic
    uncached, cached = out["train"]["uncached"], out["train"]["cached"]
    for run in (uncached, cached):
        assert run["images"] == 8 and run["warmup_steps"] == 1 and run["images_per_s"] > 0 and run["peak_rss_mib"] > 0
        assert run["finite_losses"] is True
    assert cached["teacher_images_per_s"] > 0 and cached["cache_mib"] > 0 and "cache_mib" not in uncached
    assert out["train"]["cache_speedup"] == pytest.approx(cached["images_per_s"] / uncached["images_per_s"])
    assert out["infer"]["images"] == 8 and out["infer"]["images_per_s"] > 0 and out["infer"]["peak_rss_mib"] > 0
    assert (
        out["data"]["dataset"] == "synthetic"
        and out["data"]["images"] == N_SYNTHETIC
        and out["data"]["images_per_s"] > 0
    )
    assert out["metrics"]["pixels"] == 8 * 32 * 32 and out["metrics"]["ratio"] > 0
    estimate = out["estimate"]
    assert estimate["dataset"] == "synthetic" and estimate["profile"] == "demo" and estimate["epochs"] == 30
    assert set(estimate["categories"]) == set(CATEGORIES) and estimate["n_train"] == 3 * COUNTS["train"]
    assert estimate["not_included"] == [] and all(estimate["totals"][k] > 0 for k in ("train_s", "infer_s", "load_s"))
    assert len(out["machine"]["load_average"]) == 3 and out["machine"]["torch"] == torch.__version__
    for text in (
        "train, teacher on the fly",
        "cached teacher features",
        "cache speed-up",
        "inference (map + blur)",
        "data benchmark: synthetic",
        "np.argsort",
        "sweep estimate: synthetic",
        f"JSON: {path}",
    ):
        assert text in result.stdout


@pytest.mark.parametrize(
    "command, extra, sections",
    [
        ("train", TINY, {"train"}),
        ("infer", TINY, {"infer"}),
        ("data", ["--image-size", "32"], {"data"}),
        ("metrics", SMALL_METRICS, {"metrics"}),
    ],
)
def test_each_command_measures_its_section_only_and_writes_under_results_bench(
    command, extra, sections, tmp_path, monkeypatch, capsys, restore_threads
):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["bench", command, *extra]) == 0
    written = list((tmp_path / "results" / "bench").glob(f"bench-{command}-*.json"))
    assert len(written) == 1 and f"JSON: {written[0].relative_to(tmp_path)}" in capsys.readouterr().out
    out = json.loads(written[0].read_text())
    assert {"train", "infer", "data", "metrics", "estimate"} & set(out) == sections


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "--backbone", "vgg16"], "rd setting backbone='vgg16' is invalid"),
        (["infer", "--image-size", "48"], "rd setting image_size=48 is invalid"),
        (["estimate"], "bench estimate needs --dataset"),
        (["estimate", "--dataset", "imagenet"], "unknown data set 'imagenet'"),
        (["data", "--category", "bottle"], "unknown category 'bottle'"),
        (["data", "--dataset", "mvtec", "--root", "/nonexistent/mvtec"], "data set root folder not found"),
        (["metrics", "--json", "/proc/forbidden/bench.json"], "cannot write the JSON file"),
        (["train", "--profile", "fastest"], "unknown profile 'fastest'"),
    ]
    + ([] if torch.cuda.is_available() else [(["train", "--device", "cuda"], "CUDA is not available")]),
)
def test_bad_input_is_one_line_and_exit_2(args, message, capsys):
    assert cli.main(["bench", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
