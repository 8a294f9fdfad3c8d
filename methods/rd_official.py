"""The official RD4AD training step and test loop (hq-deng/RD4AD main.py, test.py), rewritten for timing.

This is the yardstick `bench official` compares the project's code with (harness/bench/versus.py). It follows the
official procedure as written, not a tuned version of it:

- training: the teacher is the whole ResNet up to layer4, whose output the official encoder computes
  and discards; it runs with autograd on (its parameters keep requires_grad, as the official
  encoder's do), so the backward pass also runs through layer1..3 of the teacher; then bottleneck
  (its output made contiguous, as BN_layer does) and decoder, the flattened cosine loss, zero_grad,
  backward and Adam over bottleneck and decoder;
- inference: one image at a time under no_grad; each scale's map is interpolated and copied to the
  host, summed in float64 numpy, smoothed with scipy.ndimage.gaussian_filter(sigma=4); score = max.

Both start from uint8 images and include torchvision's ToTensor + Normalize arithmetic, which the
official data loader runs in the training process. The networks are the project's, which are
module for module the official ones, in the default (contiguous) memory format.

`frozen_teacher=True` gives a stricter yardstick than the official code: the teacher without layer4,
under no_grad, as the project runs it, so that only the rest of the step is compared.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from scipy.ndimage import gaussian_filter
from torchvision import models

from harness.methods.rd import IMAGENET_MEAN, IMAGENET_STD
from harness.methods.rd_networks import OneClassBottleneck, StudentDecoder, TeacherEncoder


class OfficialEncoder(TeacherEncoder):
    """The official encoder: runs layer4 too and returns layer1..3; trainable parameters (never frozen)."""

    def __init__(self, backbone: str) -> None:
        super().__init__(backbone)
        self.layer4 = models.get_model(backbone, weights=None).layer4
        self.requires_grad_(True)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = super().forward(x)
        self.layer4(features[-1])  # computed and discarded, as in the official ResNet._forward_impl
        return features


class OfficialRD:
    """Teacher, bottleneck and decoder set up as the official main.py sets them up."""

    def __init__(
        self,
        backbone: str,
        *,
        lr: float = 0.005,
        betas: tuple[float, float] = (0.5, 0.999),
        sigma: float = 4.0,
        seed: int = 111,
        frozen_teacher: bool = False,
    ) -> None:
        self.frozen_teacher = frozen_teacher
        with torch.random.fork_rng(devices=[]):  # seeded like the official script, without touching the caller's state
            torch.manual_seed(seed)
            self.encoder = TeacherEncoder(backbone) if frozen_teacher else OfficialEncoder(backbone)
            self.bn = OneClassBottleneck(backbone)
            self.decoder = StudentDecoder(backbone)
        self.optimizer = torch.optim.Adam(
            list(self.decoder.parameters()) + list(self.bn.parameters()), lr=lr, betas=betas
        )
        self.sigma = sigma
        self._mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        self._std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)

    def to_tensor(self, images: np.ndarray) -> torch.Tensor:
        """ToTensor + Normalize on (N, H, W, 3) uint8."""
        # ToTensor gives contiguous (C, H, W) images, which the data loader stacks
        x = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous().float().div(255)
        return (x - self._mean) / self._std

    @staticmethod
    def loss(a: list[torch.Tensor], b: list[torch.Tensor]) -> torch.Tensor:
        """Official loss_fucntion: per scale mean over the batch of 1 - cosine of the flattened maps, summed."""
        cos = torch.nn.CosineSimilarity()
        terms = [
            torch.mean(1 - cos(t.view(t.shape[0], -1), s.view(s.shape[0], -1))) for t, s in zip(a, b, strict=False)
        ]
        total = terms[0]  # the official sum starts at 0: 0 + x is x exactly
        for term in terms[1:]:
            total = total + term
        return total

    def train_step(self, images: np.ndarray) -> float:
        """One official training iteration on a uint8 batch; returns loss.item() as the official loop logs it."""
        self.encoder.eval()
        self.bn.train()
        self.decoder.train()
        img = self.to_tensor(images)
        with torch.set_grad_enabled(not self.frozen_teacher):
            inputs = self.encoder(img)
        outputs = self.decoder(self.bn(inputs).contiguous())
        loss = self.loss(inputs, outputs)
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        return loss.item()

    def anomaly_map(self, inputs: list[torch.Tensor], outputs: list[torch.Tensor], size: int) -> np.ndarray:
        """Official cal_anomaly_map, mode 'a': float64 numpy sum of the per-scale interpolated maps."""
        amap = np.zeros([size, size])
        for ft, fs in zip(inputs, outputs, strict=False):
            a_map = 1 - F.cosine_similarity(fs, ft)
            a_map = torch.unsqueeze(a_map, dim=1)
            a_map = F.interpolate(a_map, size=size, mode="bilinear", align_corners=True)
            amap += a_map[0, 0, :, :].to("cpu").detach().numpy()
        return amap

    def predict(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Official test loop (batch 1): scores (N,) and smoothed maps (N, H, W)."""
        self.bn.eval()
        self.decoder.eval()
        scores, maps = [], []
        with torch.no_grad():
            for image in images:
                img = self.to_tensor(image[None])
                inputs = self.encoder(img)
                outputs = self.decoder(self.bn(inputs).contiguous())
                amap = gaussian_filter(self.anomaly_map(inputs, outputs, img.shape[-1]), sigma=self.sigma)
                scores.append(np.max(amap))
                maps.append(amap)
        return np.asarray(scores), np.stack(maps)
