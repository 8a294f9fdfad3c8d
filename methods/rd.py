"""Reverse Distillation (RD4AD, Deng & Li, CVPR 2022) as in the official code (hq-deng/RD4AD).

Training and inference follow docs/rd4ad.md: frozen ImageNet teacher (stem + layer1..3),
OCBE bottleneck + student decoder trained with the global flattened cosine loss (Adam, lr 0.005,
betas (0.5, 0.999), constant learning rate; ADer's multi-class setting adds a step decay,
gradient-norm clipping and dropping the last incomplete batch, as settings); anomaly map = sum over scales
of 1 - cosine, bilinear (align_corners=True) to the input size, Gaussian sigma 4; image score = max of the map.
Checkpoints are the official {'bn': ..., 'decoder': ...} format.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol, cast

import numpy as np
import torch
from tqdm.auto import tqdm

from harness.errors import CheckpointError, HarnessError
from harness.methods.base import ConcatenatedImages, EpochCallback, EpochLog, Method
from harness.methods.rd_cache import CACHE_DTYPES, CACHE_MODES, CachePlan, TeacherCache, cache_bytes, plan_cache
from harness.methods.rd_checkpoints import (
    check_checkpoint,
    load_teacher_weights,
    locate_teacher_weights,
    read_tensor_file,
    write_checkpoint,
)
from harness.methods.rd_cpu import adam, cpu_can_compile, cpu_layout, cpu_precision
from harness.methods.rd_maps import MAP_MODES, anomaly_map, gaussian_blur, image_scores, rd_loss
from harness.methods.rd_networks import BACKBONES, OneClassBottleneck, StudentDecoder, TeacherEncoder, count_parameters

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
LR_SCHEDULES = ("constant", "step")
_STRIDE = 32  # the decoder doubles the bottleneck's H/32 code three times back to the teacher's sizes


class TrainingDiverged(RuntimeError):
    """The training loss became NaN or infinite."""


@dataclass
class RDSettings:
    backbone: str = "wide_resnet50_2"  # resnet18 | resnet34 | resnet50 | wide_resnet50_2
    weights: str = (
        "imagenet"  # "imagenet" (torchvision IMAGENET1K_V1 from its cache; `run` downloads it) | "none" | a file path
    )
    image_size: int = 256
    epochs: int = 200
    batch_size: int = 16
    lr: float = 0.005
    betas: tuple[float, float] = (0.5, 0.999)
    # The official code keeps the learning rate constant and trains on every image each epoch. ADer's RD
    # (configs/benchmark/rd/rd_256_100e.py) multiplies it by lr_step_factor once int(epochs * lr_step_at)
    # epochs are done ("step"), clips the gradients' total L2 norm to 5 and drops the last incomplete batch.
    lr_schedule: str = "constant"  # "constant" | "step"
    lr_step_at: float = 0.8  # step: fraction of the epochs after which the rate is multiplied by lr_step_factor
    lr_step_factor: float = 0.1
    grad_clip_norm: float = 0.0  # > 0: clip the total L2 norm of the gradients to this (0: no clipping)
    drop_last: bool = False  # leave out the last batch of an epoch when it is smaller than batch_size
    map_mode: str = "add"  # "add" (official) | "mul"
    sigma: float = 4.0
    device: str = "auto"  # "auto" | "cpu" | "cuda" | "cuda:N"
    # "fp32" | "bf16" | "fp16": autocast. On the CPU bf16 needs AVX512-BF16 or AMX (refused without) and fp16 runs fp32.
    precision: str = "fp32"
    # CUDA: cuDNN deterministic algorithms and no autotuning (the official code's setting), plus torch's
    # deterministic algorithms where they exist; CPU: predict with batch-size-independent kernels.
    deterministic: bool = False
    # CUDA on Ampere and later: let fp32 matmuls and convolutions run as TF32 (faster, ~1e-3 relative
    # error). Off by default, so fp32 means fp32. The official code ran on torch 1.10, whose default was
    # TF32 for both convolutions and matmuls on Ampere GPUs (matmuls default to fp32 from torch 1.12):
    # tf32=True is the official numerics there.
    tf32: bool = False
    seed: int = 111
    progress: bool = True
    predict_batch_size: int = 32
    # Speed only (exact, kept out of job ids): teacher features of the training set computed once
    # ("auto": when they fit in a quarter of the free memory), and torch.compile (on the CPU for predict only,
    # see rd_cpu).
    cache_teacher: str = "auto"  # "auto" | "on" | "off"
    compile: bool = False
    teacher_cache_dtype: str = "fp32"  # "fp32" (exact) | "fp16" (half the memory, close but not equal)

    def validate(self) -> None:
        def bad(field: str, value: object, expected: str) -> HarnessError:
            return HarnessError(f"rd setting {field}={value!r} is invalid; expected {expected}")

        if self.backbone not in BACKBONES:
            raise bad("backbone", self.backbone, f"one of {', '.join(BACKBONES)}")
        if not isinstance(self.weights, str) or not self.weights:
            raise bad("weights", self.weights, "'imagenet', 'none' or a file path")
        for field in ("image_size", "epochs", "batch_size", "predict_batch_size"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise bad(field, value, "a positive integer")
        if self.image_size % _STRIDE:
            raise bad("image_size", self.image_size, f"a multiple of {_STRIDE}")
        if not (isinstance(self.lr, (int, float)) and self.lr > 0):
            raise bad("lr", self.lr, "a positive number")
        if len(tuple(self.betas)) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise bad("betas", self.betas, "two numbers in [0, 1)")
        if self.lr_schedule not in LR_SCHEDULES:
            raise bad("lr_schedule", self.lr_schedule, f"one of {', '.join(LR_SCHEDULES)}")
        if isinstance(self.lr_step_at, bool) or not (
            isinstance(self.lr_step_at, (int, float)) and 0 < self.lr_step_at <= 1
        ):
            raise bad("lr_step_at", self.lr_step_at, "a fraction of the epochs in (0, 1]")
        if isinstance(self.lr_step_factor, bool) or not (
            isinstance(self.lr_step_factor, (int, float)) and self.lr_step_factor > 0
        ):
            raise bad("lr_step_factor", self.lr_step_factor, "a positive number")
        if isinstance(self.grad_clip_norm, bool) or not (
            isinstance(self.grad_clip_norm, (int, float)) and self.grad_clip_norm >= 0
        ):
            raise bad("grad_clip_norm", self.grad_clip_norm, "a number >= 0 (0: no clipping)")
        if self.map_mode not in MAP_MODES:
            raise bad("map_mode", self.map_mode, f"one of {', '.join(MAP_MODES)}")
        if not (isinstance(self.sigma, (int, float)) and self.sigma > 0):
            raise bad("sigma", self.sigma, "a positive number")
        if self.precision not in PRECISIONS:
            raise bad("precision", self.precision, f"one of {', '.join(PRECISIONS)}")
        if self.cache_teacher not in CACHE_MODES:
            raise bad("cache_teacher", self.cache_teacher, f"one of {', '.join(CACHE_MODES)}")
        if self.teacher_cache_dtype not in CACHE_DTYPES:
            raise bad("teacher_cache_dtype", self.teacher_cache_dtype, f"one of {', '.join(CACHE_DTYPES)}")
        for field in ("compile", "deterministic", "tf32", "drop_last"):
            if not isinstance(getattr(self, field), bool):
                raise bad(field, getattr(self, field), "true or false")
        if not (
            self.device in ("auto", "cpu", "cuda") or (self.device.startswith("cuda:") and self.device[5:].isdigit())
        ):
            raise bad("device", self.device, "'auto', 'cpu', 'cuda' or 'cuda:N'")


def resolve_device(spec: str) -> torch.device:
    """'auto' -> the first CUDA device when there is one, else the CPU; an explicit CUDA request must be satisfiable."""
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(spec)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise HarnessError(f"device '{spec}' requested but CUDA is not available; use device 'auto' or 'cpu'")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise HarnessError(f"device '{spec}' requested but only {torch.cuda.device_count()} CUDA device(s) exist")
    return device


def check_images(images: object, what: str = "images") -> np.ndarray:
    """(N, H, W, 3) uint8 with H and W multiples of 32, or a HarnessError saying what is wrong. Training
    also takes ConcatenatedImages (several categories' arrays seen as one, not copied)."""
    if not isinstance(images, (np.ndarray, ConcatenatedImages)):
        raise HarnessError(f"{what} must be a numpy array of shape (N, H, W, 3), got {type(images).__name__}")
    if images.ndim != 4 or images.shape[-1] != 3 or images.shape[0] == 0:
        raise HarnessError(f"{what} must have shape (N, H, W, 3) with N >= 1, got {images.shape}")
    if images.dtype != np.uint8:
        raise HarnessError(f"{what} must be uint8 RGB as adapters return them, got dtype {images.dtype}")
    h, w = images.shape[1:3]
    if h % _STRIDE or w % _STRIDE:
        raise HarnessError(f"{what} height and width must be multiples of {_STRIDE} for RD, got {h}x{w}")
    return cast(np.ndarray, images)  # ConcatenatedImages stands in for an array in training


class TrainingSteps(Protocol):
    """What `fit` and the benchmark use of a training run: RD's Trainer and RD++'s trainer."""

    @property
    def cache(self) -> TeacherCache | None: ...

    def set_learning_rate(self, lr: float) -> None: ...

    def begin_epoch(self) -> None: ...

    def step(self, index: np.ndarray) -> float: ...


class ReverseDistillation(Method):
    """Reverse Distillation (RD4AD, CVPR 2022) as the official code implements it."""

    name = "rd"
    label = "RD"
    Settings = RDSettings
    checkpoints = True  # the official {'bn': ..., 'decoder': ...} format
    execution_settings = frozenset({"device", "progress", "predict_batch_size", "cache_teacher", "compile"})
    training_settings = frozenset(
        {
            "epochs",
            "batch_size",
            "lr",
            "betas",
            "cache_teacher",
            "teacher_cache_dtype",
            "lr_schedule",
            "lr_step_at",
            "lr_step_factor",
            "grad_clip_norm",
            "drop_last",
        }
    )
    # Added with ADer's setting; at these values training is RD4AD's, as before they existed.
    optional_settings = {
        "lr_schedule": "constant",
        "lr_step_at": 0.8,
        "lr_step_factor": 0.1,
        "grad_clip_norm": 0.0,
        "drop_last": False,
    }

    def __init__(self, settings: RDSettings | None = None) -> None:
        settings = settings if settings is not None else RDSettings()
        settings.validate()
        super().__init__(settings)
        # Fail on missing weights before building (or later training) anything.
        locate_teacher_weights(settings.backbone, settings.weights)
        self.device = resolve_device(settings.device)
        self.precision = settings.precision if self.device.type == "cuda" else cpu_precision(settings.precision)
        if settings.deterministic and self.device.type == "cuda":
            # cuBLAS reads this when it initialises; it must be set before the first CUDA matmul.
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")

        # The official code seeds before building the networks; do the same without disturbing the
        # caller's global random state, so equal seeds give equal initial models.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(settings.seed)
            self.teacher = TeacherEncoder(settings.backbone)
            self.bottleneck = OneClassBottleneck(settings.backbone)
            self.decoder = StudentDecoder(settings.backbone)
        self.teacher_weights = load_teacher_weights(self.teacher, settings.backbone, settings.weights)

        # channels_last lets cuDNN and oneDNN skip layout reorders. On the CPU only while oneDNN is on (see rd_cpu),
        # and not in deterministic mode: PyTorch's own channels_last kernels, which its predict uses, are not
        # batch-size invariant.
        self._memory_format = (
            torch.channels_last
            if self.device.type == "cuda"
            else torch.contiguous_format
            if settings.deterministic
            else cpu_layout()
        )
        for module in (self.teacher, self.bottleneck, self.decoder):
            # Module.to takes memory_format at run time; torch's overloads leave it out
            module.to(device=self.device, memory_format=self._memory_format)  # type: ignore[call-overload]
        self._mean = torch.tensor(IMAGENET_MEAN, device=self.device).view(1, 3, 1, 1)
        self._std = torch.tensor(IMAGENET_STD, device=self.device).view(1, 3, 1, 1)
        # The compiled wrappers share parameters with the modules, so state_dict keys keep the official names.
        # On the CPU, compiling pays off for predict only (1.1-1.3x; training steps gain nothing), needs a C++
        # compiler and stays off where it would change the bits of portable or deterministic mode.
        self.compiled = settings.compile and (self.device.type == "cuda" or cpu_can_compile(settings.deterministic))
        self._compiled_networks = (
            tuple(map(torch.compile, (self.teacher, self.bottleneck, self.decoder))) if self.compiled else None
        )
        self.teacher_cache_plan: CachePlan | None = None  # decided by the last fit

    # ---------------------------------------------------------------------------------------
    # helpers

    @contextlib.contextmanager
    def _determinism(self, *, batch_invariant: bool = False):
        """Set torch's determinism flags from the settings for one fit/predict call, then restore them,
        so one job's choice does not leak into the next or into the caller."""
        det = bool(self.settings.deterministic)
        cudnn, matmul = torch.backends.cudnn, torch.backends.cuda.matmul
        saved = (
            torch.are_deterministic_algorithms_enabled(),
            torch.is_deterministic_algorithms_warn_only_enabled(),
            cudnn.deterministic,
            cudnn.benchmark,
            torch.backends.mkldnn.enabled,
            cudnn.allow_tf32,
            matmul.allow_tf32,
        )
        # warn_only: an operation without a deterministic CUDA kernel warns instead of failing the job
        torch.use_deterministic_algorithms(det, warn_only=True)
        cudnn.deterministic = det
        cudnn.benchmark = (not det) and self.device.type == "cuda"
        cudnn.allow_tf32 = matmul.allow_tf32 = bool(self.settings.tf32)
        # oneDNN picks batch-size-dependent CPU convolution kernels (maps then differ by ~1e-6 between
        # batch sizes). In deterministic mode on the CPU, predict uses PyTorch's native kernels,
        # which make each image's map bitwise independent of predict_batch_size (about 2x slower).
        if batch_invariant and det and self.device.type == "cpu":
            torch.backends.mkldnn.enabled = False  # type: ignore[assignment]  # typed as its descriptor
        try:
            yield
        finally:
            torch.use_deterministic_algorithms(saved[0], warn_only=saved[1])
            (
                cudnn.deterministic,
                cudnn.benchmark,
                torch.backends.mkldnn.enabled,
                cudnn.allow_tf32,
                matmul.allow_tf32,
            ) = saved[2:]

    def _networks(self) -> tuple:
        """Teacher, bottleneck and decoder as they run now: compiled on CUDA, on the CPU inside predict only."""
        if self._compiled_networks and (self.device.type == "cuda" or torch.is_inference_mode_enabled()):
            return self._compiled_networks
        return self.teacher, self.bottleneck, self.decoder

    def _run_teacher(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self._networks()[0](x)

    def _run_bottleneck(self, features: list[torch.Tensor]) -> torch.Tensor:
        return self._networks()[1](features)

    def _run_decoder(self, code: torch.Tensor) -> list[torch.Tensor]:
        return self._networks()[2](code)

    def _autocast(self):
        enabled = self.precision != "fp32"
        return torch.autocast(device_type=self.device.type, dtype=PRECISIONS[self.precision], enabled=enabled)

    def _to_tensor(self, batch: np.ndarray) -> torch.Tensor:
        # Same arithmetic as torchvision's ToTensor + Normalize of the official data loader.
        x = torch.from_numpy(np.ascontiguousarray(batch))
        if self.device.type == "cuda":
            x = x.pin_memory()  # an asynchronous copy needs page-locked memory
        x = x.to(self.device, non_blocking=True)
        x = x.permute(0, 3, 1, 2).float().div(255).sub(self._mean).div(self._std)
        return x.contiguous(memory_format=self._memory_format)

    def _teacher_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        with torch.no_grad(), self._autocast():
            return self._run_teacher(x)

    def _student_features(self, teacher: list[torch.Tensor]) -> list[torch.Tensor]:
        with self._autocast():
            return self._run_decoder(self._run_bottleneck(teacher))

    def _features(self, x: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        teacher = self._teacher_features(x)
        return teacher, self._student_features(teacher)

    def plan_teacher_cache(self, n_images: int, height: int, width: int, mode: str | None = None) -> CachePlan:
        """Whether fit caches the teacher features of n_images of height x width on this device."""
        s = self.settings
        needed = cache_bytes(s.backbone, n_images, height, width, s.teacher_cache_dtype)
        return plan_cache(mode or s.cache_teacher, needed, self.device)

    def build_teacher_cache(self, images: np.ndarray, mode: str | None = None) -> TeacherCache | None:
        """The teacher features of the clean training images, computed once when the plan says they fit
        (None otherwise); the plan is kept for the record."""
        s = self.settings
        plan = self.plan_teacher_cache(len(images), images.shape[1], images.shape[2], mode)
        self.teacher_cache_plan = plan
        if not plan.use:
            return None
        return TeacherCache.build(
            images,
            lambda batch: self._teacher_features(self._to_tensor(batch)),
            s.batch_size,
            CACHE_DTYPES[s.teacher_cache_dtype],
            plan.location,
            self.device,
            self._memory_format,
        )

    def learning_rate(self, epoch: int) -> float:
        """The learning rate of (1-based) `epoch`: constant, or after int(epochs * lr_step_at) epochs (at least
        one) multiplied by lr_step_factor, and again after each further such span (ADer's timm StepLRScheduler,
        stepped per iteration with decay_t = int(0.8 * epochs) * iterations per epoch, changes at the same
        epoch boundaries)."""
        s = self.settings
        if s.lr_schedule == "constant":
            return float(s.lr)
        span = max(1, int(s.epochs * s.lr_step_at))
        return float(s.lr) * float(s.lr_step_factor) ** ((epoch - 1) // span)

    @contextlib.contextmanager
    def trainer(self, images: np.ndarray, *, cache_teacher: str | None = None) -> Iterator[TrainingSteps]:
        """One training run's optimizer, teacher cache and train modes; `fit` and the benchmark use it.

        `cache_teacher` overrides the setting for this run. Leaves the networks in eval mode.
        """
        s = self.settings
        with self._determinism():
            optimizer = adam(
                list(self.bottleneck.parameters()) + list(self.decoder.parameters()), s.lr, tuple(s.betas), self.device
            )
            scaler = torch.amp.GradScaler(self.device.type, enabled=self.precision == "fp16")
            self.teacher.eval()
            self.bottleneck.train()
            self.decoder.train()
            cache = self.build_teacher_cache(images, cache_teacher)
            try:
                yield Trainer(self, images, optimizer, scaler, cache, float(s.grad_clip_norm))
            finally:
                self.bottleneck.eval()
                self.decoder.eval()

    # ---------------------------------------------------------------------------------------
    # Method interface

    def fit(self, images: np.ndarray, *, callbacks: Sequence[EpochCallback] = ()) -> list[EpochLog]:
        """Train bottleneck and decoder on normal images (N, H, W, 3) uint8; one EpochLog per epoch."""
        images = check_images(images, "training images")
        s = self.settings
        torch.manual_seed(s.seed)
        order_rng = torch.Generator().manual_seed(s.seed)
        # BatchNorm cannot train on a single 1x1 code (images under 64 px): skip such a last batch.
        skip_single = images.shape[1] < 2 * _STRIDE or images.shape[2] < 2 * _STRIDE

        logs: list[EpochLog] = []
        with self.trainer(images) as trainer:
            for epoch in range(1, s.epochs + 1):
                start = time.perf_counter()
                trainer.set_learning_rate(self.learning_rate(epoch))
                order = torch.randperm(len(images), generator=order_rng).numpy()
                batches = [order[i : i + s.batch_size] for i in range(0, len(order), s.batch_size)]
                if len(batches) > 1 and (
                    (skip_single and len(batches[-1]) == 1) or (s.drop_last and len(batches[-1]) < s.batch_size)
                ):
                    batches.pop()
                losses: list[float] = []
                trainer.begin_epoch()
                # disable=None: a bar on a terminal only, never escape codes in logs (the job log has a line per epoch)
                bar = tqdm(
                    batches,
                    desc=f"{self.name} epoch {epoch}/{s.epochs}",
                    leave=False,
                    disable=None if s.progress else True,
                    unit="batch",
                )
                for step, index in enumerate(bar, start=1):
                    value = trainer.step(index)
                    if not math.isfinite(value):
                        raise TrainingDiverged(
                            f"{self.name} training diverged: loss is {value} at epoch {epoch}/{s.epochs}, "
                            f"step {step}/{len(batches)} (precision {self.precision}, "
                            f"lr {self.learning_rate(epoch):g}); try precision fp32 or a lower learning rate"
                        )
                    losses.append(value)
                    bar.set_postfix(loss=f"{value:.4f}")
                bar.close()
                log = EpochLog(
                    epoch=epoch, epochs=s.epochs, loss=float(np.mean(losses)), seconds=time.perf_counter() - start
                )
                logs.append(log)
                for callback in callbacks:
                    callback(log)
        return logs

    def predict(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Image scores (N,) and smoothed anomaly maps (N, H, W), float32, at the input resolution."""
        images = check_images(images)
        s = self.settings
        was_training = self.decoder.training  # called between epochs (interim evaluation): resume training after
        self.bottleneck.eval()
        self.decoder.eval()
        size = (images.shape[1], images.shape[2])
        scores, maps = [], []
        with torch.inference_mode(), self._determinism(batch_invariant=True):
            for i in range(0, len(images), s.predict_batch_size):
                teacher, student = self._features(self._to_tensor(images[i : i + s.predict_batch_size]))
                smooth = gaussian_blur(anomaly_map(teacher, student, size, s.map_mode), s.sigma)
                scores.append(image_scores(smooth).cpu())
                maps.append(smooth.cpu())
        self.bottleneck.train(was_training)
        self.decoder.train(was_training)
        return torch.cat(scores).numpy().astype(np.float32), torch.cat(maps).numpy().astype(np.float32)

    def state_dict(self) -> dict:
        """The official checkpoint content: {'bn': bottleneck state_dict, 'decoder': decoder state_dict}, on the CPU."""
        return {
            "bn": {k: v.detach().cpu() for k, v in self.bottleneck.state_dict().items()},
            "decoder": {k: v.detach().cpu() for k, v in self.decoder.state_dict().items()},
        }

    def load_state_dict(self, state: dict, *, source: str = "state dict") -> None:
        """Load the official format strictly; a checkpoint of another backbone raises CheckpointError."""
        if isinstance(state, dict) and "proj" in state:
            raise CheckpointError(
                f"{source} is an RD++ checkpoint (it has a 'proj' part): evaluate it with method rdpp"
            )
        check_checkpoint(state, self.settings.backbone, source)
        # load_state_dict copies values and keeps each parameter's memory format.
        self.bottleneck.load_state_dict(state["bn"], strict=True)
        self.decoder.load_state_dict(state["decoder"], strict=True)

    def phase_timings(self, images: np.ndarray, *, steps: int, warmup: int = 1) -> dict:
        from harness.methods.rd_phases import phase_timings

        return phase_timings(self, images, steps=steps, warmup=warmup)

    def save_checkpoint(self, path: str | os.PathLike) -> None:
        write_checkpoint(self.state_dict(), path)

    def load_checkpoint(self, path: str | os.PathLike) -> None:
        """Load an official checkpoint (strict). The teacher is not in the format: with weights="none"
        the random teacher comes from the seed, so predictions reproduce only with the same seed."""
        state = read_tensor_file(path, "checkpoint")
        self.load_state_dict(state, source=f"checkpoint {path}")

    def describe(self) -> dict:
        w = self.teacher_weights
        return {
            "method": self.name,
            "backbone": self.settings.backbone,
            "weights": w.source,
            "weights_file": w.path,
            "weights_sha256": w.sha256,
            # Published RD4AD numbers need torchvision's ImageNet teacher; other settings are the profile's business.
            "comparable_to_published": w.official,
            "parameters": {
                "teacher": count_parameters(self.teacher),
                "bottleneck": count_parameters(self.bottleneck),
                "decoder": count_parameters(self.decoder),
            },
            "image_size": self.settings.image_size,
            "map_mode": self.settings.map_mode,
            "sigma": self.settings.sigma,
            "device": str(self.device),
            "precision": self.precision,
            "deterministic": self.settings.deterministic,
            # the floating-point switches fit and predict set on CUDA (see _determinism)
            **(
                {
                    "cuda_numerics": {
                        "cudnn_deterministic": self.settings.deterministic,
                        "cudnn_benchmark": not self.settings.deterministic,
                        "tf32": self.settings.tf32,
                    }
                }
                if self.device.type == "cuda"
                else {}
            ),
            "seed": self.settings.seed,
            "optimizer": {
                "name": "adam",
                "lr": self.settings.lr,
                "betas": list(self.settings.betas),
                "lr_schedule": self.settings.lr_schedule,
                **(
                    {"lr_step_at": self.settings.lr_step_at, "lr_step_factor": self.settings.lr_step_factor}
                    if self.settings.lr_schedule == "step"
                    else {}
                ),
                "grad_clip_norm": self.settings.grad_clip_norm,
                "drop_last": self.settings.drop_last,
            },
            "compiled": self.compiled,
            **(
                {"teacher_cache": self.teacher_cache_plan.to_dict() | {"dtype": self.settings.teacher_cache_dtype}}
                if self.teacher_cache_plan
                else {}
            ),
        }


class Trainer:
    """Optimisation steps of one training run (made by ReverseDistillation.trainer)."""

    def __init__(
        self,
        model: ReverseDistillation,
        images: np.ndarray,
        optimizer: torch.optim.Optimizer,
        scaler: torch.amp.GradScaler,
        cache: TeacherCache | None,
        clip_norm: float = 0.0,
    ) -> None:
        self.model, self.images, self.optimizer, self.scaler, self.cache = model, images, optimizer, scaler, cache
        self.clip_norm = clip_norm

    def set_learning_rate(self, lr: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def begin_epoch(self) -> None:
        """Called by fit before each epoch's first step (RD keeps no per-epoch state)."""

    def step(self, index: np.ndarray) -> float:
        """One step on images[index]; returns the loss. A non-finite loss is returned without a step."""
        model = self.model
        if self.cache is not None:
            teacher = self.cache.batch(index)
        else:
            teacher = model._teacher_features(model._to_tensor(self.images[index]))
        loss = rd_loss(teacher, model._student_features(teacher))
        value = loss.item()
        if not math.isfinite(value):
            return value
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.clip_norm > 0:  # on the true gradients: unscaled first (a no-op without fp16's scaler)
            self.scaler.unscale_(self.optimizer)
            params = [p for group in self.optimizer.param_groups for p in group["params"]]
            torch.nn.utils.clip_grad_norm_(params, self.clip_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return value
