"""Files of Reverse Distillation: teacher weights (torchvision ImageNet or a given file) and the
official checkpoint format {'bn': bottleneck state_dict, 'decoder': decoder state_dict}.

ImageNet weights are read from torchvision's cache (torch.hub.get_dir()/checkpoints). A missing file is
downloaded from torchvision's URL (or $HARNESS_MIRROR/torchvision/<file>) with read timeouts, checked against the sha256
prefix in its name as torchvision does, only in a process that permits downloads
(harness.downloads.permit_downloads: `python -m harness run`, before any job starts) and never offline.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
from dataclasses import dataclass
from functools import cache
from http.client import HTTPException
from pathlib import Path

import torch
from torch import nn
from torchvision import models

from harness import downloads
from harness.downloads import downloads_permitted, mirror_url, offline
from harness.errors import CheckpointError
from harness.methods.rd_networks import BACKBONES, OneClassBottleneck, StudentDecoder, is_teacher_key

_SHOWN = 3  # how many keys an error message lists before it only counts


@dataclass(frozen=True)
class TeacherWeights:
    """Where the teacher's weights came from."""

    source: str  # "imagenet", "none" or the path given
    path: str | None  # file actually read
    sha256: str | None
    official: bool  # the file is torchvision's IMAGENET1K_V1 file (checked by its hash)


def imagenet_weights_url(backbone: str) -> str:
    """Where torchvision downloads the backbone's IMAGENET1K_V1 weights from."""
    return models.get_model_weights(backbone).IMAGENET1K_V1.url


def imagenet_weights_file(backbone: str) -> tuple[str, Path]:
    """File name torchvision uses for the backbone's IMAGENET1K_V1 weights and the folder it caches it in."""
    return imagenet_weights_url(backbone).rsplit("/", 1)[-1], Path(torch.hub.get_dir()) / "checkpoints"


def download_imagenet_weights(backbone: str) -> Path:
    """Download torchvision's IMAGENET1K_V1 file into its cache as torchvision does: a temporary file, the
    sha256 prefix its name carries checked, then renamed; a failed or interrupted download leaves nothing."""
    name, folder = imagenet_weights_file(backbone)
    url = mirror_url(imagenet_weights_url(backbone), "torchvision", name)
    prefix = _hash_prefix(name)
    path = folder / name
    advice = f"copy torchvision's {name} into {folder}, or pass --weights PATH to a {backbone} state_dict file"
    print(f"downloading ImageNet weights for {backbone}: {url} -> {path}", file=sys.stderr)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        downloads.download_to_file(url, path, sha256_prefix=prefix, what=f"ImageNet weights for {backbone}")
    except downloads.ChecksumMismatch:
        raise CheckpointError(
            f"the download of {name} from {url} does not have the sha256 its name promises "
            f"({prefix}...): incomplete or corrupt, nothing was kept; run again, or "
            f"{advice}"
        ) from None
    except TimeoutError:  # a server that stalls mid-transfer must not hang the run
        raise CheckpointError(
            f"cannot download ImageNet weights for {backbone} from {url} (the server sent nothing for "
            f"{downloads.TIMEOUT:g} s); nothing was kept: run again, or {advice}"
        ) from None
    except (OSError, HTTPException, ValueError) as error:
        raise CheckpointError(
            f"cannot download ImageNet weights for {backbone} from {url} ({_short_reason(error)}); "
            f"nothing was kept: run again, or {advice}"
        ) from None
    return path


def _hash_prefix(file_name: str) -> str | None:
    # torchvision names its files <arch>-<first 8+ hex digits of the sha256>.pth
    match = re.search(r"-([a-f0-9]{6,})\.", file_name)
    return match.group(1) if match else None


def sha256_file(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _short_reason(error: BaseException) -> str:
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    text = text.split(". ")[0].rstrip(".")
    return f"{type(error).__name__}: {text[:160]}" if text else type(error).__name__


def read_tensor_file(path: str | os.PathLike, what: str) -> dict:
    """torch.load a file of tensors (weights_only) onto the CPU, turning every failure into one line."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{what} not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for unreadable files
        raise CheckpointError(
            f"cannot read {what} {path}: not a readable PyTorch tensor file ({_short_reason(error)})"
        ) from error
    if not isinstance(state, dict):
        raise CheckpointError(f"cannot read {what} {path}: expected a dict of tensors, found {type(state).__name__}")
    return state


def locate_teacher_weights(backbone: str, weights: str) -> tuple[Path | None, bool]:
    """The weights file to read (None for random weights) and whether it must be torchvision's own.

    A missing ImageNet file is downloaded where this process permits it; else this fails, before anything
    is built or trained.
    """
    if weights == "none":
        return None, False
    if weights == "imagenet":
        name, folder = imagenet_weights_file(backbone)
        path = folder / name
        if not path.is_file():
            if downloads_permitted():
                return download_imagenet_weights(backbone), True
            why = (
                "downloads are off (--offline or HARNESS_OFFLINE=1)"
                if offline()
                else "only `python -m harness run` downloads it, before any job starts"
            )
            raise CheckpointError(
                f"ImageNet weights for {backbone} not found: expected torchvision's file {name} in {folder} "
                f"(torch.hub.get_dir()/checkpoints; set TORCH_HOME to use another cache); {why}: copy the file "
                f"there, or pass --weights PATH to a {backbone} state_dict file"
            )
        return path, True
    path = Path(weights).expanduser()
    if not path.is_file():
        raise CheckpointError(
            f"teacher weights file not found: {path} (weights must be 'imagenet', 'none' or a file path)"
        )
    return path, False


def load_teacher_weights(teacher: nn.Module, backbone: str, weights: str) -> TeacherWeights:
    """Fill the teacher with the chosen weights and return where they came from."""
    path, must_be_official = locate_teacher_weights(backbone, weights)
    if path is None:
        return TeacherWeights(source="none", path=None, sha256=None, official=False)
    digest = sha256_file(path)
    official_name, _ = imagenet_weights_file(backbone)
    prefix = _hash_prefix(official_name)
    official = prefix is not None and digest.startswith(prefix)
    if must_be_official and not official:
        raise CheckpointError(
            f"ImageNet weights file {path} does not have the sha256 its name promises ({prefix}...): the file is "
            f"corrupt or incomplete; replace it with torchvision's {official_name}"
        )
    state = read_tensor_file(path, "teacher weights file")
    # torchvision checkpoints carry layer4 and fc, which the teacher never computes.
    state = {k: v for k, v in state.items() if is_teacher_key(k)}
    problem = describe_mismatch(_shapes(teacher.state_dict()), state)
    if problem:
        raise CheckpointError(f"teacher weights file {path} does not fit torchvision's {backbone}: {problem}")
    teacher.load_state_dict(state, strict=True)
    return TeacherWeights(
        source=weights if weights == "imagenet" else str(path), path=str(path), sha256=digest, official=official
    )


# --------------------------------------------------------------------------------------------
# Official checkpoints


def _shapes(state: dict) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in state.items()}


@cache
def expected_shapes(backbone: str) -> dict[str, dict[str, tuple[int, ...]]]:
    """Key -> shape of the official bottleneck and decoder state_dicts (built on the meta device)."""
    with torch.device("meta"):
        return {
            "bn": _shapes(OneClassBottleneck(backbone).state_dict()),
            "decoder": _shapes(StudentDecoder(backbone).state_dict()),
        }


def _listing(keys: list[str]) -> str:
    shown = ", ".join(keys[:_SHOWN])
    return f"{shown}, ... ({len(keys)} in all)" if len(keys) > _SHOWN else shown


def describe_mismatch(expected: dict[str, tuple[int, ...]], state: dict) -> str:
    """'' when `state` has exactly the expected keys and shapes, else a one-line summary of the differences."""
    got = {k: tuple(v.shape) if hasattr(v, "shape") else None for k, v in state.items()}
    missing = [k for k in expected if k not in got]
    unexpected = [k for k in got if k not in expected]
    differ = [
        f"{k} {list(shape) if shape is not None else type(state[k]).__name__} in file vs {list(expected[k])} in model"
        for k in expected
        if k in got and (shape := got[k]) != expected[k]
    ]
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing keys ({_listing(missing)})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected keys ({_listing(unexpected)})")
    if differ:
        parts.append(f"{len(differ)} shapes differ ({_listing(differ)})")
    return "; ".join(parts)


def guess_backbone(state: dict) -> str | None:
    """The backbone whose official bottleneck and decoder have exactly the state's keys and shapes."""
    for backbone in BACKBONES:
        expected = expected_shapes(backbone)
        if all(
            isinstance(state.get(part), dict) and not describe_mismatch(expected[part], state[part])
            for part in ("bn", "decoder")
        ):
            return backbone
    return None


def check_checkpoint(state: object, backbone: str, source: str) -> None:
    """Raise CheckpointError (one line) unless `state` is an official checkpoint for `backbone`."""
    if not isinstance(state, dict) or not {"bn", "decoder"} <= set(state):
        found = sorted(map(str, state))[: _SHOWN + 2] if isinstance(state, dict) else type(state).__name__
        raise CheckpointError(
            f"{source} is not an RD4AD checkpoint: expected a dict with keys 'bn' and 'decoder', found {found}"
        )
    expected = expected_shapes(backbone)
    problems = [
        f"{part}: {problem}"
        for part in ("bn", "decoder")
        if (
            problem := describe_mismatch(expected[part], state[part])
            if isinstance(state[part], dict)
            else "not a state_dict"
        )
    ]
    if problems:
        guess = guess_backbone(state)
        if guess and guess != backbone:
            raise CheckpointError(
                f"{source} is an RD checkpoint for backbone {guess}, not {backbone}: set the backbone to {guess} "
                f"(differences: {'; '.join(problems)})"
            )
        raise CheckpointError(f"{source} does not fit RD with backbone {backbone}: {'; '.join(problems)}")


def write_checkpoint(state: dict, path: str | os.PathLike) -> None:
    """torch.save in the official format, atomically (a partial file never replaces a good one)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        torch.save(state, tmp)
        os.replace(tmp, path)
    except OSError as error:
        tmp.unlink(missing_ok=True)
        raise CheckpointError(f"cannot write checkpoint {path}: {_short_reason(error)}") from error
