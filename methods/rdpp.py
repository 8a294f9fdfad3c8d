"""RD++ (Tien et al., "Revisiting Reverse Distillation for Anomaly Detection", CVPR 2023) as its
official code (GitHub tientrandinh/Revisiting-Reverse-Distillation, MIT licence) implements it.

RD's frozen teacher, OCBE bottleneck and student decoder (methods/rd.py, rd_networks.py), with a
trained multi-scale projection layer between teacher and bottleneck (rdpp_networks.py):

- training, per batch of clean images x and their simplex-noised copies x~ (simplex.py):
  t = teacher(x), t~ = teacher(x~), p = proj(t), q = proj(t~), s = decoder(bottleneck(p));
  loss = RD's distillation loss(t, s) + 0.2 x projection loss(t~, q, p) (rdpp_losses.py);
- two Adam optimisers, betas (0.5, 0.999): the projection at lr 0.001, bottleneck + decoder at
  lr 0.005; gradients of 2 consecutive batches are summed before each step (the counter restarts
  every epoch and the gradients are cleared only after a step, as in the official loop);
- inference exactly as RD, with the student fed through the projection: the anomaly map compares
  the teacher's own (unprojected) features with s (official `evaluation_multi_proj`);
- checkpoints in the official format {'proj': ..., 'decoder': ..., 'bn': ...};
- RD's optional training settings apply too (all off by default, as in the official code): a step
  schedule multiplies both learning rates by the same factor, gradient clipping bounds the total
  norm of all trained parameters (projection, bottleneck, decoder) before each optimiser step, and
  drop_last leaves out an epoch's last incomplete batch.

The official script scores the test set after every epoch and keeps the epoch with the best mean of
I-AUROC, P-AUROC and AU-PRO. The harness reports the last epoch; `run --eval-every 1` records the
official choice beside it as `selected_on_test` (harness/sweep/job.py).
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from harness.errors import CheckpointError, HarnessError
from harness.methods.rd import RDSettings, ReverseDistillation
from harness.methods.rd_cache import TeacherCache
from harness.methods.rd_checkpoints import check_checkpoint, describe_mismatch, read_tensor_file, write_checkpoint
from harness.methods.rd_cpu import adam
from harness.methods.rd_maps import rd_loss
from harness.methods.rd_networks import count_parameters
from harness.methods.rdpp_losses import projection_loss
from harness.methods.rdpp_networks import MultiProjection
from harness.methods.simplex import PseudoAnomalies

LOSS_TERMS = ("distillation", "projection", "ssot", "reconstruction", "contrast")


@dataclass
class RDPPSettings(RDSettings):
    # `lr` (inherited, 0.005) is the bottleneck + decoder learning rate (official `distill_lr`)
    proj_lr: float = 0.001  # official `proj_lr`
    proj_loss_weight: float = 0.2  # official `weight_proj`
    accumulation_steps: int = 2  # batches whose gradients are summed before each optimiser step
    # The official SSOT term is a Sinkhorn divergence between a batch and a shuffle of itself: zero up to
    # rounding (~1e-10, gradient ~1e-13), yet ~370 Sinkhorn iterations per scale and step (0.8 s per step
    # on a CPU at 64 px). False skips it: faster, results equal up to that rounding. Official: True.
    ssot: bool = True

    def validate(self) -> None:
        super().validate()
        if not (isinstance(self.proj_lr, (int, float)) and not isinstance(self.proj_lr, bool) and self.proj_lr > 0):
            raise HarnessError(f"rdpp setting proj_lr={self.proj_lr!r} is invalid; expected a positive number")
        if not (
            isinstance(self.proj_loss_weight, (int, float))
            and not isinstance(self.proj_loss_weight, bool)
            and self.proj_loss_weight >= 0
        ):
            raise HarnessError(
                f"rdpp setting proj_loss_weight={self.proj_loss_weight!r} is invalid; expected a number >= 0"
            )
        if not isinstance(self.ssot, bool):
            raise HarnessError(f"rdpp setting ssot={self.ssot!r} is invalid; expected true or false")
        steps = self.accumulation_steps
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise HarnessError(f"rdpp setting accumulation_steps={steps!r} is invalid; expected a positive integer")


def expected_projection_shapes(backbone: str) -> dict[str, tuple[int, ...]]:
    """Key -> shape of the projection's state_dict (the 'proj' part of a checkpoint)."""
    with torch.device("meta"):
        return {k: tuple(v.shape) for k, v in MultiProjection(backbone).state_dict().items()}


def check_rdpp_checkpoint(state: object, backbone: str, source: str) -> None:
    """Raise CheckpointError (one line) unless `state` is an official RD++ checkpoint for `backbone`."""
    if not isinstance(state, dict) or not {"proj", "bn", "decoder"} <= set(state):
        if isinstance(state, dict) and {"bn", "decoder"} <= set(state):
            raise CheckpointError(f"{source} is an RD4AD checkpoint (no 'proj' part): evaluate it with method rd")
        found = sorted(map(str, state))[:5] if isinstance(state, dict) else type(state).__name__
        raise CheckpointError(
            f"{source} is not an RD++ checkpoint: expected a dict with keys 'proj', 'bn' and 'decoder', found {found}"
        )
    check_checkpoint({"bn": state["bn"], "decoder": state["decoder"]}, backbone, source)
    proj = state["proj"]
    problem = (
        describe_mismatch(expected_projection_shapes(backbone), proj) if isinstance(proj, dict) else "not a state_dict"
    )
    if problem:
        raise CheckpointError(f"{source} does not fit RD++ with backbone {backbone}: proj: {problem}")


class ReverseDistillationPlusPlus(ReverseDistillation):
    """RD++ (CVPR 2023) as the official code implements it; RD's networks, maps and checkpoints reused."""

    name = "rdpp"
    label = "RD++"
    Settings = RDPPSettings
    # Without --profile: RD++'s own profiles, not RD's (the data sets' defaults are made for RD)
    default_profiles = {"paper": "rdpp-paper", "demo": "rdpp-demo"}
    training_settings = ReverseDistillation.training_settings | {
        "proj_lr",
        "proj_loss_weight",
        "accumulation_steps",
        "ssot",
    }

    def __init__(self, settings: RDPPSettings | None = None) -> None:
        settings = settings if settings is not None else RDPPSettings()
        super().__init__(settings)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(settings.seed)
            self.proj = MultiProjection(settings.backbone)
        # Module.to takes memory_format at run time; torch's overloads leave it out
        self.proj.to(device=self.device, memory_format=self._memory_format)  # type: ignore[call-overload]
        self._run_proj = torch.compile(self.proj) if self.compiled and self.device.type == "cuda" else self.proj
        self.loss_terms: list[dict[str, float]] = []  # per epoch of the last fit: mean of each loss term
        self.noise_seed: int | None = None

    # ---------------------------------------------------------------------------------------
    # features

    def _unit(self, batch: np.ndarray) -> torch.Tensor:
        """uint8 (N, H, W, 3) -> float (N, 3, H, W) in [0, 1] on the device (the first half of _to_tensor)."""
        x = torch.from_numpy(np.ascontiguousarray(batch))
        if self.device.type == "cuda":
            x = x.pin_memory()
        return x.to(self.device, non_blocking=True).permute(0, 3, 1, 2).float().div(255)

    def _normalise(self, x: torch.Tensor) -> torch.Tensor:
        return x.sub(self._mean).div(self._std).contiguous(memory_format=self._memory_format)

    def _project(self, teacher: list[torch.Tensor]) -> list[torch.Tensor]:
        with self._autocast():
            return self._run_proj(teacher)

    def _student_features(self, teacher: list[torch.Tensor]) -> list[torch.Tensor]:
        # RD's predict compares these with the teacher's own features: the official RD++ map.
        with self._autocast():
            return self._run_decoder(self._run_bottleneck(self._run_proj(teacher)))

    # ---------------------------------------------------------------------------------------
    # training

    @contextlib.contextmanager
    def trainer(self, images: np.ndarray, *, cache_teacher: str | None = None) -> Iterator[RDPPTrainer]:
        """One training run's two optimisers, pseudo-anomalies, clean-feature cache and train modes."""
        s = self.settings
        with self._determinism():
            betas = tuple(s.betas)
            optimizer_proj = adam(list(self.proj.parameters()), s.proj_lr, betas, self.device)
            optimizer_distill = adam(
                list(self.decoder.parameters()) + list(self.bottleneck.parameters()), s.lr, betas, self.device
            )
            scaler = torch.amp.GradScaler(self.device.type, enabled=self.precision == "fp16")
            rng = np.random.default_rng(s.seed)
            noise = PseudoAnomalies(images.shape[1], images.shape[2], rng)
            self.noise_seed = noise.seed
            self.teacher.eval()
            for module in (self.proj, self.bottleneck, self.decoder):
                module.train()
            # The teacher features of the clean images are the same every epoch and may be cached;
            # those of the noised images change every step and are always computed.
            cache = self.build_teacher_cache(images, cache_teacher)
            self.loss_terms = []
            trainer = RDPPTrainer(
                self, images, (optimizer_proj, optimizer_distill), scaler, cache, noise, rng, float(s.grad_clip_norm)
            )
            try:
                yield trainer
            finally:
                trainer.close_epoch()
                for module in (self.proj, self.bottleneck, self.decoder):
                    module.eval()

    def predict(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        was_training = self.proj.training
        self.proj.eval()  # InstanceNorm without running statistics: the same in both modes, set for clarity
        try:
            return super().predict(images)
        finally:
            self.proj.train(was_training)

    # ---------------------------------------------------------------------------------------
    # checkpoints

    def state_dict(self) -> dict:
        """The official content: {'proj': projection, 'decoder': decoder, 'bn': bottleneck}, on the CPU."""
        return {
            "proj": {k: v.detach().cpu() for k, v in self.proj.state_dict().items()},
            "decoder": {k: v.detach().cpu() for k, v in self.decoder.state_dict().items()},
            "bn": {k: v.detach().cpu() for k, v in self.bottleneck.state_dict().items()},
        }

    def load_state_dict(self, state: dict, *, source: str = "state dict") -> None:
        """Load the official RD++ format strictly (CheckpointError naming what does not fit)."""
        check_rdpp_checkpoint(state, self.settings.backbone, source)
        self.proj.load_state_dict(state["proj"], strict=True)
        self.bottleneck.load_state_dict(state["bn"], strict=True)
        self.decoder.load_state_dict(state["decoder"], strict=True)

    def save_checkpoint(self, path: str | os.PathLike) -> None:
        write_checkpoint(self.state_dict(), path)

    def load_checkpoint(self, path: str | os.PathLike) -> None:
        state = read_tensor_file(path, "checkpoint")
        self.load_state_dict(state, source=f"checkpoint {path}")

    def describe(self) -> dict:
        info = super().describe()
        info["parameters"] = info["parameters"] | {"projection": count_parameters(self.proj)}
        info["optimisers"] = {
            "projection_lr": self.settings.proj_lr,
            "distillation_lr": self.settings.lr,
            "betas": list(self.settings.betas),
            "accumulation_steps": self.settings.accumulation_steps,
        }
        info["proj_loss_weight"] = self.settings.proj_loss_weight
        if self.noise_seed is not None:
            info["simplex_noise_seed"] = self.noise_seed
        if self.loss_terms:
            info["loss_terms_last_epoch"] = self.loss_terms[-1]
        return info


class RDPPTrainer:
    """Steps of one RD++ training run (made by ReverseDistillationPlusPlus.trainer)."""

    def __init__(
        self,
        model: ReverseDistillationPlusPlus,
        images: np.ndarray,
        optimizers: tuple[torch.optim.Optimizer, torch.optim.Optimizer],
        scaler: torch.amp.GradScaler,
        cache: TeacherCache | None,
        noise: PseudoAnomalies,
        rng: np.random.Generator,
        clip_norm: float = 0.0,
    ) -> None:
        self.model, self.images, self.optimizers, self.scaler = model, images, optimizers, scaler
        self.cache, self.noise, self.rng = cache, noise, rng
        self.clip_norm = clip_norm
        self.batches = 0  # batches since the epoch began (the official loop's counter)
        self._sums: dict[str, torch.Tensor] = {}  # summed on the device: no synchronisation per term
        self._count = 0

    def set_learning_rate(self, lr: float) -> None:
        """`lr` is the distillation rate (RD's fit passes the model's learning_rate(epoch)); the projection's
        rate follows by the same factor: proj_lr * lr / settings.lr."""
        s = self.model.settings
        factor = float(lr) / float(s.lr)
        for optimizer, base in zip(self.optimizers, (s.proj_lr, s.lr), strict=False):
            for group in optimizer.param_groups:
                group["lr"] = float(base) * factor

    def begin_epoch(self) -> None:
        self.close_epoch()
        self.batches = 0

    def close_epoch(self) -> None:
        """Keep the mean loss terms of the batches since the last call (one entry per epoch)."""
        if self._count:
            self.model.loss_terms.append({k: float(v) / self._count for k, v in self._sums.items()})
        self._sums, self._count = {}, 0

    def step(self, index: np.ndarray) -> float:
        """Forward and backward on images[index]; the optimisers step after every `accumulation_steps`
        batches of the epoch. Returns the total loss; a non-finite loss is returned without backward."""
        model, s = self.model, self.model.settings
        unit = model._unit(self.images[index])
        noised = model._normalise(self.noise.apply(unit, self.noise.draw(len(index))))
        teacher = self.cache.batch(index) if self.cache is not None else model._teacher_features(model._normalise(unit))
        teacher_noised = model._teacher_features(noised)
        projected = model._project(teacher)
        projected_noised = model._project(teacher_noised)
        with model._autocast():
            student = model._run_decoder(model._run_bottleneck(projected))
        distillation = rd_loss(teacher, student)
        permutation = torch.from_numpy(self.rng.permutation(len(index)))
        proj, terms = projection_loss(teacher_noised, projected_noised, projected, permutation, ssot=s.ssot)
        loss = distillation + s.proj_loss_weight * proj
        value = loss.item()
        if not math.isfinite(value):
            return value
        self.scaler.scale(loss).backward()
        self.batches += 1
        if self.batches % s.accumulation_steps == 0:
            if self.clip_norm > 0:  # on the true gradients of all trained parameters: unscaled first
                for optimizer in self.optimizers:
                    self.scaler.unscale_(optimizer)
                params = [
                    p for optimizer in self.optimizers for group in optimizer.param_groups for p in group["params"]
                ]
                torch.nn.utils.clip_grad_norm_(params, self.clip_norm)
            for optimizer in self.optimizers:
                self.scaler.step(optimizer)
            self.scaler.update()
            for optimizer in self.optimizers:
                optimizer.zero_grad(set_to_none=True)
        logged = {"distillation": distillation.detach(), "projection": proj.detach(), **terms}
        for key in LOSS_TERMS:
            self._sums[key] = self._sums[key] + logged[key] if key in self._sums else logged[key].clone()
        self._count += 1
        return value
