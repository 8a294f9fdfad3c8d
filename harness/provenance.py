"""What a result was computed with: software versions, code version, hardware."""

from __future__ import annotations

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
        commit = subprocess.run(["git", "-C", str(source), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
        if commit.returncode != 0:
            return None
        dirty = subprocess.run(["git", "-C", str(source), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5)
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
        "cuda": torch.version.cuda if cuda else None,
        "cudnn": torch.backends.cudnn.version() if cuda else None,
        "platform": platform.platform(),
        "cpu_count": __import__("os").cpu_count(),
    }


def device_name(device: str) -> str:
    import torch

    if device.startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.get_device_name(torch.device(device))
    return platform.processor() or platform.machine()


def peak_memory() -> dict:
    """Peak resident memory of this process (MiB) and, on CUDA, the peak allocated GPU memory (MiB)."""
    import torch

    rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if sys.platform == "darwin":
        rss_kib //= 1024  # bytes there
    memory = {"peak_rss_mib": round(rss_kib / 1024, 1)}
    if torch.cuda.is_available():
        memory["cuda_max_allocated_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return memory
