"""`check` against broken, old and other-data baselines, and its flags: every case in process, on run
folders written by hand. Bad input is exit 2 with one line naming the file and the field; drift is exit 1."""

import json
import math

import pytest

from harness.cli import main
from harness.report import check as check_module
from harness.store import write_json

SETTINGS = {"backbone": "resnet18", "image_size": 64, "epochs": 10, "device": "cpu"}
MACHINE = {"cpu_model": "AMD EPYC", "cpu_capability": "DEFAULT", "numerics": "portable", "torch_threads": 1}
PRINTS = {"disc": "07a3f9bc5cfe5b60", "weave": "dc4184b819a3a0a8", "tiles": "0123456789abcdef"}


def write_run(folder, values: dict[str, dict[str, float]], prints=PRINTS, machine=MACHINE):
    """One seed-0 record per category, with its data fingerprint as a job writes it."""
    for category, metrics in values.items():
        job = folder / "jobs" / f"{category}-s0"
        write_json(
            job / "record.json",
            {
                "job_id": job.name,
                "dataset": "synthetic",
                "category": category,
                "method": "rd",
                "profile": "demo",
                "seed": 0,
                "metrics": {  # an undefined metric is stored as null with its reason
                    m: {"value": None if math.isnan(v) else v, "definition": f"def of {m}"} for m, v in metrics.items()
                },
                "settings": SETTINGS | {"seed": 0},
                "data": {"fingerprint": prints.get(category, "")},
                "provenance": {"machine": machine, "torch_threads": 1, "data_fingerprint": prints.get(category)},
            },
        )
    return folder


def check(capsys, *args) -> tuple[int, str, str]:
    code = main(["check", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def run(tmp_path):
    return write_run(
        tmp_path / "run",
        {"disc": {"image_auroc": 0.9, "au_pro": 0.8}, "weave": {"image_auroc": 1.0, "au_pro": 0.95}},
    )


@pytest.fixture
def baseline(run, tmp_path, capsys):
    path = tmp_path / "baseline.json"
    assert check(capsys, run, "--baseline", path, "--update")[0] == 0
    return path


def edited(path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def broken(path, what: str) -> None:
    """Break the baseline at `path` the way `what` says."""
    if what == "array":
        path.write_text("[1, 2]")
        return

    def change(data):
        if what == "mean is text":
            data["values"]["disc"]["au_pro"]["mean"] = "high"
        elif what == "n is text":
            data["values"]["disc"]["au_pro"]["n"] = "x"
        elif what == "tolerance is text":
            data["tolerance"] = "loose"
        elif what == "metric_tolerance is an array":
            data["metric_tolerance"] = [{"atol": 0.01}]
        elif what == "category values are a number":
            data["values"]["disc"] = 0.9
        elif what == "settings is an array":
            data["settings"] = ["epochs", 10]
        elif what == "mean missing":
            del data["values"]["disc"]["au_pro"]["mean"]
        elif what == "mean null":
            data["values"]["disc"]["au_pro"]["mean"] = None
        elif what == "std negative":
            data["values"]["disc"]["au_pro"]["std"] = -1
        elif what == "atol NaN":
            data["tolerance"]["atol"] = math.nan
        elif what == "unknown tolerance key":
            data["metric_tolerance"] = {"au_pro": {"atoll": 0.01}}

    edited(path, change)


@pytest.mark.parametrize(
    ("what", "field"),
    [
        ("array", "not a baseline file (expected a JSON object, found an array)"),
        ("mean is text", "values.disc.au_pro.mean: expected a finite number, found a string 'high'"),
        ("n is text", "values.disc.au_pro.n: expected a whole number >= 1"),
        ("tolerance is text", "tolerance: expected an object like"),
        ("metric_tolerance is an array", "metric_tolerance: expected an object of metric"),
        ("category values are a number", "values.disc: expected an object of metric -> value, found a number 0.9"),
        ("settings is an array", "settings: expected an object, found an array"),
        ("mean missing", "values.disc.au_pro.mean: missing"),
        ("mean null", "values.disc.au_pro.mean: null"),
        ("std negative", "values.disc.au_pro.std: expected a finite number >= 0, found -1"),
        ("atol NaN", "tolerance.atol: expected a finite number >= 0, found nan"),
        ("unknown tolerance key", "metric_tolerance.au_pro: unknown key(s) atoll"),
    ],
)
def test_a_broken_baseline_is_bad_input_naming_file_and_field(run, baseline, capsys, what, field):
    broken(baseline, what)
    code, out, err = check(capsys, run, "--baseline", baseline)
    assert code == 2, out + err
    assert err.count("\n") == 1 and err.startswith(f"error: {baseline}: ") and field in err, err
    assert "DRIFT" not in out + err


def test_a_folder_as_baseline_is_bad_input(run, tmp_path, capsys):
    code, out, err = check(capsys, run, "--baseline", tmp_path)
    assert code == 2 and err == f"error: {tmp_path}: a folder, not a baseline file " + (
        "(give the JSON file, e.g. results/baselines/ci-synthetic.json)\n"
    )


@pytest.mark.parametrize(("flag", "value"), [("--atol", "nan"), ("--atol", "-1"), ("--rtol", "inf")])
def test_tolerance_flags_must_be_finite_and_not_negative(run, baseline, capsys, flag, value):
    code, out, err = check(capsys, run, "--baseline", baseline, flag, value)
    assert code == 2 and err.startswith(f"error: {flag}: expected a finite number >= 0") and err.count("\n") == 1


def test_a_zero_tolerance_demands_the_same_bits(run, baseline, capsys):
    assert check(capsys, run, "--baseline", baseline, "--atol", "0", "--rtol", "0")[0] == 0
    edited(baseline, lambda data: data["values"]["disc"]["au_pro"].update(mean=math.nextafter(0.8, 1.0)))
    code, out, err = check(capsys, run, "--baseline", baseline, "--atol", "0", "--rtol", "0")
    assert code == 1 and "disc/au_pro" in err


def test_categories_selects_what_is_compared(tmp_path, capsys):
    base = write_run(tmp_path / "base", {"disc": {"image_auroc": 0.9}})
    path = tmp_path / "baseline.json"
    assert check(capsys, base, "--baseline", path, "--update")[0] == 0
    wider = write_run(tmp_path / "wider", {"disc": {"image_auroc": 0.9}, "tiles": {"image_auroc": 0.5}})
    code, out, err = check(capsys, wider, "--baseline", path)
    assert code == 2 and "leave them out with --categories disc," in err
    code, out, err = check(capsys, wider, "--baseline", path, "--categories", "disc")
    assert code == 0 and "all 1 values within tolerance" in out and "tiles" not in out
    code, out, err = check(capsys, wider, "--baseline", path, "--categories", "disc,carpet")
    assert code == 2 and err.startswith("error: --categories: carpet in neither the run nor the baseline")
    # --update with --categories writes only those
    assert check(capsys, wider, "--baseline", tmp_path / "tiles.json", "--update", "--categories", "tiles")[0] == 0
    assert list(json.loads((tmp_path / "tiles.json").read_text())["values"]) == ["tiles"]


def test_other_data_is_its_own_outcome_not_drift(run, baseline, tmp_path, capsys):
    data = json.loads(baseline.read_text())
    assert data["fingerprint_scheme"] == check_module.FINGERPRINT_SCHEME
    assert data["data_fingerprints"] == {"disc": PRINTS["disc"], "weave": PRINTS["weave"]}
    code, out, err = check(capsys, run, "--baseline", baseline)
    assert code == 0 and "data: the same fingerprints as the baseline's" in out
    # other images for disc, and metrics that would be drift: the data difference is what is reported
    other = write_run(
        tmp_path / "other",
        {"disc": {"image_auroc": 0.5, "au_pro": 0.5}, "weave": {"image_auroc": 1.0, "au_pro": 0.95}},
        prints=PRINTS | {"disc": "ffffffffffffffff"},
    )
    code, out, err = check(capsys, other, "--baseline", baseline)
    assert code == 2, out + err
    lines = err.splitlines()
    assert lines[0].startswith(
        "error: data differ for disc: the run's data fingerprint is ffffffffffffffff, the baseline's 07a3f9bc5cfe5b60"
    )
    assert "not drift" in lines[0] and len(lines) == 2 and "not compared (not drift)" in lines[1]
    assert "DRIFT" not in out + err
    # comparing only the category whose data agree works
    assert check(capsys, other, "--baseline", baseline, "--categories", "weave")[0] == 0


def test_an_older_fingerprint_scheme_is_named_and_refreshed_keeping_tolerances(run, baseline, capsys):
    def older(data):
        del data["fingerprint_scheme"], data["data_fingerprints"]
        data["source"]["provenance"] = {"data_fingerprint": "8ae4d5a7033bdea2"}  # the file-stamp scheme's
        data["tolerance"] = {"atol": 0.002, "rtol": 0.001, "k": 2.0}
        data["metric_tolerance"] = {"au_pro": {"atol": 0.003}}
        data["about"] = "kept"

    edited(baseline, older)
    code, out, err = check(capsys, run, "--baseline", baseline)
    assert code == 0 and "data not compared: the baseline records no data fingerprints of the current scheme" in out
    assert "refresh it with --update" in out
    assert check(capsys, run, "--baseline", baseline, "--update")[0] == 0
    data = json.loads(baseline.read_text())
    assert data["data_fingerprints"] == {"disc": PRINTS["disc"], "weave": PRINTS["weave"]}
    assert data["tolerance"] == {"atol": 0.002, "rtol": 0.001, "k": 2.0}
    assert data["metric_tolerance"] == {"au_pro": {"atol": 0.003}} and data["about"] == "kept"
    code, out, err = check(capsys, run, "--baseline", baseline)
    assert code == 0 and "data: the same fingerprints" in out and "atol 0.002/0.003, rtol 0.001, k 2" in out


def test_an_undefined_metric_is_written_as_such_and_compares_equal(tmp_path, capsys):
    run = write_run(tmp_path / "run", {"disc": {"image_auroc": 0.9, "au_pro": math.nan}})
    path = tmp_path / "baseline.json"
    assert check(capsys, run, "--baseline", path, "--update")[0] == 0
    assert json.loads(path.read_text())["values"]["disc"]["au_pro"] == {"undefined": True, "std": 0.0, "n": 1}
    assert check(capsys, run, "--baseline", path)[0] == 0
    defined = write_run(tmp_path / "defined", {"disc": {"image_auroc": 0.9, "au_pro": 0.7}})
    assert check(capsys, defined, "--baseline", path)[0] == 1  # a metric becoming defined is a change


def test_the_output_explains_the_tolerance_for_the_machines_compared(run, baseline, tmp_path, capsys):
    code, out, err = check(capsys, run, "--baseline", baseline)
    assert "tolerance: a value drifts when |now - baseline| > max(atol + rtol * |baseline|" in out
    assert "atol 0.005, rtol 0, k 3" in out and "portable numerics on both sides" in out
    native = MACHINE | {"numerics": "native", "cpu_capability": "AVX512", "cpu_model": "Intel(R) Xeon(R)"}
    other = write_run(
        tmp_path / "native",
        {"disc": {"image_auroc": 0.9, "au_pro": 0.8}, "weave": {"image_auroc": 1.0, "au_pro": 0.95}},
        machine=native,
    )
    edited(baseline, lambda data: data["settings"].pop("numerics"))  # compare across numerics modes here
    code, out, err = check(capsys, other, "--baseline", baseline)
    assert code == 0 and "native numerics on another machine kind" in out and "docs/drift-check.md" in out


def test_tolerances_are_parsed_in_one_place_with_per_metric_fallback():
    parsed = check_module.parse_tolerances({"tolerance": {"atol": 0.01}, "metric_tolerance": {"au_pro": {"k": 0}}})
    assert parsed.default == check_module.Tolerance(atol=0.01, rtol=0.0, k=3.0)
    assert parsed.of("au_pro") == check_module.Tolerance(atol=0.01, rtol=0.0, k=0.0)
    assert parsed.of("image_auroc") == parsed.default
