"""Gaussian anomaly detection on the features of a frozen CNN.

Image score: the Mahalanobis distance of an image's globally pooled features (layer1..3 of a ResNet-18) to a
Gaussian fitted to the training images, with a shrunk covariance (Rippel, Mertens, Merhof, "Modeling the
Distribution of Normal Data in Pre-Trained Deep Features for Anomaly Detection", ICPR 2020,
arXiv:2005.14140). Anomaly map: at every position of layer2, the distance to a Gaussian with diagonal
covariance fitted to that position's training features (PaDiM, Defard et al., ICPR workshops 2021,
arXiv:2011.08785, with a diagonal instead of a full covariance), upsampled bilinearly to the input size.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
import torchvision

import harness
from harness.errors import HarnessError

MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


@dataclass
class GaussianSettings:
    image_size: int = 64
    weights: str = "none"  # "none": random weights from the seed; "imagenet": torchvision's ImageNet weights
    shrinkage: float = 0.1  # covariance = (1 - s) * sample covariance + s * (trace / d) * identity
    seed: int = 0
    batch_size: int = 32  # images per forward pass (speed only)
    device: str = "cpu"

    def validate(self) -> None:
        if isinstance(self.image_size, bool) or not isinstance(self.image_size, int) or self.image_size < 16:
            raise HarnessError(f"gaussian setting image_size={self.image_size!r}: expected an integer >= 16")
        if self.weights not in ("none", "imagenet"):
            raise HarnessError(f"gaussian setting weights={self.weights!r}: expected 'none' or 'imagenet'")
        if not 0 < self.shrinkage <= 1:
            raise HarnessError(f"gaussian setting shrinkage={self.shrinkage!r}: expected a number in (0, 1]")


class GaussianAD(harness.Method):
    """Gaussian feature distance (Rippel et al. 2020): Mahalanobis distance on frozen ResNet-18 features."""

    name = "gaussian"
    label = "Gaussian"
    Settings = GaussianSettings
    execution_settings = frozenset({"device"})
    checkpoints = True

    def __init__(self, settings: GaussianSettings | None = None) -> None:
        settings = settings if settings is not None else GaussianSettings()
        settings.validate()
        super().__init__(settings)
        torch.manual_seed(settings.seed)  # random weights are the seed's
        weights = torchvision.models.ResNet18_Weights.IMAGENET1K_V1 if settings.weights == "imagenet" else None
        self.network = torchvision.models.resnet18(weights=weights).eval().to(settings.device)
        self.state: dict[str, np.ndarray] = {}

    def _features(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(pooled layer1..3 features (N, 448), layer2 feature maps (N, 128, H/8, W/8)) as float64."""
        pooled, maps = [], []
        net = self.network
        with torch.inference_mode():
            for start in range(0, len(images), self.settings.batch_size):
                x = torch.from_numpy(np.ascontiguousarray(images[start : start + self.settings.batch_size]))
                x = (x.permute(0, 3, 1, 2).float() / 255 - MEAN) / STD
                x = net.maxpool(net.relu(net.bn1(net.conv1(x.to(self.settings.device)))))
                f1 = net.layer1(x)
                f2 = net.layer2(f1)
                f3 = net.layer3(f2)
                pooled.append(torch.cat([f.mean(dim=(2, 3)) for f in (f1, f2, f3)], dim=1).cpu().double().numpy())
                maps.append(f2.cpu().double().numpy())
        return np.concatenate(pooled), np.concatenate(maps)

    def fit(self, images: np.ndarray, *, callbacks: Sequence = ()) -> list[harness.EpochLog]:
        if len(images) < 2:
            raise HarnessError(f"gaussian needs at least 2 training images, got {len(images)}")
        started = time.perf_counter()
        pooled, maps = self._features(images)
        mean = pooled.mean(axis=0)
        covariance = np.cov(pooled, rowvar=False)
        s = self.settings.shrinkage
        covariance = (1 - s) * covariance + s * np.trace(covariance) / len(mean) * np.eye(len(mean))
        self.state = {
            "mean": mean,
            "precision": np.linalg.inv(covariance),
            "map_mean": maps.mean(axis=0),
            "map_var": maps.var(axis=0) + 1e-6,
        }
        log = harness.EpochLog(1, 1, 0.0, time.perf_counter() - started)  # one pass, no loss
        for callback in callbacks:
            callback(log)
        return [log]

    def predict(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if not self.state:
            raise HarnessError("gaussian: predict before fit (or load_state_dict)")
        pooled, maps = self._features(images)
        centred = pooled - self.state["mean"]
        scores = np.sqrt(np.einsum("ni,ij,nj->n", centred, self.state["precision"], centred))
        distance = np.sqrt((((maps - self.state["map_mean"]) ** 2) / self.state["map_var"]).mean(axis=1))
        size = images.shape[1:3]
        upsampled = F.interpolate(torch.from_numpy(distance)[:, None], size=size, mode="bilinear", align_corners=False)
        return scores.astype(np.float32), upsampled[:, 0].numpy().astype(np.float32)

    def state_dict(self) -> dict:
        return {key: value.copy() for key, value in self.state.items()}

    def load_state_dict(self, state: dict) -> None:
        self.state = {key: np.asarray(value, dtype=np.float64) for key, value in state.items()}

    def save_checkpoint(self, path: str | os.PathLike) -> None:
        with open(path, "wb") as handle:  # a file object: np.savez would add ".npz" to a path
            np.savez(handle, **self.state)

    def load_checkpoint(self, path: str | os.PathLike) -> None:
        with np.load(path) as stored:
            self.load_state_dict({key: stored[key] for key in stored.files})

    def describe(self) -> dict:
        return {"features": "resnet18 layer1..3", "weights": self.settings.weights}
