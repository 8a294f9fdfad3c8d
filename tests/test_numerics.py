"""The portable CPU mode: the same bits whatever the CPU offers, in every backend.

Other CPUs are emulated on this one by capping what the libraries may use (outer environment
variables, read when torch loads): ATen's kernels at AVX2 or scalar, oneDNN at AVX2 or SSE4.1, MKL
at AVX2 or SSE4.2, and MKL made to take its Intel code paths (it ignores its caps on other vendors'
CPUs). A native run follows the caps (different sums, different bits); a portable run pins its own
code paths and must not.
"""

import json
import os
import re
import shutil
import subprocess
import sys

import pytest
import torch

from harness.errors import HarnessError
from harness.sweep import numerics

from sweep_fixtures import make_dataset

TINY = [
    "--dataset",
    "folder",
    "--profile",
    "demo",
    "--categories",
    "amber",
    "--image-size",
    "64",
    "--epochs",
    "2",
    "--batch-size",
    "6",
    "--seeds",
    "0",
    "--device",
    "cpu",
]
NATIVE_BEST = torch.backends.cpu.get_cpu_capability()
MACHINES = {
    "as is": {},
    "AVX2": {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"},
    "no vector ISA": {
        "ATEN_CPU_CAPABILITY": "default",
        "ONEDNN_MAX_CPU_ISA": "SSE41",
        "MKL_ENABLE_INSTRUCTIONS": "SSE4_2",
    },
}
CAP_VARIABLES = (
    "ATEN_CPU_CAPABILITY",
    "ONEDNN_MAX_CPU_ISA",
    "MKL_ENABLE_INSTRUCTIONS",
    "MKL_CBWR",
    "OMP_NUM_THREADS",
    "LD_PRELOAD",
    numerics.MARKER,
)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("numerics") / "data", categories=("amber",))


def run(data, out, machine: dict, *extra: str) -> dict:
    """One tiny job through the command line on an emulated machine; its record."""
    env = {k: v for k, v in os.environ.items() if k not in CAP_VARIABLES} | machine | {"OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "harness", "run", *TINY, "--root", str(data), "--out", str(out), *extra],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (record,) = [json.loads(p.read_text()) for p in out.glob("jobs/*/record.json")]
    return record


def bits(record: dict) -> tuple:
    """Everything training and scoring produced: the loss of every epoch and every metric, exactly."""
    return (
        tuple(entry["loss"] for entry in record["history"]),
        tuple(sorted((name, metric["value"]) for name, metric in record["metrics"].items())),
    )


def intel_mkl(folder) -> dict:
    """Environment that makes MKL take its Intel code paths on any x86-64 CPU (on an AMD CPU MKL otherwise
    ignores its instruction caps): a preloaded library answering MKL's vendor query with yes."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        return {}
    source = folder / "intel.c"
    source.write_text("int mkl_serv_intel_cpu_true(void) { return 1; }\nint mkl_serv_intel_cpu(void) { return 1; }\n")
    subprocess.run([compiler, "-shared", "-fPIC", "-o", str(folder / "libintel.so"), str(source)], check=True)
    return {"LD_PRELOAD": str(folder / "libintel.so")}


def no_vector_math(folder) -> dict:
    """Environment in which any call of MKL's vector math (vms*/vmd*/vs*/vd*: exp, sqrt, ...) aborts the process
    with its name: a preloaded library defining every such function that torch exports ({} without a C compiler
    and nm). Their code paths depend on the CPU in every MKL_CBWR mode: the compatible branch's square root is
    rsqrtps and a Newton step, and rsqrtps gives other bits on Intel than on AMD CPUs."""
    compiler, nm = shutil.which("cc") or shutil.which("gcc"), shutil.which("nm")
    library = os.path.join(os.path.dirname(torch.__file__), "lib", "libtorch_cpu.so")
    if compiler is None or nm is None or not os.path.isfile(library):
        return {}
    listed = subprocess.run([nm, "-D", "--defined-only", library], capture_output=True, text=True, check=True)
    names = [
        fields[2]
        for fields in (line.split() for line in listed.stdout.splitlines())
        if len(fields) == 3 and fields[1] == "T" and re.fullmatch(r"vm?[sdcz][A-Z][A-Za-z0-9]*", fields[2])
    ]
    assert any(name == "vmsSqrt" for name in names), "torch no longer exports MKL's vector math: revisit this test"
    body = "".join(
        f'void {name}(void) {{ fputs("MKL vector math called: {name}\\n", stderr); abort(); }}\n' for name in names
    )
    source = folder / "novml.c"
    source.write_text("#include <stdio.h>\n#include <stdlib.h>\n" + body)
    subprocess.run([compiler, "-shared", "-fPIC", "-o", str(folder / "libnovml.so"), str(source)], check=True)
    return {"LD_PRELOAD": str(folder / "libnovml.so")}


def test_portable_jobs_use_no_cpu_dependent_vector_math(data, tmp_path):
    machine = no_vector_math(tmp_path)
    if not machine:
        pytest.skip("needs a C compiler and nm to intercept MKL's vector math")
    check = subprocess.run(
        [sys.executable, "-c", "import torch; torch.sqrt(torch.ones(8))"],
        capture_output=True,
        text=True,
        env=os.environ | machine,
    )
    assert check.returncode != 0 and "MKL vector math called: vmsSqrt" in check.stderr  # the trap works
    record = run(data, tmp_path / "run", machine, "--portable")  # training, predict and metrics: no call
    assert record["provenance"]["machine"]["numerics"] == "portable"


@pytest.fixture(scope="module")
def portable(data, tmp_path_factory):
    """The tiny job in portable mode on every emulated machine (an Intel MKL too, where a C compiler is at hand)."""
    out = tmp_path_factory.mktemp("portable")
    machines = dict(MACHINES)
    intel = intel_mkl(out)
    if intel:
        machines["Intel MKL, AVX2"] = intel | MACHINES["AVX2"]
    return {
        name: run(data, out / f"run-{i}", machine, "--portable") for i, (name, machine) in enumerate(machines.items())
    }


@pytest.mark.slow  # with the portable runs it compares with (a module fixture): about a minute on 2 cores
@pytest.mark.skipif(NATIVE_BEST == "DEFAULT", reason="this CPU has no vector ISA for ATen: nothing to emulate")
def test_native_results_follow_the_cpu_portable_results_do_not(data, portable, tmp_path):
    native = {name: run(data, tmp_path / name.replace(" ", "-"), MACHINES[name]) for name in ("as is", "no vector ISA")}
    assert bits(native["as is"]) != bits(native["no vector ISA"])  # the emulation really changes the sums
    assert len({bits(record) for record in portable.values()}) == 1, {n: bits(r) for n, r in portable.items()}
    for record in portable.values():
        machine = record["provenance"]["machine"]
        assert machine["numerics"] == "portable" and machine["cpu_capability"] == "DEFAULT"
        assert not machine["onednn_enabled"] and not machine["nnpack_enabled"] and machine["torch_threads"] == 1
    assert native["as is"]["provenance"]["machine"]["numerics"] == "native"
    assert native["as is"]["job_id"] != portable["as is"]["job_id"]  # a portable result is another result


@pytest.mark.slow  # uses the portable runs too: a sweep in new processes each (10-15 s), after the fixture's
@pytest.mark.parametrize("backend", ["local", "dask"])
def test_every_backend_runs_its_jobs_in_the_portable_mode(data, portable, tmp_path, backend):
    if backend == "dask":
        pytest.importorskip("distributed")
    other = run(data, tmp_path / backend, MACHINES["AVX2"], "--portable", "--backend", backend, "--jobs", "1")
    assert bits(other) == bits(portable["AVX2"])
    assert other["provenance"]["machine"]["numerics"] == "portable"
    assert other["provenance"]["pid"] != portable["AVX2"]["provenance"]["pid"]


def test_a_process_started_without_the_environment_refuses_portable_jobs(monkeypatch):
    for key in numerics.PORTABLE_ENV:
        monkeypatch.delenv(key, raising=False)
    with (
        pytest.raises(HarnessError, match="not started in portable mode.*ATEN_CPU_CAPABILITY=default"),
        numerics.numerics("portable"),
    ):
        pass
    with numerics.numerics("native"):
        assert numerics.describe()["numerics"] == "native"


def test_run_portable_in_process_says_how_to_start_it(monkeypatch, tmp_path):
    from harness.cli import main

    for key in numerics.PORTABLE_ENV:
        monkeypatch.delenv(key, raising=False)
    assert main(["run", "--portable", "--epochs", "1", "--out", str(tmp_path / "run")]) == 2
    assert not (tmp_path / "run").exists()


def test_portable_is_a_cpu_mode(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "harness", "run", "--portable", "--device", "cuda", "--out", str(tmp_path / "run")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2 and "--portable is a CPU mode" in result.stderr
    assert result.stderr.count("\n") == 1 and not (tmp_path / "run").exists()


def test_the_restart_keeps_an_explicit_thread_count():
    env = numerics.portable_environment({"OMP_NUM_THREADS": "4", "ATEN_CPU_CAPABILITY": "avx2"})
    assert env["OMP_NUM_THREADS"] == "4" and env["ATEN_CPU_CAPABILITY"] == "default"
    assert numerics.portable_environment({})["OMP_NUM_THREADS"] == "1"
