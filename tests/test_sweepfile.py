"""Sweep files and run flags: the file's options, flags that override them, and one clear error before any job."""

import pytest

from harness.cli import build_parser, run_options
from harness.errors import HarnessError
from harness.sweep.sweepfile import read_sweep_file

from sweep_fixtures import make_dataset, run_in_process

SWEEP = """
dataset = "folder"
categories = ["amber", "slate"]
profile = "demo"
seeds = [1, 2]
metrics = "image_auroc,pixel_auroc"
image-size = 64
backend = "local"
jobs = 2
job_timeout = 600

[settings]
epochs = 3
lr = 0.001

[data_options]
cache = true
"""


def options_for(tmp_path, text: str, *flags: str):
    path = tmp_path / "sweep.toml"
    path.write_text(text)
    return run_options(build_parser().parse_args(["run", "--sweep", str(path), *flags]))


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("sweepfile") / "data")


def test_a_sweep_file_sets_the_run_options(tmp_path, data):
    options = options_for(tmp_path, SWEEP, "--root", str(data))
    assert options.categories == ("amber", "slate") and options.seeds == (1, 2)
    assert options.metrics == ("image_auroc", "pixel_auroc")
    assert options.settings == {"epochs": 3, "lr": 0.001, "image_size": 64}
    assert options.data_options == {"cache": True}
    assert options.backend == "local" and options.jobs == 2 and options.job_timeout == 600
    jobs = options.sweep().resolve().jobs
    assert [(j.category, j.seed) for j in jobs] == [("amber", 1), ("amber", 2), ("slate", 1), ("slate", 2)]
    assert jobs[0].data_options == {"cache": True} and jobs[0].root == str(data)
    assert jobs[0].settings["epochs"] == 3 and jobs[0].settings["lr"] == 0.001 and jobs[0].settings["image_size"] == 64


def test_flags_given_on_the_command_line_override_the_file(tmp_path):
    options = options_for(
        tmp_path,
        SWEEP,
        "--epochs",
        "5",
        "--categories",
        "all",
        "--seeds",
        "7",
        "--backend",
        "dask",
        "--jobs",
        "3",
        "--data-option",
        "cache=false",
    )
    assert options.settings["epochs"] == 5 and options.settings["lr"] == 0.001
    assert options.backend == "dask" and options.jobs == 3 and options.job_timeout == 600
    assert options.categories == () and options.seeds == (7,)
    assert options.data_options == {"cache": "false"}
    with pytest.raises(HarnessError, match="--jobs needs --backend local or dask"):
        options_for(tmp_path, SWEEP, "--backend", "serial")  # the file's jobs = 2 now conflicts


@pytest.mark.parametrize(
    "text, message",
    [
        ("dataset = synthetic", "not a valid TOML sweep file"),
        ("[settings\nepochs = 1", "not a valid TOML sweep file"),
        ("epoch = 3", "unknown key 'epoch'"),
        ("seeds = '0'", "'seeds' must be a list of integers"),
        ("jobs = 0", "'jobs' must be a positive integer"),
        ("rerun = 'yes'", "'rerun' must be true or false"),
        ("settings = 3", "'settings' must be a table"),
        ("epochs = 2\n[settings]\nepochs = 3", "'epochs' is 2 at the top level but 3 in [settings]"),
        ("backend = 'cloud'", "unknown backend 'cloud'"),
    ],
)
def test_a_malformed_sweep_file_is_one_clear_error(tmp_path, text, message):
    with pytest.raises(HarnessError, match=message.replace("[", r"\[").replace("]", r"\]")):
        options_for(tmp_path, text)


def test_a_missing_sweep_file_is_an_error(tmp_path):
    with pytest.raises(HarnessError, match="sweep file not found"):
        read_sweep_file(tmp_path / "nope.toml")


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--gpus", "0", "--device", "cpu", "--backend", "local"], "--gpus 0 conflicts with --device cpu"),
        (["--jobs", "2"], "--jobs needs --backend local or dask"),
        (["--jobs", "2", "--backend", "serial"], "--jobs needs --backend local or dask"),
        (["--gpus", "0,1"], "--gpus 0,1 needs --backend local or dask"),
        (["--dask-address", "tcp://127.0.0.1:8786"], "--dask-address is for --backend dask"),
        (["--backend", "dask", "--dask-address", "tcp://h:1", "--jobs", "2"], "--jobs is for a local dask cluster"),
        (["--backend", "local", "--gpus", "0", "--jobs", "2"], "--jobs conflicts with --gpus 0"),
        (["--backend", "local", "--gpus", "0", "--device", "cuda:1"], "pins each job to a GPU itself"),
    ],
)
def test_conflicting_flags_are_one_clear_error_before_any_job(tmp_path, capsys, flags, message):
    out = tmp_path / "run"
    assert run_in_process("run", "--categories", "disc", "--out", str(out), *flags) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not out.exists()  # nothing started


def test_a_malformed_sweep_file_stops_the_command_before_any_job(tmp_path, capsys):
    path = tmp_path / "sweep.toml"
    path.write_text("dataset = 'synthetic'\ncategories = ['disc']\nepochz = 1\n")
    out = tmp_path / "run"
    assert run_in_process("run", "--sweep", str(path), "--out", str(out)) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {path}: unknown key 'epochz'") and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_the_documented_example_is_a_valid_sweep_file(tmp_path):
    from pathlib import Path

    guide = (Path(__file__).resolve().parents[1] / "docs" / "guide" / "sweeps.md").read_text()
    example = guide.split("```toml\n", 1)[1].split("```", 1)[0]
    (tmp_path / "sweep.toml").write_text(example)
    options = read_sweep_file(tmp_path / "sweep.toml")
    assert options["dataset"] == "mvtec" and options["settings"] == {"epochs": 50}


def test_gpus_on_a_machine_without_cuda_is_one_clear_error(tmp_path, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: --gpus 0 would run the sweep")
    out = tmp_path / "run"
    assert run_in_process("run", "--categories", "disc", "--backend", "local", "--gpus", "0", "--out", str(out)) == 2
    err = capsys.readouterr().err
    assert "--gpus 0: CUDA is not available" in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_dask_backend_without_dask_installed_says_how_to_install_it(tmp_path, capsys, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "distributed" else real(name, *a))
    assert run_in_process("run", "--categories", "disc", "--backend", "dask", "--out", str(tmp_path / "run")) == 2
    err = capsys.readouterr().err
    assert 'pip install -e ".[dask]"' in err and len(err.strip().splitlines()) == 1
