"""`run`'s input checked before anything is written: argument errors, sweep-file settings of the wrong type,
timeouts and seeds out of range, and a checkpoint's identity. Each is one line on stderr, exit 2, no folder."""

from __future__ import annotations

import pytest
import torch

from harness.cli import main
from harness.methods.rd_networks import OneClassBottleneck, StudentDecoder
from harness.sweep.plan import Sweep

from sweep_fixtures import run_in_process


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err and "usage:" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


@pytest.mark.parametrize(
    "argv, words",
    [
        (
            ["run", "--epochs", "0"],
            ["argument --epochs: expected a positive integer, got '0'", "python -m harness run"],
        ),
        (["run", "--backend", "fast"], ["argument --backend: invalid choice: 'fast'", "python -m harness run"]),
        (["frobnicate"], ["invalid choice: 'frobnicate'", "python -m harness --help"]),
        (["check", "run"], ["the following arguments are required: --baseline", "python -m harness check --help"]),
        (["report"], ["the following arguments are required", "python -m harness report --help"]),
        (["data"], ["the following arguments are required: ACTION", "python -m harness data --help"]),
        (["data", "fetch"], ["required: NAME", "python -m harness data fetch --help"]),
        (["rescore"], ["required: run", "python -m harness rescore --help"]),
        (["bench", "--nope"], ["unrecognized arguments: --nope", "--help"]),
        (["run", "--nope"], ["unrecognized arguments: --nope", "python -m harness run --help"]),
    ],
)
def test_an_argument_error_is_one_line_pointing_at_help(capsys, argv, words):
    with pytest.raises(SystemExit) as stopped:
        main(argv)
    assert stopped.value.code == 2
    line = one_line_error(capsys)
    assert line.startswith("error: ")
    for word in words:
        assert word in line, line


@pytest.mark.parametrize(
    "text, words",
    [
        ("[settings]\nbetas = 5\n", ["betas", "a list of 2 numbers", "5"]),
        ('[settings]\nbetas = ["a", "b"]\n', ["betas", "a list of 2 numbers"]),
        ("[settings]\nbetas = [0.5, 0.9, 0.99]\n", ["betas", "a list of 2 numbers"]),
        ("[settings]\ndevice = 5\n", ["device", "a string", "5"]),
        ('[settings]\nbackbone = ["resnet18"]\n', ["backbone", "a string", "['resnet18']"]),
        ("[settings]\nsigma = true\n", ["sigma", "a finite number", "True"]),
        ("[settings]\nlr = nan\n", ["lr", "a finite number", "nan"]),
        ('[settings]\nepochs = "2"\n', ["epochs", "an integer", "'2'"]),
        ("[settings]\nepochs = 2.0\n", ["epochs", "an integer", "2.0"]),
        ("[settings]\ndeterministic = 1\n", ["deterministic", "true or false", "1"]),
        ("epochs = true\n", ["epochs", "a positive integer"]),
    ],
)
def test_every_sweep_file_setting_is_type_checked_against_the_method(tmp_path, capsys, text, words):
    path, out = tmp_path / "sweep.toml", tmp_path / "run"
    path.write_text('categories = ["disc"]\nimage_size = 64\n' + text)
    assert run_in_process("run", "--sweep", str(path), "--out", str(out)) == 2
    line = one_line_error(capsys)
    for word in words:
        assert word in line, line
    assert not out.exists()


def test_well_typed_settings_pass_and_lists_become_tuples(tmp_path):
    sweep = Sweep(categories=("disc",), overrides={"betas": [0.5, 0.99], "lr": 1, "sigma": 4, "image_size": 64})
    settings = sweep.resolve().jobs[0].settings
    assert settings["betas"] == (0.5, 0.99) and settings["lr"] == 1 and settings["sigma"] == 4


@pytest.mark.parametrize("value", ["inf", "nan", "1e400", "-inf"])
def test_an_infinite_job_timeout_is_refused_up_front(tmp_path, capsys, value):
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as stopped:
        main(["run", "--categories", "disc", "--job-timeout", value, "--out", str(out)])
    assert stopped.value.code == 2
    assert "--job-timeout" in one_line_error(capsys) and not out.exists()


@pytest.mark.parametrize("value", ["inf", "1e400", "1e300"])
def test_an_infinite_job_timeout_in_a_sweep_file_is_refused(tmp_path, capsys, value):
    path, out = tmp_path / "sweep.toml", tmp_path / "run"
    path.write_text(f'categories = ["disc"]\njob_timeout = {value}\n')
    assert run_in_process("run", "--sweep", str(path), "--out", str(out)) == 2
    line = one_line_error(capsys)
    assert "job_timeout" in line and "seconds" in line and not out.exists()
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("seeds", ["18446744073709551616", "4294967296", "-1"])
def test_a_seed_out_of_range_is_one_line_with_the_range(tmp_path, capsys, seeds):
    out = tmp_path / "run"
    assert run_in_process("run", "--categories", "disc", f"--seeds={seeds}", "--out", str(out)) == 2
    line = one_line_error(capsys)
    assert "seed" in line and "0 to 4294967295" in line and not out.exists()


def test_a_seed_out_of_range_in_a_sweep_file_too(tmp_path, capsys):
    path, out = tmp_path / "sweep.toml", tmp_path / "run"
    path.write_text('categories = ["disc"]\nseeds = [1, 18446744073709551616]\n')
    assert run_in_process("run", "--sweep", str(path), "--out", str(out)) == 2
    assert "0 to 4294967295" in one_line_error(capsys) and not out.exists()


def test_a_checkpoints_identity_is_its_content_not_its_path(tmp_path):
    path = tmp_path / "rd18.pth"

    def job_id() -> str:
        return (
            Sweep(categories=("disc",), checkpoint=str(path), overrides={"backbone": "resnet18"})
            .resolve()
            .jobs[0]
            .job_id
        )

    torch.manual_seed(0)
    torch.save(
        {"bn": OneClassBottleneck("resnet18").state_dict(), "decoder": StudentDecoder("resnet18").state_dict()}, path
    )
    first = job_id()
    assert job_id() == first  # the same file: the same job
    torch.manual_seed(1)  # another model under the same name
    torch.save(
        {"bn": OneClassBottleneck("resnet18").state_dict(), "decoder": StudentDecoder("resnet18").state_dict()}, path
    )
    assert job_id() != first
