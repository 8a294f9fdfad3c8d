"""Floating-point modes of a run on the CPU: `native` (fastest) and `portable` (meant to give the same bits
across x86-64 CPUs; docs/drift-check.md says what has been checked).

Training amplifies the last-bit differences between CPUs: ATen's kernels are compiled for several
instruction sets (scalar, AVX2, AVX-512) and dispatch on the CPU; oneDNN's convolutions and MKL's
matrix products pick ISA-specific code paths (MKL also differs between vendors); NNPACK has its own
kernels. Each sums in another order, and after a few epochs the metrics differ by points.

The portable mode pins all of them to one code path: ATen's scalar kernels (ATEN_CPU_CAPABILITY=default),
MKL's conditional numerical reproducibility in its compatible (SSE2) branch (MKL_CBWR=COMPATIBLE),
PyTorch's own convolutions instead of oneDNN and NNPACK. MKL's vector math (torch.exp, torch.sqrt, ... on
float tensors) stays CPU-dependent even then: its compatible branch computes square roots with rsqrtps,
whose bits differ between Intel and AMD CPUs. The methods therefore avoid it (fused Adam, whose square root
is exact; the Gaussian kernel from math.exp), and tests/test_numerics.py fails a portable job that calls it.
The environment variables are read when torch
and MKL load, so a process must start with them: `python -m harness run --portable` restarts itself
once with them set, local child processes and local dask workers inherit them, and a job checks them
before it runs (a dask worker started without them fails the job with a message saying so).
Results then depend only on the package versions and the thread count (one thread unless
OMP_NUM_THREADS says otherwise), which provenance records; docs/drift-check.md has the evidence.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator, Mapping

from harness.errors import HarnessError

MODES = ("native", "portable")
# Read once when torch and MKL load: they must be in the environment before `import torch`.
PORTABLE_ENV = {"ATEN_CPU_CAPABILITY": "default", "MKL_CBWR": "COMPATIBLE"}
THREADS_ENV = "OMP_NUM_THREADS"
MARKER = "HARNESS_NUMERICS"  # set by the restart: the process was started in portable mode


def process_is_portable(environ: Mapping[str, str] | None = None) -> bool:
    """Whether this process's environment pins every load-time setting of the portable mode."""
    values = os.environ if environ is None else environ
    return all(values.get(key, "").lower() == value.lower() for key, value in PORTABLE_ENV.items())


def portable_environment(environ: dict | None = None) -> dict:
    """`environ` with the portable mode's variables set (they win over caps set outside); one thread by default."""
    environ = dict(os.environ if environ is None else environ)
    environ.update(PORTABLE_ENV)
    environ.setdefault(THREADS_ENV, "1")
    environ[MARKER] = "portable"
    return environ


def restart_portable(argv: list[str]) -> None:
    """Replace this process by `python -m harness ARGV` in the portable environment (never returns)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, "-m", "harness", *argv], portable_environment())


def missing_environment() -> str:
    """What a process lacks for the portable mode, as the variables to set."""
    return " ".join(f"{key}={value}" for key, value in PORTABLE_ENV.items())


@contextlib.contextmanager
def numerics(mode: str) -> Iterator[None]:
    """Run a job's computation in `mode`; portable fails (HarnessError) in a process started without its
    environment, then switches off oneDNN and NNPACK for the duration and restores them afterwards."""
    if mode not in MODES:
        raise HarnessError(f"unknown numerics mode '{mode}'; choose one of {', '.join(MODES)}")
    if mode == "native":
        yield
        return
    import torch

    capability = torch.backends.cpu.get_cpu_capability()
    if not process_is_portable() or capability != "DEFAULT":
        raise HarnessError(
            f"this process (pid {os.getpid()}) was not started in portable mode (ATen dispatches to "
            f"{capability}): start it with {missing_environment()} in its environment "
            "(`python -m harness run --portable` does so itself; dask workers need it when started)"
        )
    # torch._C's switch: the `enabled` property's type is not a bool to the type checker
    saved_onednn = torch._C._get_mkldnn_enabled()
    saved_nnpack = torch.backends.nnpack.set_flags(False)
    torch._C._set_mkldnn_enabled(False)
    try:
        yield
    finally:
        torch._C._set_mkldnn_enabled(saved_onednn)
        torch.backends.nnpack.set_flags(*saved_nnpack)


def describe() -> dict:
    """The floating-point facts of this process: what provenance records as the machine kind."""
    import torch

    return {
        "numerics": "portable" if process_is_portable() and not torch._C._get_mkldnn_enabled() else "native",
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "mkl_cbwr": os.environ.get("MKL_CBWR"),
        "onednn_enabled": bool(torch.backends.mkldnn.enabled),
        "nnpack_enabled": bool(torch._C._get_nnpack_enabled()),
        "torch_threads": torch.get_num_threads(),
    }
