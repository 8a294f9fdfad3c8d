"""`check`: drift against a baseline, on run folders written by hand (no training needed)."""

import json
import subprocess
import sys

import pytest

from harness.store import write_json


def write_run(folder, values: dict[tuple[str, int], dict[str, float]]):
    for (category, seed), metrics in values.items():
        job = folder / "jobs" / f"{category}-s{seed}"
        write_json(job / "record.json", {
            "job_id": job.name, "dataset": "synthetic", "category": category, "method": "rd", "profile": "demo",
            "seed": seed, "metrics": {m: {"value": v, "definition": f"def of {m}"} for m, v in metrics.items()},
        })
    return folder


def check(*args):
    return subprocess.run([sys.executable, "-m", "harness", "check", *map(str, args)], capture_output=True, text=True)


@pytest.fixture
def run(tmp_path):
    return write_run(tmp_path / "run", {
        ("disc", 0): {"image_auroc": 0.90, "au_pro": 0.80},
        ("disc", 1): {"image_auroc": 0.94, "au_pro": 0.84},  # two seeds: the baseline holds their mean
        ("weave", 0): {"image_auroc": 1.00, "au_pro": 0.95},
    })


def test_run_equal_to_its_baseline_passes(run, tmp_path):
    baseline = tmp_path / "baseline.json"
    assert check(run, "--baseline", baseline, "--update").returncode == 0
    data = json.loads(baseline.read_text())
    assert data["values"]["disc"]["image_auroc"] == pytest.approx(0.92)
    assert data["definitions"]["au_pro"] == "def of au_pro"
    result = check(run, "--baseline", baseline)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "DRIFT" not in result.stdout and "all 4 values within tolerance" in result.stdout


def test_one_metric_beyond_tolerance_fails_and_is_named(run, tmp_path):
    baseline = tmp_path / "baseline.json"
    check(run, "--baseline", baseline, "--update")
    data = json.loads(baseline.read_text())
    data["values"]["weave"]["au_pro"] = 0.90  # the run now looks 0.05 better: drift both ways counts
    baseline.write_text(json.dumps(data))
    result = check(run, "--baseline", baseline)
    assert result.returncode == 1
    assert "weave/au_pro" in result.stderr and "drift in 1 of 4" in result.stderr
    assert check(run, "--baseline", baseline, "--allow-improvement").returncode == 0
    assert check(run, "--baseline", baseline, "--atol", "0.06").returncode == 0


def test_per_metric_tolerance_in_baseline(run, tmp_path):
    baseline = tmp_path / "baseline.json"
    check(run, "--baseline", baseline, "--update")
    data = json.loads(baseline.read_text())
    data["values"]["disc"]["image_auroc"] = 0.93  # 0.01 off
    data["metric_tolerance"] = {"image_auroc": {"atol": 0.02}}
    baseline.write_text(json.dumps(data))
    assert check(run, "--baseline", baseline).returncode == 0
    data["metric_tolerance"] = {"image_auroc": {"atol": 0.005}}
    baseline.write_text(json.dumps(data))
    assert check(run, "--baseline", baseline).returncode == 1


def test_missing_categories_and_bad_input_exit_2(run, tmp_path):
    baseline = tmp_path / "baseline.json"
    check(run, "--baseline", baseline, "--update")
    data = json.loads(baseline.read_text())
    data["values"]["tiles"] = {"image_auroc": 0.9, "au_pro": 0.9}
    baseline.write_text(json.dumps(data))
    result = check(run, "--baseline", baseline)
    assert result.returncode == 2 and "categories missing from the run: tiles" in result.stderr
    assert "Traceback" not in result.stderr
    assert check(run, "--baseline", tmp_path / "none.json").returncode == 2
    assert check(tmp_path / "empty", "--baseline", baseline).returncode == 2
    result = check(run, "--baseline", baseline, "--metrics", "pixel_auroc")
    assert result.returncode == 2 and "metrics missing from the run: pixel_auroc" in result.stderr
