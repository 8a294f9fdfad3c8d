"""The data set's layout is checked once, before the weights and before anything is written (one short line
saying what was expected where); an entry named like an image that is not a file fails its category."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from harness.cli import main
from harness.datasets import create
from harness.errors import DataError

from sweep_fixtures import FAST, make_dataset, run_in_process

QUICK = ["--backbone", "resnet18", "--image-size", "64", "--epochs", "1"]


def one_line(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return err.strip()


@pytest.mark.parametrize(
    "dataset, expected",
    [
        ("visa", ["split_csv/1cls.csv", "candle/Data", "candle/train/good"]),
        ("mvtec", ["bottle/train/good"]),
    ],
)
def test_an_empty_root_is_one_short_line_before_the_weights(tmp_path, capsys, monkeypatch, dataset, expected):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # no weights: they would be the first error
    root, out = tmp_path / "empty", tmp_path / "run"
    root.mkdir()
    assert main(["run", "--dataset", dataset, "--root", str(root), "--out", str(out), *QUICK]) == 2
    line = one_line(capsys)
    assert line.startswith(f"error: {root}: no {dataset} layout for all ") and "categories" in line
    assert "weights" not in line.lower() and len(line) < 400, line
    for part in expected:
        assert part in line, line
    assert not out.exists()


def test_categories_missing_from_the_root_are_named_up_front(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    root, out = tmp_path / "mvtec", tmp_path / "run"
    for category in ("bottle", "cable"):
        (root / category / "train" / "good").mkdir(parents=True)
        (root / category / "test" / "good").mkdir(parents=True)
    args = ["run", "--dataset", "mvtec", "--root", str(root), "--out", str(out), *QUICK, "--weights", "none"]
    assert main([*args, "--categories", "bottle,capsule,carpet"]) == 2
    line = one_line(capsys)
    assert "for 2 of 3 categories (capsule, carpet)" in line and "capsule/train/good" in line
    assert "--categories" in line and not out.exists()


def test_a_wrong_visa_layout_option_names_the_converted_folders(tmp_path):
    root = tmp_path / "visa"
    (root / "split_csv").mkdir(parents=True)
    (root / "split_csv" / "1cls.csv").write_text("object,split,label,image,mask\n")
    (root / "candle" / "Data").mkdir(parents=True)
    adapter = create("visa", str(root))
    adapter.check_layout(("candle",))  # the raw layout is there
    with pytest.raises(DataError, match="for 1 of 2 categories \\(capsules\\)"):
        adapter.check_layout(("candle", "capsules"))
    with pytest.raises(DataError, match=r"candle/train/good"):
        create("visa", str(root), layout="converted").check_layout(("candle",))


@pytest.fixture
def data(tmp_path) -> Path:
    return make_dataset(tmp_path / "data")


def test_a_folder_named_like_an_image_fails_its_category_with_one_line(data, tmp_path, capsys):
    stray = data / "amber" / "train" / "good" / "stray.png"
    stray.mkdir()
    with pytest.raises(DataError, match=f"^{stray}: named like an image but a folder"):
        create("folder", str(data)).fingerprint("amber")
    out = tmp_path / "run"
    assert run_in_process("run", *FAST, "--root", str(data), "--out", str(out)) == 1
    captured = capsys.readouterr()
    failed = [line for line in captured.out.splitlines() if "FAILED" in line]
    assert len(failed) == 1 and "amber" in failed[0] and str(stray) in failed[0]
    assert "slate seed" in captured.out and len(list(out.glob("jobs/slate-*/record.json"))) == 1


def test_a_symlink_loop_named_like_an_image_fails_its_category(data):
    loop = data / "slate" / "test" / "good" / "loop.png"
    os.symlink(loop.name, loop)  # points at itself
    with pytest.raises(DataError, match=f"^{loop}: named like an image but a broken or looping link"):
        create("folder", str(data)).fingerprint("slate")
    dangling = data / "amber" / "test" / "good" / "gone.png"
    os.symlink("nowhere.png", dangling)
    with pytest.raises(DataError, match=f"^{dangling}: named like an image but a broken or looping link"):
        create("folder", str(data)).fingerprint("amber")


def test_other_stray_entries_are_skipped(data):
    """Files of other kinds and hidden entries do not belong to the data: they are left alone."""
    folder = data / "amber" / "train" / "good"
    (folder / "notes.txt").write_text("x")
    (folder / ".DS_Store").write_text("x")
    (folder / "Thumbs.db").write_text("x")
    (folder / "old").mkdir()
    (folder / ".hidden.png").mkdir()
    before = create("folder", str(data)).fingerprint("amber")
    assert before and create("folder", str(data)).load("amber", 64).train.images.shape[0] == 12
