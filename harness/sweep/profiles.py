"""Named settings bundles. A profile fixes a method's settings; explicit CLI flags override it."""

from __future__ import annotations

from dataclasses import dataclass, field

from harness.errors import HarnessError


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    method: str = "rd"
    settings: dict = field(default_factory=dict)  # overrides of the method's Settings dataclass
    seeds: tuple[int, ...] = (111,)
    protocol: str = "single"  # the protocol `run` uses unless --protocol says otherwise (harness.sweep.plan.PROTOCOLS)
    # category -> further overrides for that category only (e.g. per-category epochs); flags still win
    category_settings: dict = field(default_factory=dict)

    def settings_for(self, category: str) -> dict:
        return self.settings | self.category_settings.get(category, {})


# Epochs per MVTec AD category in the official RD++ script (main.py); it sets none for other categories.
RDPP_EPOCHS = {
    "carpet": 10,
    "leather": 10,
    "grid": 260,
    "tile": 260,
    "wood": 100,
    "bottle": 200,
    "cable": 240,
    "capsule": 300,
    "hazelnut": 160,
    "metal_nut": 160,
    "pill": 200,
    "screw": 280,
    "toothbrush": 280,
    "transistor": 300,
    "zipper": 300,
}


# ADer's RD in the multi-class setting, as its configuration files say (read at this commit).
ADER_SOURCE = (
    "github.com/zhangzjn/ADer, configs/benchmark/rd/rd_256_{epochs}e.py (with configs/__base__/cfg_common.py, "
    "optim/scheduler.py, trainer/_base_trainer.py), commit 902937a7ed7fa7689674a4ac9b8fe9a72a40c402"
)
ADER_RD_SETTINGS = {
    "backbone": "wide_resnet50_2",
    "weights": "imagenet",
    "image_size": 256,
    "batch_size": 16,
    "lr": 0.005,
    "betas": (0.5, 0.999),
    "lr_schedule": "step",
    "lr_step_at": 0.8,
    "lr_step_factor": 0.1,
    "grad_clip_norm": 5.0,
    "drop_last": True,
    "map_mode": "add",
    "sigma": 4.0,
}


def _ader_rd(name: str, epochs: int) -> Profile:
    return Profile(
        name,
        f"ADer's RD, multi-class (unified) protocol by default: one model for all categories, wide_resnet50_2 "
        f"ImageNet teacher, 256 px, {epochs} epochs, batch 16 (last incomplete batch dropped), Adam lr 0.005 betas "
        f"(0.5, 0.999) without weight decay, lr x0.1 after {int(0.8 * epochs)} epochs, gradient norm clipped to 5, "
        f"seed 42, last epoch reported. Teacher: torchvision's weights, not ADer's timm RACM weights (pass --weights "
        f"FILE for those). Source: {ADER_SOURCE.format(epochs=epochs)}",
        settings=ADER_RD_SETTINGS | {"epochs": epochs},
        seeds=(42,),
        protocol="unified",
    )


PROFILES: dict[str, Profile] = {
    profile.name: profile
    for profile in (
        Profile(
            "paper",
            "RD4AD as published: wide_resnet50_2 ImageNet teacher, 256 px, 200 epochs, batch 16, "
            "Adam lr 0.005 betas (0.5, 0.999), seed 111, last epoch reported; on CUDA deterministic cuDNN "
            "without autotuning, as the official code sets it, and fp32 without TF32",
            settings={"deterministic": True},
            seeds=(111,),
        ),
        Profile(
            "demo",
            "Quick CPU demonstration: resnet18 with random weights (not comparable to published "
            "numbers), 64 px, 30 epochs",
            settings={"backbone": "resnet18", "weights": "none", "image_size": 64, "epochs": 30, "batch_size": 16},
            seeds=(0,),
        ),
        Profile(
            "novelty",
            "One-class novelty detection as in the RD4AD paper: resnet18 ImageNet teacher, 32 px, "
            "ImageNet normalisation, batch 16, 10 epochs (the paper gives no epoch count: 10 epochs of "
            "5,000 CIFAR-10 images are ~3,100 optimiser steps, as many as 200 MVTec AD epochs)",
            settings={"backbone": "resnet18", "weights": "imagenet", "image_size": 32, "epochs": 10, "batch_size": 16},
            seeds=(111,),
        ),
        _ader_rd("ader-rd", 100),
        _ader_rd("ader-rd-300ep", 300),
        Profile(
            "rdpp-paper",
            "RD++ (CVPR 2023) as its official code trains it: wide_resnet50_2 ImageNet teacher, 256 px, batch 16 with "
            "the gradients of 2 batches summed per step, Adam betas (0.5, 0.999) at lr 0.001 (projection) and 0.005 "
            "(bottleneck, decoder), projection loss weight 0.2, the official per-category epochs (MVTec AD: 10 for "
            "carpet and leather up to 300; 200 for categories it does not list), seed 111, last epoch reported (the "
            "official script reports its best epoch on the test set: --eval-every 1 records that beside it)",
            method="rdpp",
            settings={"deterministic": True, "epochs": 200},
            seeds=(111,),
            category_settings={category: {"epochs": epochs} for category, epochs in RDPP_EPOCHS.items()},
        ),
        Profile(
            "rdpp-demo",
            "Quick CPU demonstration of RD++: resnet18 with random weights (not comparable to published numbers), "
            "64 px, 10 epochs",
            method="rdpp",
            settings={"backbone": "resnet18", "weights": "none", "image_size": 64, "epochs": 10, "batch_size": 16},
            seeds=(0,),
        ),
    )
}


DEFAULTS = "defaults"  # the name of the profile of a method that has none: its Settings defaults


def defaults_of(method: str) -> Profile:
    """The profile of a method without one of its own: no overrides, seed 0."""
    return Profile(DEFAULTS, f"the {method} method's own defaults", method=method, seeds=(0,))


def get(name: str, method: str = "") -> Profile:
    """The profile `name`; DEFAULTS with the method's name is that method's Settings defaults."""
    if name == DEFAULTS and method:
        return defaults_of(method)
    if name not in PROFILES:
        raise HarnessError(f"unknown profile '{name}'; known profiles: {', '.join(sorted(PROFILES))}")
    return PROFILES[name]
