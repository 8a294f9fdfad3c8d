"""`python -m harness runs`: one line per run folder; run folder names say what differs from the profile."""

import json
import re

from harness.cli import main
from harness.store import write_json
from harness.sweep.plan import Sweep

from sweep_fixtures import FAST, make_dataset, run_in_process


def test_folder_names_say_what_differs_from_the_profile():
    assert re.fullmatch(r"synthetic-rd-demo-[0-9a-f]{6}", Sweep().resolve().name)
    demo_epochs = Sweep().resolve().jobs[0].settings["epochs"]
    assert re.fullmatch(r"synthetic-rd-demo-[0-9a-f]{6}", Sweep(overrides={"epochs": demo_epochs}).resolve().name)
    name = Sweep(overrides={"epochs": 2, "image_size": 32}, seeds=(0, 1), categories=("disc",)).resolve().name
    assert re.fullmatch(r"synthetic-rd-demo-epochs2-imagesize32-seeds0\+1-disc-[0-9a-f]{6}", name)
    one, two = (Sweep(overrides={"epochs": e}).resolve().name for e in (1, 2))
    assert one != two and "-epochs1-" in one and "-epochs2-" in two


def fake_run(folder, planned, finished, failed, *, overrides=None, seeds=(0,), protocol="single"):
    write_json(
        folder / "sweep.json",
        {
            "sweep": {"dataset": "synthetic", "overrides": overrides or {}, "seeds": list(seeds)},
            "profile": "demo",
            "method": "rd",
            "seeds": list(seeds),
            "jobs": planned,
            "records": planned,
            "protocol": protocol,
        },
    )
    for job in finished:
        write_json(folder / "jobs" / job / "record.json", {"job_id": job})
    for job in failed:
        write_json(folder / "jobs" / job / "failure.json", {"error": "boom"})


def test_runs_lists_each_run_with_its_jobs(tmp_path, capsys):
    planned = [f"{c}-s0-abc" for c in ("weave", "tiles", "disc")]
    fake_run(tmp_path / "b-run", planned, planned[:1], planned[1:2], overrides={"epochs": 2, "image_size": 32})
    fake_run(tmp_path / "a-run", planned, planned, [], seeds=(0, 1), protocol="unified")
    (tmp_path / "not-a-run").mkdir()
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "sweep.json").write_text("{")
    assert main(["runs", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert [c.strip() for c in lines[0].split("|")[1:-1]] == [
        "run",
        "dataset",
        "method",
        "profile",
        "differs from the profile",
        "seeds",
        "done/failed/planned",
        "date",
    ]
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]] for line in lines[2:]}
    assert set(rows) == {"a-run", "b-run"}
    assert rows["b-run"][:6] == ["synthetic", "rd", "demo", "epochs 2, image_size 32", "0", "1/1/3"]
    assert rows["a-run"][3:6] == ["seeds 0,1, protocol unified", "0,1", "3/0/3"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d", rows["a-run"][6])
    assert captured.err.startswith("warning: ") and "broken/sweep.json" in captured.err
    assert main(["runs", str(tmp_path / "b-run")]) == 0  # one run folder
    assert "b-run" in capsys.readouterr().out
    assert main(["runs", str(tmp_path / "missing")]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_run_with_a_name_then_listed(tmp_path, monkeypatch, capsys):
    data = make_dataset(tmp_path / "data", categories=("amber",))
    monkeypatch.chdir(tmp_path)
    assert run_in_process("run", *FAST, "--root", str(data), "--seeds", "0", "--name", "first-try") == 0
    assert (tmp_path / "results" / "runs" / "first-try" / "jobs").is_dir()
    assert run_in_process("run", *FAST, "--root", str(data), "--name", "x", "--out", "y") == 2
    assert run_in_process("run", *FAST, "--root", str(data), "--name", "../up") == 2
    assert not (tmp_path / "y").exists() and not (tmp_path / "results" / "up").exists()
    capsys.readouterr()
    assert main(["runs"]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if "first-try" in line)
    cells = [c.strip() for c in row.split("|")[1:-1]]
    assert cells[1:4] == ["folder", "rd", "demo"] and cells[5:7] == ["0", "1/0/1"]
    assert cells[4] == "batch_size 6, epochs 1"  # 64 px and seed 0 are the profile's
    sweep = json.loads((tmp_path / "results" / "runs" / "first-try" / "sweep.json").read_text())
    assert sweep["records"] and sweep["profile"] == "demo"


def test_a_failed_unified_job_fails_its_records(tmp_path, capsys):
    records = [f"{c}-s0-abc" for c in ("weave", "tiles")] + [f"{c}-s1-def" for c in ("weave", "tiles")]
    write_json(
        tmp_path / "sweep.json",
        {
            "sweep": {"dataset": "synthetic"},
            "profile": "demo",
            "seeds": [0, 1],
            "protocol": "unified",
            "jobs": ["unified-s0-abc", "unified-s1-def"],
            "records": records,
        },
    )
    write_json(tmp_path / "jobs" / "unified-s1-def" / "failure.json", {"error": "boom"})
    for record in records[:2]:
        write_json(tmp_path / "jobs" / record / "record.json", {"job_id": record})
    assert main(["runs", str(tmp_path)]) == 0
    assert "| 2/2/4 " in capsys.readouterr().out
