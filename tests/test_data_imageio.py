"""Decoding and resizing: pixels identical to the official RD4AD pipeline, JPEGs included.

The official code reads an image with PIL, converts it to RGB, resizes it with torchvision's
Resize((size, size)) (PIL's bilinear filter on the full-resolution image) and applies ToTensor.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms

from harness.datasets.imageio import load_rgb
from harness.datasets.visa import VisA

pytestmark = pytest.mark.usefixtures("isolated_data_env")


def official(path: Path, size: int) -> torch.Tensor:
    """The official preprocessing up to ToTensor (normalisation is applied later, by the method)."""
    pipeline = transforms.Compose([transforms.Resize((size, size)), transforms.ToTensor()])
    return pipeline(Image.open(path).convert("RGB"))


def photo(width: int, height: int, seed: int) -> np.ndarray:
    """Smooth shading, fine texture and noise: JPEG's reduced-scale decoding changes such pixels."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width] / 1000.0
    base = 120 + 60 * np.sin(5 * x + seed) * np.cos(3 * y) + 30 * y
    pixels = base[..., None] * np.array([1.0, 0.8, 0.6]) + rng.normal(0, 12, (height, width, 3))
    return np.clip(pixels, 0, 255).astype(np.uint8)


def as_tensor(pixels: np.ndarray) -> torch.Tensor:
    return transforms.ToTensor()(Image.fromarray(pixels))


@pytest.mark.parametrize("size", [256, 64])
def test_visa_sized_jpeg_equals_the_official_decode_and_resize(tmp_path, size):
    # 1500x1000 to 256 px is where JPEG reduced-scale (draft) decoding would kick in (scale 1/2).
    path = tmp_path / "000.JPG"
    Image.fromarray(photo(1500, 1000, 0)).save(path, quality=95)
    assert torch.equal(as_tensor(load_rgb(path, size)), official(path, size))


@pytest.mark.parametrize("mode", ["L", "RGBA", "P"])
def test_other_modes_equal_the_official_pipeline(tmp_path, mode):
    path = tmp_path / "image.png"
    Image.fromarray(photo(300, 200, 1)).convert(mode).save(path)
    assert torch.equal(as_tensor(load_rgb(path, 64)), official(path, 64))


def test_visa_adapter_images_equal_the_official_pipeline(tmp_path):
    root = tmp_path / "visa"
    rows = []
    for i, (kind, split) in enumerate([("Normal", "train"), ("Normal", "test"), ("Anomaly", "test")]):
        image = root / "candle" / "Data" / "Images" / kind / f"{i:03d}.JPG"
        image.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(photo(1500, 1000, 10 + i)).save(image, quality=90)
        mask = ""
        if kind == "Anomaly":
            mask = f"candle/Data/Masks/Anomaly/{i:03d}.png"
            (root / mask).parent.mkdir(parents=True, exist_ok=True)
            ids = np.zeros((1000, 1500), dtype=np.uint8)
            ids[200:400, 300:700] = 1
            Image.fromarray(ids).save(root / mask)
        rows.append(f"candle,{split},{kind.lower()},candle/Data/Images/{kind}/{i:03d}.JPG,{mask}")
    (root / "split_csv").mkdir(parents=True)
    text = "\r\n".join(["object,split,label,image,mask", *rows]) + "\r\n"
    (root / "split_csv" / "1cls.csv").write_bytes(text.encode())
    data = VisA(root).load("candle", 256)
    for split in (data.train, data.test):
        for pixels, relative in zip(split.images, split.paths, strict=False):
            assert torch.equal(as_tensor(pixels), official(root / relative, 256)), relative
