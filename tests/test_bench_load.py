"""Every bench says in one line when the machine was busier than its cores: its figures then mean little."""

import json

import pytest

from harness.bench import command
from harness.cli import main

SMALL = ["bench", "metrics", "--n-images", "4", "--size", "24", "--repeats", "1"]


@pytest.mark.parametrize(("load", "warned"), [(0.5, False), (64.0, True)])
def test_busy_machine_gets_one_line(tmp_path, monkeypatch, capsys, load, warned):
    monkeypatch.setattr(command.os, "getloadavg", lambda: (load, load, load))
    monkeypatch.setattr(command, "cores_available", lambda: 2)
    path = tmp_path / "bench.json"
    assert main([*SMALL, "--json", str(path)]) == 0  # a measurement: never fails on its figures
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if "load average" in line]
    if warned:
        assert lines == [
            "warning: load average 64.00 at the start, 64.00 at the end, above the 2 core(s) available: other "
            "work competed for the CPU, so these figures mean little; measure on an idle machine"
        ]
    else:
        assert lines == []
    out = json.loads(path.read_text())
    assert out["machine"]["cores_available"] == 2 and bool(out["machine"]["load_warning"]) is warned
    assert "PASS" not in captured.out and "FAIL" not in captured.out


def test_load_warning_counts_the_end_too():
    assert command.load_warning(1.0, 3.5, 2) is not None and command.load_warning(2.0, 2.0, 2) is None
    assert command.cores_available() >= 1
