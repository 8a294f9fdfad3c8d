"""Teacher features of the training set, computed once and reused every epoch.

Exact: the teacher is frozen, in eval mode and runs without gradients, and RD trains without
augmentation, so an image's teacher features are the same in every epoch. Stored in float32 they
are the same numbers as computed on the fly (up to the batch-size dependence of the CPU
convolution kernels, ~1e-6); float16 storage halves the memory and is close, not equal.

"auto" caches when the features fit in a quarter of the free memory where they would live: free
GPU memory on CUDA (else pinned host memory), available RAM on the CPU.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from harness.methods.rd_networks import backbone_spec

CACHE_MODES = ("auto", "on", "off")
CACHE_DTYPES = {"fp32": torch.float32, "fp16": torch.float16}
BUDGET_FRACTION = 0.25


def feature_shapes(backbone: str, height: int, width: int) -> list[tuple[int, int, int]]:
    """(C, H, W) of the teacher's layer1..3 outputs for an input of height x width."""
    e = backbone_spec(backbone).expansion
    return [(64 * e, height // 4, width // 4), (128 * e, height // 8, width // 8), (256 * e, height // 16, width // 16)]


def cache_bytes(backbone: str, n_images: int, height: int, width: int, dtype: str = "fp32") -> int:
    """Memory the cached teacher features of n_images take."""
    per_image = sum(math.prod(shape) for shape in feature_shapes(backbone, height, width))
    return n_images * per_image * CACHE_DTYPES[dtype].itemsize


def available_ram() -> int:
    """Bytes of RAM available to new allocations (MemAvailable), 0 when unknown."""
    try:
        with open("/proc/meminfo") as file:
            for line in file:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 0


def free_gpu_memory(device: torch.device) -> int:
    free, _ = torch.cuda.mem_get_info(device)
    return int(free)


@dataclass(frozen=True)
class CachePlan:
    """Whether to cache, where, and why: recorded with the result."""

    use: bool
    location: str  # "cuda", "cpu" (pinned when training on CUDA), or "" when not used
    bytes: int
    budget: int  # bytes allowed at that location; 0 when not applicable
    reason: str

    def to_dict(self) -> dict:
        return {
            "used": self.use,
            "location": self.location,
            "mib": round(self.bytes / 2**20, 1),
            "budget_mib": round(self.budget / 2**20, 1),
            "reason": self.reason,
        }


def plan_cache(mode: str, needed: int, device: torch.device) -> CachePlan:
    """Decide from the mode ('auto' | 'on' | 'off'), the bytes needed and the free memory."""
    if mode == "off":
        return CachePlan(False, "", needed, 0, "cache_teacher=off")
    ram = int(available_ram() * BUDGET_FRACTION)
    if device.type == "cuda":
        gpu = int(free_gpu_memory(device) * BUDGET_FRACTION)
        if needed <= gpu:
            return CachePlan(True, "cuda", needed, gpu, f"fits in {BUDGET_FRACTION:.0%} of free GPU memory")
        if needed <= ram or mode == "on":
            return CachePlan(True, "cpu", needed, ram, "in pinned host memory (too large for the GPU budget)")
    elif needed <= ram or mode == "on":
        return CachePlan(
            True,
            "cpu",
            needed,
            ram,
            f"fits in {BUDGET_FRACTION:.0%} of available RAM"
            if needed <= ram
            else "cache_teacher=on (over the RAM budget)",
        )
    return CachePlan(
        False, "", needed, ram, f"needs {needed / 2**20:.0f} MiB, over {BUDGET_FRACTION:.0%} of free memory"
    )


class TeacherCache:
    """Per-scale tensors (N, C, H, W) of teacher features; `batch(index)` gives them on the device."""

    def __init__(
        self,
        features: list[Tensor],
        dtype: torch.dtype,
        device: torch.device,
        memory_format: torch.memory_format,
        seconds: float,
    ) -> None:
        self.features = features
        self.dtype = dtype  # the teacher's output dtype, restored on the way out
        self.device = device
        self.memory_format = memory_format
        self.seconds = seconds  # time to build

    @classmethod
    def build(
        cls,
        images: np.ndarray,
        teacher: Callable[[np.ndarray], list[Tensor]],
        batch_size: int,
        storage: torch.dtype,
        location: str,
        device: torch.device,
        memory_format: torch.memory_format,
    ) -> TeacherCache:
        """Run `teacher` (uint8 batch -> features on `device`) over all images in batches."""
        start = time.perf_counter()
        pin = location == "cpu" and device.type == "cuda"
        where = device if location == "cuda" else torch.device("cpu")
        features: list[Tensor] = []
        dtype = torch.float32
        for i in range(0, len(images), batch_size):
            batch = teacher(images[i : i + batch_size])
            if not features:
                dtype = batch[0].dtype
                features = [
                    torch.empty((len(images), *f.shape[1:]), dtype=storage, device=where, pin_memory=pin) for f in batch
                ]
            for stored, f in zip(features, batch, strict=False):
                stored[i : i + len(f)].copy_(f, non_blocking=pin)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return cls(features, dtype, device, memory_format, time.perf_counter() - start)

    @property
    def nbytes(self) -> int:
        return sum(f.numel() * f.element_size() for f in self.features)

    def batch(self, index: np.ndarray) -> list[Tensor]:
        """The features of images `index`, in the teacher's dtype and memory format, on the device."""
        out = []
        for stored in self.features:
            rows = torch.as_tensor(index, device=stored.device)
            chunk = stored.index_select(0, rows)
            if chunk.device != self.device:
                # pinned staging buffer: the caching host allocator keeps it alive until the copy ran
                chunk = chunk.pin_memory().to(self.device, non_blocking=True)
            out.append(chunk.to(dtype=self.dtype).contiguous(memory_format=self.memory_format))
        return out
