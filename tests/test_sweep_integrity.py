"""Sweep integrity, end to end: what a job's identity covers (its data, by content), one `run` per run folder,
nothing written for an invalid sweep, duplicates, leftovers, messages, logs, threads, and the dask backend's
timeouts, addresses and Ctrl-C."""

import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from PIL import Image

from harness.datasets.folder import FolderDataset

from cli_fixtures import run_cli
from sweep_fixtures import ENV, FAST, harness, make_dataset, metric_values, records


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """The tiny data set, one copy per test module (tests that change data copy it first)."""
    return make_dataset(tmp_path_factory.mktemp("integrity") / "data")


def _black_out(image: Path) -> None:
    """Overwrite an image with a black one of the same size in bytes and the same modification time."""
    stat = image.stat()
    original = image.read_bytes()
    Image.new("RGB", Image.open(image).size).save(image, compress_level=9)  # a few hundred bytes
    black = image.read_bytes()
    assert len(black) < len(original)
    image.write_bytes(black + b"\0" * (len(original) - len(black)))  # decoders ignore bytes after IEND
    os.utime(image, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert image.stat().st_size == stat.st_size and image.read_bytes() != original


def _one_line_error(result: subprocess.CompletedProcess, *words: str) -> None:
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr, result.stderr
    for word in words:
        assert word in result.stderr, result.stderr


# ---- 1. a job's identity includes its data, by content ------------------------------------------


@pytest.mark.slow  # three sweeps in new processes: about half a minute on 2 cores
def test_the_same_command_on_other_data_runs_again_in_its_own_folder(tmp_path, data):
    other = tmp_path / "other"
    shutil.copytree(data, other)
    _black_out(other / "amber" / "test" / "good" / "000.png")
    args = ["run", *FAST, "--categories", "amber"]
    first = harness(*args, "--root", str(data), cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    second = harness(*args, "--root", str(other), cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert "already done, skipped" not in second.stdout and "1 job(s) run, 0 already done" in second.stdout
    folders = sorted((tmp_path / "results" / "runs").iterdir())
    assert len(folders) == 2  # the run folder's name follows the data too
    fingerprints = {records(folder)["amber"]["data"]["fingerprint"] for folder in folders}
    assert len(fingerprints) == 2
    # the same data elsewhere are the same data: the sweep resumes in the first folder
    copy = tmp_path / "copy"
    shutil.copytree(data, copy)
    third = harness(*args, "--root", str(copy), cwd=tmp_path)
    assert third.returncode == 0 and "already done, skipped" in third.stdout


def test_a_run_folder_whose_data_changed_says_so_and_runs_again(tmp_path, data):
    root = tmp_path / "data"
    shutil.copytree(data, root)
    out = tmp_path / "run"
    args = ["run", *FAST, "--categories", "amber", "--root", str(root), "--out", str(out)]
    assert harness(*args).returncode == 0
    (old_job,) = (out / "jobs").iterdir()
    old_fingerprint = records(out)["amber"]["data"]["fingerprint"]

    _black_out(root / "amber" / "train" / "good" / "003.png")  # same name, size and mtime; other pixels
    again = harness(*args)
    assert again.returncode == 0, again.stderr
    assert "amber: the data changed" in again.stdout and "already done, skipped" not in again.stdout
    assert "1 job(s) run, 0 already done, 0 failed" in again.stdout
    (new_job,) = (out / "jobs").iterdir()  # the folder holds results on one version of the data only
    assert new_job.name != old_job.name and (out / "superseded" / old_job.name / "record.json").is_file()
    assert records(out)["amber"]["data"]["fingerprint"] != old_fingerprint
    sweep = json.loads((out / "sweep.json").read_text())
    assert sweep["data_fingerprints"] == {"amber": records(out)["amber"]["data"]["fingerprint"]}


def test_a_fingerprint_reflects_content_and_unchanged_files_are_not_read_again(tmp_path, monkeypatch):
    from harness import files

    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    root = make_dataset(tmp_path / "data", categories=("amber",))
    first = FolderDataset(root).fingerprint("amber")
    with monkeypatch.context() as patch:  # a second look at unchanged files: their hashes come from the cache
        patch.setattr(files, "_sha256", lambda path: pytest.fail(f"{path} was read again"))
        assert FolderDataset(root).fingerprint("amber") == first
    _black_out(root / "amber" / "test" / "blob" / "001.png")
    changed = FolderDataset(root).fingerprint("amber")
    assert changed != first
    # the decode-once array cache is keyed by the fingerprint: it serves the new pixels, not the old ones
    loaded = [FolderDataset(root, cache=True).load("amber", 64) for _ in range(2)]
    assert loaded[1].provenance["array_cache"].startswith("hit") and loaded[1].fingerprint == changed
    blob = loaded[1].test.paths.index("amber/test/blob/001.png")
    assert not loaded[1].test.images[blob].any()


# ---- 2. one `run` per run folder ---------------------------------------------------------------


@pytest.mark.slow  # sweeps in new processes, one killed: about half a minute on 2 cores
def test_a_second_run_on_a_busy_folder_stops_with_one_line_and_a_killed_run_leaves_no_lock(tmp_path, data, processes):
    out = tmp_path / "run"
    args = ["run", *FAST, "--categories", "amber", "--root", str(data), "--out", str(out)]
    first = processes(*args[:-4], "--epochs", "300", *args[-4:])
    deadline = time.monotonic() + 180
    while not list((out / "jobs").glob("*/log.txt")):
        assert first.poll() is None and time.monotonic() < deadline, "the first run did not start its job"
        time.sleep(0.1)
    started = time.monotonic()
    second = harness(*args, "--epochs", "300", timeout=120)
    _one_line_error(second, f"{out}: in use by another run (pid {first.pid} on", "--out")
    assert time.monotonic() - started < 60
    first.kill()
    first.wait()
    # The kernel released the killed process's lock: a run with other epochs gets past the lock and is refused
    # only because the folder holds another sweep's settings (checked under the lock).
    after = harness(*args)
    assert after.returncode == 2 and "in use" not in after.stderr, after.stderr
    assert "holds a sweep with other settings" in after.stderr


# ---- 6. nothing is written until the sweep is valid --------------------------------------------


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


@pytest.mark.parametrize(
    "flags, words",
    [
        (["--backbone", "resnet999"], ["backbone"]),
        (["--weights", "/nonexistent/teacher.pth"], ["/nonexistent/teacher.pth"]),
        (["--image-size", "100"], ["image_size", "multiple of 32"]),
        pytest.param(
            ["--device", "cuda"],
            ["CUDA is not available"],
            marks=pytest.mark.skipif(_cuda(), reason="this machine has CUDA"),
        ),
        pytest.param(
            ["--backend", "dask", "--gpus", "0"],
            ["--gpus 0: CUDA is not available"],
            marks=pytest.mark.skipif(_cuda(), reason="this machine has CUDA"),
        ),
        (
            ["--backend", "dask", "--dask-address", "tcp://127.0.0.1:notaport"],
            ["--dask-address", "not a scheduler address"],
        ),
        (["--seeds", "0,0"], ["seed '0' is listed twice"]),
        (["--categories", "amber,amber"], ["category 'amber' is listed twice"]),
        (["--seeds", ""], ["--seeds: expected comma-separated integers"]),
        (["--categories", ""], ["--categories: expected comma-separated names"]),
    ],
)
def test_an_invalid_sweep_is_one_line_and_writes_nothing(tmp_path, data, flags, words):
    out = tmp_path / "run"
    result = run_cli("run", *FAST, "--root", str(data), "--out", str(out), *flags)  # in-process: no job starts
    _one_line_error(result, *words)
    assert not out.exists()


# ---- 8. leftovers of a kill; out of memory -----------------------------------------------------


def test_temporary_files_of_a_killed_writer_are_removed_on_the_next_run(tmp_path, data):
    out = tmp_path / "run"
    args = ["run", *FAST, "--categories", "amber", "--root", str(data), "--out", str(out)]
    assert harness(*args).returncode == 0
    (job,) = (out / "jobs").iterdir()
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        stale = job / f".predictions.npz.{gone.pid}-abc123.tmp"  # as atomic_write names them
        stale.write_bytes(b"half a file")
        live = job / f".record.json.{alive.pid}-def456.tmp"
        live.write_bytes(b"being written")
        again = harness(*args)
        assert again.returncode == 0 and "removed 1 temporary file(s)" in again.stdout
        assert not stale.exists() and live.exists()
    finally:
        alive.kill()
        alive.wait()


def _address_space_after_imports() -> int:
    probe = (
        "import harness.cli, harness.sweep.job, harness.methods.rd, torch, torchvision;"
        "print([l.split()[1] for l in open('/proc/self/status') if l.startswith('VmPeak')][0])"
    )
    return int(subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout) * 1024


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
def test_a_job_out_of_memory_says_what_ran_out_and_what_to_lower(tmp_path, data):
    # Address space for the imports plus 1.5 GiB: decoding 12 training images at 16384 px (9 GiB) fails at once.
    limit = _address_space_after_imports() + 1536 * 2**20
    out = tmp_path / "run"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "harness",
            "run",
            *FAST,
            "--image-size",
            "16384",
            "--categories",
            "amber",
            "--root",
            str(data),
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=os.environ | {"OMP_NUM_THREADS": "1"},
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (limit, limit)),
    )
    assert result.returncode == 1, result.stderr
    (failure,) = (out / "jobs").glob("*/failure.json")
    message = json.loads(failure.read_text())["message"]
    assert "out of memory (RAM) while loading the data at image_size 16384, batch_size 6" in message, message
    assert "lower --image-size" in message


# ---- 9. provenance; 11. no cursor escapes in logs ----------------------------------------------


@pytest.mark.parametrize(
    "backend",
    [[], pytest.param(["--backend", "local", "--jobs", "1"], marks=pytest.mark.slow)],  # the local one: ~25 s
)
def test_piped_output_and_job_logs_hold_no_progress_bar_escapes(tmp_path, data, backend):
    out = tmp_path / "run"
    # bytes, not text: text mode would turn a progress bar's carriage returns into newlines
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "harness",
            "run",
            *FAST,
            "--epochs",
            "2",
            "--root",
            str(data),
            "--out",
            str(out),
            *backend,
        ],
        capture_output=True,
        timeout=300,
        check=False,
        env=ENV | {"HARNESS_CACHE": os.environ.get("HARNESS_CACHE", "")},
    )
    assert result.returncode == 0, result.stderr
    for text in (result.stdout, result.stderr, *(p.read_bytes() for p in (out / "jobs").glob("*/log.txt"))):
        assert b"\x1b[" not in text and b"\r" not in text, text[:500]
    assert result.stdout.count(b"seed 0: I-AUROC") == 2  # a plain line per job
    for record in records(out).values():
        provenance = record["provenance"]
        assert provenance["pillow"] and provenance["scipy"] and provenance["scikit_learn"]
        assert provenance["timestamp"].endswith("+00:00")
        assert record["timings"]["build"] > 0
        assert record["timings"]["total"] >= sum(record["timings"][k] for k in ("build", "load", "fit", "predict"))


# ---- 5. every backend computes with the user's thread count ------------------------------------


@pytest.mark.slow  # a sweep on each backend (a dask cluster among them): about half a minute on 2 cores
def test_local_and_dask_use_the_users_thread_count_and_match_serial(tmp_path, data):
    pytest.importorskip("distributed")
    # One job per backend, one process at a time: left to themselves, local and dask would give it all the
    # cores (2 or more); the user's setting says 1.
    threads = {"OMP_NUM_THREADS": "1"}
    runs = {}
    for name, flags in (
        ("serial", []),
        ("local", ["--backend", "local", "--jobs", "1"]),
        ("dask", ["--backend", "dask", "--jobs", "1"]),
    ):
        runs[name] = tmp_path / name
        result = harness(
            "run", *FAST, "--categories", "amber", "--root", str(data), "--out", str(runs[name]), *flags, env=threads
        )
        assert result.returncode == 0, result.stderr
    serial = records(runs["serial"])
    for name in ("local", "dask"):
        found = records(runs[name])
        for category, record in serial.items():
            assert found[category]["provenance"]["torch_threads"] == record["provenance"]["torch_threads"] == 1, name
            assert metric_values(found[category]) == metric_values(record), (name, category)


# ---- 3. dask: the timeout times the job's own work and keeps its log ---------------------------


def test_dask_job_timeout_counts_the_jobs_own_work_only(tmp_path, data):
    pytest.importorskip("distributed")
    out = tmp_path / "run"
    # The job's own work takes ~3 s here; a fresh worker first spends ~5 s importing torch and building the model.
    result = harness(
        "run",
        *FAST,
        "--categories",
        "amber",
        "--root",
        str(data),
        "--backend",
        "dask",
        "--jobs",
        "1",
        "--job-timeout",
        "6",
        "--out",
        str(out),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    record = records(out)["amber"]
    assert sum(record["timings"][k] for k in ("load", "fit", "predict", "metrics")) < 6


def test_a_dask_job_killed_at_its_timeout_keeps_its_log(tmp_path, data):
    pytest.importorskip("distributed")
    out = tmp_path / "run"
    result = harness(
        "run",
        *FAST,
        "--epochs",
        "300",
        "--categories",
        "amber",
        "--root",
        str(data),
        "--backend",
        "dask",
        "--jobs",
        "1",
        "--job-timeout",
        "4",
        "--out",
        str(out),
    )
    assert result.returncode == 1, result.stderr
    (log,) = (out / "jobs").glob("*/log.txt")
    text = log.read_text()
    # the lines the job logged on its worker before it was killed (how many epochs depends on the machine's load)
    assert "job amber-s0-" in text and "model: built" in text and "load: 12 training" in text, text
    assert "TIMEOUT: timed out" in text.splitlines()[-1]


# ---- 4. dask addresses and Ctrl-C --------------------------------------------------------------


@pytest.fixture
def silent_server():
    """A TCP server on 127.0.0.1 that accepts connections and never says anything."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    accepted = []

    def accept():
        while True:
            try:
                accepted.append(server.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    yield f"127.0.0.1:{server.getsockname()[1]}"
    server.close()
    for connection in accepted:
        connection.close()


def test_a_dask_address_that_is_not_a_scheduler_is_one_line_in_bounded_time(tmp_path, data, silent_server):
    pytest.importorskip("distributed")
    started = time.monotonic()
    result = harness(
        "run",
        *FAST,
        "--root",
        str(data),
        "--backend",
        "dask",
        "--dask-address",
        silent_server,
        "--out",
        str(tmp_path / "run"),
        timeout=120,
    )
    _one_line_error(result, f"--dask-address {silent_server}: no dask scheduler answered")
    assert time.monotonic() - started < 90


def test_ctrl_c_on_dask_prints_no_worker_traceback(tmp_path, data, processes):
    pytest.importorskip("distributed")
    out = tmp_path / "run"
    stdout = tmp_path / "stdout.txt"
    with open(stdout, "w") as handle:
        process = processes(
            "run",
            *FAST,
            "--epochs",
            "300",
            "--root",
            str(data),
            "--backend",
            "dask",
            "--jobs",
            "2",
            "--out",
            str(out),
            stdout=handle,
            start_new_session=True,
        )  # a terminal's process group
        deadline = time.monotonic() + 180
        while "running 2 job(s)" not in stdout.read_text():
            assert process.poll() is None and time.monotonic() < deadline, process.stderr.read()
            time.sleep(0.1)
        time.sleep(4)  # the workers import torch and train
        os.killpg(process.pid, signal.SIGINT)  # Ctrl-C: the whole group, workers included
        _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr
    assert stderr.strip().splitlines()[0].startswith("interrupted by SIGINT"), stderr


# ---- 10. one home for the run options ----------------------------------------------------------


def test_every_run_flag_has_one_entry_in_the_option_table():
    from harness.cli import build_parser
    from harness.sweep.options import OPTION_KINDS, SETTING_KEYS, RunOptions

    run = build_parser()._subparsers._group_actions[0].choices["run"]
    # --offline is a switch of this process (no downloads), not an option of the sweep
    # --name names the run folder under results/runs, a spelling of --out for the command line
    flags = {action.dest for action in run._actions} - {"help", "sweep", "data_option", "offline", "run_name"}
    assert flags == set(OPTION_KINDS) - {"settings", "data_options"}  # a flag and a sweep-file key each
    assert set(SETTING_KEYS) <= set(OPTION_KINDS)
    assert set(OPTION_KINDS) - set(SETTING_KEYS) <= set(RunOptions.__dataclass_fields__)
