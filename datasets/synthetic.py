"""The built-in synthetic data set: generated deterministically on first use, in the MVTec AD layout.

Three categories that look different (a texture, a regular pattern, an object on a background),
each with normal training images, normal test images and four defect kinds with pixel masks.
It needs no download, so the harness runs end to end on a fresh machine.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from harness.datasets.mvtec import MVTecLayout
from harness.errors import DataError
from harness.paths import cache_dir

VERSION = "v1"
SIZE = 128
COUNTS = {"train": 40, "good": 16, "defect": 8}  # images per split; "defect" is per defect kind
CATEGORIES = ("weave", "tiles", "disc")
DEFECTS = ("scratch", "stain", "missing", "color")


def default_synthetic_root() -> Path:
    return cache_dir() / "synthetic" / VERSION


# ---- normal images -------------------------------------------------------------------------------


def _weave(rng: np.random.Generator) -> np.ndarray:
    """A woven-looking texture: two families of oriented stripes with noise, in warm tones."""
    y, x = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
    phase = rng.uniform(0, 2 * np.pi, 2)
    warp = np.sin(x * 0.55 + phase[0]) * np.sin(y * 0.18 + phase[1])
    weft = np.sin(y * 0.55 + phase[1]) * np.sin(x * 0.18 + phase[0])
    pattern = 0.5 + 0.25 * (warp + weft) + rng.normal(0, 0.06, (SIZE, SIZE))
    base = np.array([170, 130, 90], np.float32) + rng.normal(0, 6, 3)
    return np.clip(base * (0.6 + 0.6 * pattern[..., None]), 0, 255).astype(np.uint8)


def _tiles(rng: np.random.Generator) -> np.ndarray:
    """A regular grid of square tiles with grout lines; a small random shift and tint per image."""
    image = Image.new("RGB", (SIZE, SIZE), (90, 90, 95))
    draw = ImageDraw.Draw(image)
    pitch, gap = 32, 4
    shift = rng.integers(0, pitch, 2)
    tint = rng.normal(0, 5, 3)
    for row in range(-1, SIZE // pitch + 1):
        for col in range(-1, SIZE // pitch + 1):
            x0, y0 = col * pitch + shift[0], row * pitch + shift[1]
            shade = 200 + (20 if (row + col) % 2 else -20)
            colour = tuple(int(np.clip(shade + t, 0, 255)) for t in (tint + np.array([0, -10, -30])))
            draw.rectangle([x0 + gap // 2, y0 + gap // 2, x0 + pitch - gap // 2, y0 + pitch - gap // 2], fill=colour)
    pixels = np.asarray(image, np.float32) + rng.normal(0, 4, (SIZE, SIZE, 3))
    return np.clip(pixels, 0, 255).astype(np.uint8)


def _disc_geometry(rng: np.random.Generator) -> tuple[float, float, float]:
    return SIZE / 2 + rng.uniform(-6, 6), SIZE / 2 + rng.uniform(-6, 6), rng.uniform(36, 42)


def _disc(rng: np.random.Generator, geometry: tuple[float, float, float]) -> np.ndarray:
    """A round part with a centre hole and a notch, on a dark background."""
    cx, cy, radius = geometry
    image = Image.new("RGB", (SIZE, SIZE), (30, 35, 40))
    draw = ImageDraw.Draw(image)
    draw.ellipse([cx - radius, cy - radius, cx + radius, cy + radius], fill=(70, 140, 200))
    inner = radius * 0.35
    draw.ellipse([cx - inner, cy - inner, cx + inner, cy + inner], fill=(30, 35, 40))
    draw.rectangle([cx - 3, cy - radius, cx + 3, cy - radius + 8], fill=(30, 35, 40))
    image = image.filter(ImageFilter.GaussianBlur(0.8))
    pixels = np.asarray(image, np.float32) + rng.normal(0, 4, (SIZE, SIZE, 3))
    return np.clip(pixels, 0, 255).astype(np.uint8)


# ---- defects: each returns the defective image and its mask --------------------------------------


def _blob_mask(rng: np.random.Generator, centre: tuple[float, float], radius: float) -> np.ndarray:
    """An irregular blob: a union of a few overlapping ellipses."""
    mask = Image.new("L", (SIZE, SIZE), 0)
    draw = ImageDraw.Draw(mask)
    for _ in range(4):
        dx, dy = rng.normal(0, radius * 0.35, 2)
        rx, ry = radius * rng.uniform(0.5, 0.9, 2)
        x, y = centre[0] + dx, centre[1] + dy
        draw.ellipse([x - rx, y - ry, x + rx, y + ry], fill=255)
    return np.asarray(mask) > 0


def _scratch(image: np.ndarray, rng: np.random.Generator, centre) -> tuple[np.ndarray, np.ndarray]:
    angle = rng.uniform(0, np.pi)
    length = rng.uniform(35, 55)
    dx, dy = np.cos(angle) * length / 2, np.sin(angle) * length / 2
    mask = Image.new("L", (SIZE, SIZE), 0)
    ImageDraw.Draw(mask).line(
        [centre[0] - dx, centre[1] - dy, centre[0] + dx, centre[1] + dy], fill=255, width=int(rng.integers(4, 7))
    )
    region = np.asarray(mask) > 0
    out = image.copy()
    out[region] = np.array([245, 245, 235]) if image.mean() < 128 else np.array([20, 20, 25])
    return out, region


def _stain(image: np.ndarray, rng: np.random.Generator, centre) -> tuple[np.ndarray, np.ndarray]:
    region = _blob_mask(rng, centre, rng.uniform(10, 15))
    out = image.astype(np.float32)
    colour = np.array([40, 70, 20], np.float32) if image.mean() > 90 else np.array([220, 200, 60], np.float32)
    out[region] = 0.15 * out[region] + 0.85 * colour
    return np.clip(out, 0, 255).astype(np.uint8), region


def _missing(image: np.ndarray, rng: np.random.Generator, centre, fill: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    half = rng.uniform(8, 12, 2)
    mask = Image.new("L", (SIZE, SIZE), 0)
    ImageDraw.Draw(mask).rectangle(
        [centre[0] - half[0], centre[1] - half[1], centre[0] + half[0], centre[1] + half[1]], fill=255
    )
    region = np.asarray(mask) > 0
    out = image.copy()
    out[region] = fill[region]
    return out, region


def _color(image: np.ndarray, rng: np.random.Generator, centre) -> tuple[np.ndarray, np.ndarray]:
    region = _blob_mask(rng, centre, rng.uniform(11, 16))
    out = image.astype(np.float32)
    grey = out[region].mean(axis=1, keepdims=True)
    # other hue at about the same brightness: rotate the channels and strengthen the saturation,
    # so that even a nearly grey surface visibly changes colour
    out[region] = grey + 3.0 * (out[region][:, [2, 0, 1]] - grey) + np.array([-40, 10, 40])
    return np.clip(out, 0, 255).astype(np.uint8), region


def _make_image(category: str, rng: np.random.Generator, defect: str | None) -> tuple[np.ndarray, np.ndarray | None]:
    if category == "disc":
        geometry = _disc_geometry(rng)
        image = _disc(rng, geometry)
        cx, cy, radius = geometry
        angle = rng.uniform(0, 2 * np.pi)
        distance = radius * rng.uniform(0.55, 0.75)  # on the ring, between hole and rim
        centre = (cx + distance * np.cos(angle), cy + distance * np.sin(angle))
        background = np.full_like(image, (30, 35, 40))
    else:
        image = _weave(rng) if category == "weave" else _tiles(rng)
        centre = tuple(rng.uniform(28, SIZE - 28, 2))
        background = np.full_like(image, int(image.mean() * 0.4))
    if defect is None:
        return image, None
    if defect == "scratch":
        return _scratch(image, rng, centre)
    if defect == "stain":
        return _stain(image, rng, centre)
    if defect == "missing":
        return _missing(image, rng, centre, background)
    return _color(image, rng, centre)


# ---- generation on disk --------------------------------------------------------------------------


def generate(root: Path) -> None:
    """Write the whole data set under `root` (MVTec AD layout). Deterministic: same bytes every time."""
    for c, category in enumerate(CATEGORIES):
        base = root / category
        plan: list[tuple[str, str | None, int, int]] = [
            ("train/good", None, COUNTS["train"], 0),
            ("test/good", None, COUNTS["good"], 1),
        ]
        plan += [(f"test/{defect}", defect, COUNTS["defect"], 2 + d) for d, defect in enumerate(DEFECTS)]
        for folder, defect, count, stream in plan:
            (base / folder).mkdir(parents=True, exist_ok=True)
            if defect:
                (base / "ground_truth" / defect).mkdir(parents=True, exist_ok=True)
            for i in range(count):
                rng = np.random.default_rng([c, stream, i])
                image, mask = _make_image(category, rng, defect)
                Image.fromarray(image).save(base / folder / f"{i:03d}.png")
                if mask is not None and defect is not None:
                    Image.fromarray(mask.astype(np.uint8) * 255).save(
                        base / "ground_truth" / defect / f"{i:03d}_mask.png"
                    )


def _remove_killed_staging(root: Path) -> None:
    """Staging folders of `root` that a killed generation left. Called with the lock held: no live process
    is generating `root`, so every folder named like its staging (mkdtemp's 8 characters) is a leftover."""
    staging = re.compile(rf"^\.{re.escape(root.name)}-[a-z0-9_]{{8}}$")
    for path in root.parent.iterdir():
        if staging.match(path.name) and path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)


def ensure_generated(root: Path) -> Path:
    """Generate the data set into `root` unless a complete copy is there; safe against interruption
    and against other processes generating it at the same time (one generates, the others wait)."""
    if (root / ".complete").exists():
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    with open(root.parent / f".{root.name}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, or by the kernel if this process dies
        if (root / ".complete").exists():
            return root  # generated by another process while this one waited
        _remove_killed_staging(root)
        staging = Path(tempfile.mkdtemp(prefix=f".{root.name}-", dir=root.parent))
        try:
            generate(staging)
            (staging / ".complete").write_text(VERSION + "\n")
            if root.exists():
                shutil.rmtree(root)  # an incomplete earlier attempt
            os.replace(staging, root)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return root


class SyntheticAdapter(MVTecLayout):
    name = "synthetic"
    description = (
        f"Built-in synthetic data ({', '.join(CATEGORIES)}; {SIZE}px, MVTec AD layout), generated on first use"
    )
    default_profile = "demo"
    needs_root = False  # generated where the root says (by default under the cache) on first use
    split_counts = {
        category: (COUNTS["train"], COUNTS["good"] + COUNTS["defect"] * len(DEFECTS)) for category in CATEGORIES
    }

    def __init__(self, root: str | None = None, **options) -> None:
        super().__init__(str(root) if root else str(default_synthetic_root()), **options)

    @property
    def categories(self) -> tuple[str, ...]:
        return CATEGORIES

    def check_root(self) -> None:
        # a missing root is where the data set will be generated; a file there is an error
        root = Path(str(self.root))
        if root.exists() and not root.is_dir():
            raise DataError(f"{root}: not a folder; --root must be a folder to generate the synthetic data set in")

    def layout_problem(self, category: str) -> str:
        return ""  # generated in this layout on first use

    def category_dir(self, category: str) -> Path:
        if category in CATEGORIES:
            ensure_generated(Path(str(self.root)))
        return super().category_dir(category)
