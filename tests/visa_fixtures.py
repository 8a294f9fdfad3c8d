"""A synthetic data set in VisA's raw layout (split_csv/1cls.csv, <cat>/Data/Images/{Normal,Anomaly}/*.JPG,
<cat>/Data/Masks/Anomaly/*.png with class ids), at any fraction of VisA's image counts.

Tests use a few images per category; at `--fraction 1` it has VisA's 8,659 training and 2,162 test
images (the memory measurement of the unified protocol, docs/protocols.md):

    python tests/visa_fixtures.py /tmp/visa-like --fraction 1 --width 320 --height 224
"""

from __future__ import annotations

import argparse
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

VISA_1CLS_COUNTS = {  # (training, test) images of VisA's 1cls split; the test split is ~half anomalous
    "candle": (900, 200),
    "capsules": (542, 160),
    "cashew": (450, 150),
    "chewinggum": (453, 150),
    "fryum": (450, 150),
    "macaroni1": (900, 200),
    "macaroni2": (900, 200),
    "pcb1": (904, 200),
    "pcb2": (901, 200),
    "pcb3": (905, 201),
    "pcb4": (904, 201),
    "pipe_fryum": (450, 150),
}


def _image(rng: np.random.Generator, width: int, height: int, tone: np.ndarray) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width]
    stripes = 0.5 + 0.5 * np.sin((x * 0.7 + y) * 0.15 + rng.uniform(0, 6.3))
    pixels = tone * (0.7 + 0.3 * stripes[..., None]) + rng.normal(0, 4, (height, width, 3))
    return np.clip(pixels, 0, 255).astype(np.uint8)


def make_visa(
    root: Path, counts: dict[str, tuple[int, int, int]], width: int = 48, height: int = 32, workers: int = 2
) -> Path:
    """counts: category -> (training, normal test, anomalous test) images. Returns root."""
    rows = ["object,split,label,image,mask"]
    tasks = []
    for c, (category, (n_train, n_good, n_bad)) in enumerate(counts.items()):
        tone = np.array([120 + 9 * c % 100, 90 + 17 * c % 120, 150 - 7 * c % 90], np.float32)
        for i in range(n_train + n_good + n_bad):
            anomalous = i >= n_train + n_good
            image = f"{category}/Data/Images/{'Anomaly' if anomalous else 'Normal'}/{i:04d}.JPG"
            mask = f"{category}/Data/Masks/Anomaly/{i:04d}.png" if anomalous else ""
            split = "train" if i < n_train else "test"
            rows.append(f"{category},{split},{'anomaly' if anomalous else 'normal'},{image},{mask}")
            tasks.append((image, mask, tone, (c, i)))

    def write(task) -> None:
        image, mask, tone, seed = task
        rng = np.random.default_rng(seed)
        pixels = _image(rng, width, height, tone)
        if mask:
            ids = np.zeros((height, width), np.uint8)
            cy, cx = rng.integers(height // 4, 3 * height // 4), rng.integers(width // 4, 3 * width // 4)
            ids[max(0, cy - height // 6) : cy + height // 6, max(0, cx - width // 6) : cx + width // 6] = 1
            pixels[ids > 0] = (30, 200, 60)
            (root / mask).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(ids).save(root / mask)
        (root / image).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(root / image, quality=92)

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(write, tasks))
    (root / "split_csv").mkdir(parents=True, exist_ok=True)
    (root / "split_csv" / "1cls.csv").write_bytes(("\r\n".join(rows) + "\r\n").encode())
    return root


def visa_counts(fraction: float, categories=tuple(VISA_1CLS_COUNTS)) -> dict[str, tuple[int, int, int]]:
    """VisA's counts scaled by `fraction` (at least 2 training, 1 normal and 1 anomalous test image)."""
    scaled = {}
    for category in categories:
        n_train, n_test = VISA_1CLS_COUNTS[category]
        n_bad = n_test // 2
        scaled[category] = (
            max(2, round(n_train * fraction)),
            max(1, round((n_test - n_bad) * fraction)),
            max(1, round(n_bad * fraction)),
        )
    return scaled


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="write a synthetic data set in VisA's raw layout")
    parser.add_argument("root")
    parser.add_argument("--fraction", type=float, default=1.0, help="of VisA's image counts (default 1: all)")
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--height", type=int, default=224)
    args = parser.parse_args()
    counts = visa_counts(args.fraction)
    make_visa(Path(args.root), counts, args.width, args.height)
    print(
        f"{args.root}: {sum(c[0] for c in counts.values())} training and "
        f"{sum(c[1] + c[2] for c in counts.values())} test images in {len(counts)} categories",
        file=sys.stderr,
    )
