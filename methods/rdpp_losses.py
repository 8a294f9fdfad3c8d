"""The projection losses of RD++ (Tien et al., CVPR 2023) as the official code computes them.

Official: `Revisit_RDLoss` in tientrandinh/Revisiting-Reverse-Distillation, utils/utils_train.py.
Each term is summed over the three scales; features are the teacher's (t), the projection of the
clean image (p) and the projection of the simplex-noised image (q).

- SSOT: the debiased Sinkhorn divergence (geomloss, p=2, blur 0.05, scaling 0.95, diameter 1e7)
  between two point clouds of B points each: the softmax of each image's flattened clean projection,
  and the same after shuffling the batch. Note: the shuffled batch is the same set of points, so the
  two clouds are the same uniform measure and the divergence is zero up to rounding (about 1e-10,
  gradient about 1e-13); the term is computed as the official code does and contributes nothing.
- Reconstruction: mean over images and positions of 1 - cosine (along channels) between q and p.
- Contrast: `CosineEmbeddingLoss(margin=0.5)` with target -1 between the flattened t of the noised
  image and the flattened p: mean over images of max(0, cos - 0.5).
- Projection loss: (SSOT + 0.01 reconstruction + 0.1 contrast) / 1.11; the total training loss is
  RD's distillation loss + 0.2 x the projection loss (weight set by `RDPPSettings.proj_loss_weight`).

Everything is computed in float32, on the device of its inputs.
"""

from __future__ import annotations

from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import Tensor

SINKHORN = {
    "loss": "sinkhorn",
    "p": 2,
    "blur": 0.05,
    "scaling": 0.95,
    "diameter": 10_000_000,
    "truncate": 10,
    "debias": True,
    "reach": None,
    "backend": "auto",
}
RECONSTRUCTION_WEIGHT = 0.01
CONTRAST_WEIGHT = 0.1
CONTRAST_MARGIN = 0.5
NORMALISER = 1.11  # 1 + 0.01 + 0.1


@lru_cache(maxsize=1)
def sinkhorn_divergence():
    """geomloss's SamplesLoss with the official parameters (imported on first use: geomloss loads slowly)."""
    import geomloss

    return geomloss.SamplesLoss(**SINKHORN)


def _flat(x: Tensor) -> Tensor:
    return x.float().reshape(x.shape[0], -1)


def ssot_loss(projected: list[Tensor], permutation: Tensor) -> Tensor:
    """Sum over scales of the Sinkhorn divergence between softmax(p_i) and softmax(p_perm(i)), i over the batch."""
    loss = sinkhorn_divergence()
    total = projected[0].new_zeros((), dtype=torch.float32)
    for p in projected:
        flat = _flat(p)
        total = total + loss(torch.softmax(flat, dim=-1), torch.softmax(flat[permutation.to(flat.device)], dim=-1))
    return total


def reconstruction_loss(projected_noised: list[Tensor], projected: list[Tensor]) -> Tensor:
    """Sum over scales of the mean over images and positions of 1 - cosine along the channels."""
    total = projected[0].new_zeros((), dtype=torch.float32)
    for q, p in zip(projected_noised, projected, strict=False):
        total = total + (1.0 - F.cosine_similarity(q.float(), p.float(), dim=1)).mean()
    return total


def contrast_loss(teacher_noised: list[Tensor], projected: list[Tensor], margin: float = CONTRAST_MARGIN) -> Tensor:
    """Sum over scales of the mean over images of max(0, cos(flat t_noised, flat p) - margin)."""
    total = projected[0].new_zeros((), dtype=torch.float32)
    for t, p in zip(teacher_noised, projected, strict=False):
        t, p = _flat(t), _flat(p)
        target = -torch.ones(t.shape[0], device=t.device)
        total = total + F.cosine_embedding_loss(t, p, target, margin=margin)
    return total


def projection_loss(
    teacher_noised: list[Tensor],
    projected_noised: list[Tensor],
    projected: list[Tensor],
    permutation: Tensor,
    *,
    ssot: bool = True,
) -> tuple[Tensor, dict[str, Tensor]]:
    """The official projection loss and its three terms (detached, for logging). `ssot=False` leaves
    the SSOT term out (it is zero up to rounding in the official setting: see the module docstring)."""
    if not (len(teacher_noised) == len(projected_noised) == len(projected)):
        raise ValueError("expected equally many scales of teacher, noised projection and clean projection features")
    ssot_term = ssot_loss(projected, permutation) if ssot else projected[0].new_zeros((), dtype=torch.float32)
    reconstruction = reconstruction_loss(projected_noised, projected)
    contrast = contrast_loss(teacher_noised, projected)
    total = (ssot_term + RECONSTRUCTION_WEIGHT * reconstruction + CONTRAST_WEIGHT * contrast) / NORMALISER
    terms = {"ssot": ssot_term.detach(), "reconstruction": reconstruction.detach(), "contrast": contrast.detach()}
    return total, terms
