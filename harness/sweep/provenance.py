"""What a result was computed with: software versions, code version, hardware."""

from __future__ import annotations

import os
import platform
import resource
import subprocess
import sys
from pathlib import Path

import harness


def git_commit() -> str | None:
    """The commit of the harness checkout, with '+dirty' when it has uncommitted changes; None outside git."""
    source = Path(harness.__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(source), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5
        )
        if commit.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "-C", str(source), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
        )
        return commit.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def software() -> dict:
    import numpy
    import torch
    import torchvision

    cuda = torch.cuda.is_available()
    return {
        "harness": harness.__version__,
        "git_commit": git_commit(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "numpy": numpy.__version__,
        **{
            key: _version(name)
            for key, name in (("pillow", "pillow"), ("scipy", "scipy"), ("scikit_learn", "scikit-learn"))
        },
        "cuda": torch.version.cuda if cuda else None,
        "cudnn": torch.backends.cudnn.version() if cuda else None,
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
    }


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo on Linux), else what the platform module knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _library_versions() -> dict:
    """MKL and oneDNN versions as torch reports them (they decide the CPU kernels)."""
    import re

    import torch

    config = torch.__config__.show()
    mkl = re.search(r"Math Kernel Library Version ([\d.]+)", config)
    onednn = re.search(r"MKL-DNN v([\w.]+)", config)
    return {"mkl": mkl.group(1) if mkl else None, "onednn": onednn.group(1) if onednn else None}


def machine(device: str = "cpu", cuda_numerics: dict | None = None) -> dict:
    """The machine kind a result depends on: CPU model and the kernels torch dispatches to, the numerics
    mode and thread count; on CUDA the GPU and the switches the method ran with (TF32, cuDNN)."""
    import torch

    from harness.sweep import numerics

    facts = {"cpu_model": cpu_model(), **numerics.describe(), **_library_versions(), "gpu": None}
    if device.startswith("cuda") and torch.cuda.is_available():
        facts |= {"gpu": torch.cuda.get_device_name(torch.device(device)), **(cuda_numerics or {})}
    return facts


def _version(distribution: str) -> str | None:
    """An installed package's version, without importing it; None when it is not installed."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(distribution)
    except PackageNotFoundError:
        return None


def device_name(device: str) -> str:
    import torch

    if device.startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.get_device_name(torch.device(device))
    return platform.processor() or platform.machine()


_rss_reset = False


def reset_peak_memory() -> None:
    """Start a job's peak-memory window: the peak RSS (Linux: /proc/self/clear_refs) and CUDA's peak statistics.

    Without this, a job run after others in the same process would report the process's peak so far.
    """
    global _rss_reset
    _rss_reset = reset_rss_peak()  # False: peak_memory() then says the peak is the process's
    import torch

    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.reset_peak_memory_stats()


def reset_rss_peak() -> bool:
    """Reset the kernel's resident-set high-water mark of this process (Linux >= 4.0); False when it cannot."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def rss_peak_mib() -> float:
    """The resident-set high-water mark (since the last reset_rss_peak, where that worked), MiB."""
    return round(_peak_rss_kib()[0] / 1024, 1)


def _peak_rss_kib() -> tuple[int, str]:
    """The peak resident memory (KiB) and its scope: the job's when reset_peak_memory could reset it."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]), "job" if _rss_reset else "process"
    except (OSError, ValueError, IndexError):
        pass
    rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if sys.platform == "darwin":
        rss_kib //= 1024  # bytes there
    return rss_kib, "process"


def peak_memory(device: str = "cpu") -> dict:
    """Peak resident memory (MiB) and, on CUDA, the peak allocated memory of `device` (MiB)."""
    import torch

    rss_kib, scope = _peak_rss_kib()
    memory = {"peak_rss_mib": round(rss_kib / 1024, 1), "peak_rss_scope": scope}
    if device.startswith("cuda") and torch.cuda.is_available():
        memory["cuda_max_allocated_mib"] = round(torch.cuda.max_memory_allocated(torch.device(device)) / 2**20, 1)
    return memory


def execution() -> dict:
    """Where and how the job ran: host, process, torch threads, the CUDA devices it could see."""
    import torch

    return {
        "host": platform.node(),
        "pid": os.getpid(),
        "torch_threads": torch.get_num_threads(),
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
    }
