"""How RD runs on the CPU: the precision it may use, the memory layout and the optimizer kernel.

The faster choices here change results only by float rounding, so they are taken only while oneDNN
is on. Portable numerics (harness.sweep.numerics) and the batch-size-invariant predict of
deterministic mode switch oneDNN off, and then everything runs as before, bit for bit. The fused Adam
kernel is the exception: it is used on every CPU path, because it is also the portable one (see `adam`).
"""

from __future__ import annotations

import os
import shutil

import torch

from harness.errors import HarnessError

# CPU flags (Linux /proc/cpuinfo names) with native bfloat16 dot products; without them oneDNN emulates bf16 slowly
BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_flags() -> set[str]:
    """The instruction-set flags of the first CPU in /proc/cpuinfo (empty where there is none)."""
    try:
        with open("/proc/cpuinfo") as file:
            for line in file:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cpu_supports_bf16() -> bool:
    return torch.backends.mkldnn.is_available() and any(flag in cpu_flags() for flag in BF16_FLAGS)


def cpu_precision(requested: str) -> str:
    """The precision RD runs at on the CPU: bf16 where the CPU computes it natively (else a HarnessError), fp32
    otherwise (float16 autocast has no fast CPU kernels, so fp16 falls back to fp32)."""
    if requested != "bf16":
        return "fp32"
    if not cpu_supports_bf16():
        raise HarnessError(
            "precision bf16 on the CPU needs native bfloat16 instructions (AVX512-BF16 or AMX), which "
            "this CPU lacks; use precision fp32"
        )
    if not onednn_on():
        raise HarnessError(
            "precision bf16 on the CPU runs on oneDNN, which portable numerics switch off; use precision fp32"
        )
    return "bf16"


def onednn_on() -> bool:
    """Whether the rounding-only speed paths may be taken (see the module docstring)."""
    return bool(torch.backends.mkldnn.enabled)


def cpu_layout() -> torch.memory_format:
    """Layout of the networks and their inputs on the CPU: channels_last lets oneDNN skip its reorders (about
    1.2x on predict, the same speed for training steps)."""
    return torch.channels_last if onednn_on() else torch.contiguous_format


def cpu_can_compile(deterministic: bool) -> bool:
    """Whether torch.compile may run on the CPU: inductor's C++ compiler is installed, oneDNN is on and the
    predict is not the batch-size-invariant one of deterministic mode."""
    return onednn_on() and not deterministic and shutil.which(os.environ.get("CXX") or "g++") is not None


def adam(
    params: list[torch.nn.Parameter], lr: float, betas: tuple[float, float], device: torch.device
) -> torch.optim.Adam:
    """Adam; on the CPU always the fused kernel: one pass per tensor instead of about six, and its square
    root is the CPU's exact one. The unfused step takes torch.sqrt, which goes to MKL's vector math; in
    the branch portable numerics pin (MKL_CBWR=COMPATIBLE) that is rsqrtps plus a Newton step, and
    rsqrtps is an approximation whose bits differ between Intel and AMD CPUs."""
    fused = device.type == "cpu"
    return torch.optim.Adam(params, lr=lr, betas=betas, **({"fused": True} if fused else {}))
