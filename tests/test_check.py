"""`check`: drift against a baseline, on run folders written by hand (no training needed), in-process."""

import json

import pytest

from harness.store import write_json

from cli_fixtures import run_cli

SETTINGS = {"backbone": "resnet18", "image_size": 64, "epochs": 10, "device": "cpu"}
MACHINE = {"cpu_model": "AMD EPYC", "cpu_capability": "DEFAULT", "numerics": "portable", "torch_threads": 1}


def write_run(folder, values: dict[tuple[str, int], dict[str, float]], settings=None, machine=None):
    for (category, seed), metrics in values.items():
        job = folder / "jobs" / f"{category}-s{seed}"
        write_json(
            job / "record.json",
            {
                "job_id": job.name,
                "dataset": "synthetic",
                "category": category,
                "method": "rd",
                "profile": "demo",
                "seed": seed,
                "metrics": {m: {"value": v, "definition": f"def of {m}"} for m, v in metrics.items()},
                "settings": (settings or SETTINGS) | {"seed": seed},
                "provenance": {"machine": machine or MACHINE, "torch_threads": (machine or MACHINE)["torch_threads"]},
            },
        )
    return folder


def check(*args):
    return run_cli("check", *map(str, args))


@pytest.fixture
def run(tmp_path):
    return write_run(
        tmp_path / "run",
        {
            ("disc", 0): {"image_auroc": 0.90, "au_pro": 0.80},
            ("disc", 1): {"image_auroc": 0.94, "au_pro": 0.84},  # two seeds: the baseline holds their mean
            ("weave", 0): {"image_auroc": 1.00, "au_pro": 0.95},
        },
    )


def test_run_equal_to_its_baseline_passes(run, tmp_path):
    baseline = tmp_path / "baseline.json"
    assert check(run, "--baseline", baseline, "--update").returncode == 0
    data = json.loads(baseline.read_text())
    assert data["values"]["disc"]["image_auroc"]["mean"] == pytest.approx(0.92)
    assert data["values"]["disc"]["image_auroc"]["std"] == pytest.approx(0.04 / 2**0.5, abs=1e-6)
    assert data["values"]["disc"]["image_auroc"]["n"] == 2 and data["values"]["weave"]["au_pro"]["n"] == 1
    assert data["seeds"] == {"disc": [0, 1], "weave": [0]} and data["settings"]["epochs"] == 10
    assert data["definitions"]["au_pro"] == "def of au_pro"
    result = check(run, "--baseline", baseline)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "DRIFT" not in result.stdout and "all 4 values within tolerance" in result.stdout


def test_one_metric_beyond_tolerance_fails_and_is_named(run, tmp_path):
    baseline = tmp_path / "baseline.json"
    check(run, "--baseline", baseline, "--update")
    data = json.loads(baseline.read_text())
    data["values"]["weave"]["au_pro"]["mean"] = 0.90  # the run now looks 0.05 better: drift both ways counts
    baseline.write_text(json.dumps(data))
    result = check(run, "--baseline", baseline)
    assert result.returncode == 1
    assert "drift in 1 of 4 values: weave/au_pro +0.0500" in result.stderr
    assert check(run, "--baseline", baseline, "--allow-improvement").returncode == 0
    assert check(run, "--baseline", baseline, "--atol", "0.06").returncode == 0


def test_per_metric_tolerance_in_baseline(run, tmp_path):
    baseline = tmp_path / "baseline.json"
    check(run, "--baseline", baseline, "--update")
    data = json.loads(baseline.read_text())
    data["values"]["disc"]["image_auroc"] = {"mean": 0.93, "std": 0.0, "n": 2}  # 0.01 off
    data["tolerance"]["k"] = 0  # tolerances only: the seed spread would explain 0.01
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
    data["values"]["tiles"] = {"image_auroc": {"mean": 0.9}, "au_pro": {"mean": 0.9}}
    baseline.write_text(json.dumps(data))
    result = check(run, "--baseline", baseline)
    assert result.returncode == 2 and "categories missing from the run: tiles" in result.stderr
    assert "Traceback" not in result.stderr
    assert check(run, "--baseline", tmp_path / "none.json").returncode == 2
    assert check(tmp_path / "empty", "--baseline", baseline).returncode == 2
    result = check(run, "--baseline", baseline, "--metrics", "pixel_auroc")
    assert result.returncode == 2 and "metrics missing from the run: pixel_auroc" in result.stderr


def seeded_run(folder, means: dict[str, float], spread: float, seeds=(0, 1, 2), **kwargs):
    """Three seeds per category spread symmetrically around `means` (sample std = spread)."""
    offsets = {0: -spread, 1: 0.0, 2: spread}
    return write_run(
        folder, {(c, s): {"image_auroc": m + offsets[s]} for c, m in means.items() for s in seeds}, **kwargs
    )


def test_a_shift_within_the_seed_spread_is_not_drift_beyond_it_is(tmp_path):
    baseline = tmp_path / "baseline.json"
    assert (
        check(seeded_run(tmp_path / "base", {"disc": 0.90}, 0.02), "--baseline", baseline, "--update").returncode == 0
    )
    # k=3, s=0.02, n=3 and 3: allowed = 3 * 0.02 * sqrt(2/3) = 0.049
    near = check(seeded_run(tmp_path / "near", {"disc": 0.94}, 0.02), "--baseline", baseline)
    assert near.returncode == 0, near.stdout + near.stderr
    assert "±0.0490" in near.stdout
    far = check(seeded_run(tmp_path / "far", {"disc": 0.96}, 0.02), "--baseline", baseline)
    assert far.returncode == 1 and "disc/image_auroc +0.0600" in far.stderr


def test_schema_1_baselines_are_still_read(run, tmp_path):
    baseline = tmp_path / "old.json"
    baseline.write_text(
        json.dumps(
            {
                "schema": 1,
                "tolerance": {"atol": 0.005, "rtol": 0.0},
                "values": {
                    "disc": {"image_auroc": 0.92, "au_pro": 0.82},
                    "weave": {"image_auroc": 1.0, "au_pro": 0.95},
                },
            }
        )
    )
    assert check(run, "--baseline", baseline).returncode == 0


def test_missing_seeds_are_named_not_reported_as_drift(tmp_path):
    baseline = tmp_path / "baseline.json"
    check(seeded_run(tmp_path / "base", {"disc": 0.90, "weave": 0.95}, 0.02), "--baseline", baseline, "--update")
    half = seeded_run(tmp_path / "half", {"disc": 0.90, "weave": 0.95}, 0.02, seeds=(0, 1))
    result = check(half, "--baseline", baseline)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "seeds missing from the run for disc: 2" in result.stderr
    assert "seeds missing from the run for weave: 2" in result.stderr
    assert "DRIFT" not in result.stdout + result.stderr and "Traceback" not in result.stderr


def test_differing_settings_and_extra_categories_are_named(tmp_path):
    baseline = tmp_path / "baseline.json"
    check(seeded_run(tmp_path / "base", {"disc": 0.90}, 0.01), "--baseline", baseline, "--update")
    other = seeded_run(
        tmp_path / "other",
        {"disc": 0.90, "tiles": 0.8},
        0.01,
        settings=SETTINGS | {"epochs": 5, "device": "cuda"},
        machine=MACHINE | {"numerics": "native"},
    )
    result = check(other, "--baseline", baseline)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert "error: setting epochs differs: run 5, baseline 10" in lines
    assert "error: setting numerics differs: run 'native', baseline 'portable'" in lines
    assert any("categories in the run but not in the baseline: tiles" in line for line in lines)
    assert not any("device" in line for line in lines)  # an execution-only setting never blocks a comparison
    assert len(lines) == 3


def test_a_baseline_from_another_machine_kind_is_shown(tmp_path):
    baseline = tmp_path / "baseline.json"
    check(seeded_run(tmp_path / "base", {"disc": 0.90}, 0.01), "--baseline", baseline, "--update")
    same = check(seeded_run(tmp_path / "same", {"disc": 0.90}, 0.01), "--baseline", baseline)
    assert same.returncode == 0 and "machines differ" not in same.stdout
    intel = MACHINE | {"cpu_model": "Intel(R) Xeon(R) Platinum 8480+", "cpu_capability": "AVX512"}
    moved = check(seeded_run(tmp_path / "moved", {"disc": 0.90}, 0.01, machine=intel), "--baseline", baseline)
    assert moved.returncode == 0
    assert (
        "machines differ: baseline made on AMD EPYC" in moved.stdout and "this run on Intel(R) Xeon(R)" in moved.stdout
    )
