"""Run folders written by hand for the report, plots and rescore tests (nothing is trained)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from harness.store import RunStore, pack_predictions, write_json

DEFINITIONS = {
    "image_auroc": "I-AUROC, image score = max of anomaly map, sklearn tie handling",
    "pixel_auroc": "P-AUROC over all test pixels, exact",
    "au_pro": "AU-PRO, MVTec AD definition, 8-connected, FPR limit 0.3, normalised",
}


def write_record(
    run: Path,
    category: str,
    seed: int,
    values: dict,
    *,
    dataset: str = "mvtec",
    weights: str = "imagenet",
    epochs: int = 200,
    history: list | None = None,
    reasons: dict | None = None,
    fingerprint: str = "f1",
    definitions: dict | None = None,
) -> dict:
    """A record.json as the runner writes it, with the given metric values (fractions, None = undefined)."""
    job_id = f"{category}-s{seed}-{dataset[:4]}{epochs}{weights[:2]}"
    definitions = DEFINITIONS | (definitions or {})
    record = {
        "schema": 1,
        "job_id": job_id,
        "status": "ok",
        "dataset": dataset,
        "category": category,
        "method": "rd",
        "profile": "paper" if weights == "imagenet" else "demo",
        "seed": seed,
        "settings": {
            "backbone": "wide_resnet50_2" if weights == "imagenet" else "resnet18",
            "weights": weights,
            "image_size": 256,
            "epochs": epochs,
            "batch_size": 16,
            "seed": seed,
            "device": "cpu",
        },
        "checkpoint": None,
        "metrics": {
            name: {"value": value, "definition": definitions.get(name, name), "reason": (reasons or {}).get(name)}
            for name, value in values.items()
        },
        "evaluation": {"image_size": 256, "score_pooling": "max of the anomaly map"},
        "data": {"fingerprint": fingerprint, "n_train": 10, "n_test": 8, "n_test_anomalous": 4, "has_masks": True},
        "method_info": {"comparable_to_published": weights != "none"},
        "history": history or [],
        "timings": {"total": 1.0},
        "provenance": {},
    }
    write_json(run / "jobs" / job_id / "record.json", record)
    return record


def golden_run(run: Path) -> Path:
    """MVTec AD, two categories (one with an underscore), two seeds; AU-PRO but not the paper's PRO."""
    values = {
        ("bottle", 0): (1.0, 0.9861, 0.9512),
        ("bottle", 1): (0.998, 0.9853, 0.9488),
        ("metal_nut", 0): (0.9921, 0.9702, 0.9123),
        ("metal_nut", 1): (0.9957, 0.9688, 0.9201),
    }
    for (category, seed), (i, p, pro) in values.items():
        write_record(run, category, seed, {"image_auroc": i, "pixel_auroc": p, "au_pro": pro})
    return run


def random_teacher_run(run: Path) -> Path:
    """The same categories, one seed, a random-weight teacher and fewer epochs; P-AUROC undefined for one."""
    write_record(run, "bottle", 0, {"image_auroc": 0.9, "pixel_auroc": 0.95, "au_pro": 0.8}, weights="none", epochs=12)
    write_record(
        run,
        "metal_nut",
        0,
        {"image_auroc": 0.85, "pixel_auroc": None, "au_pro": 0.7},
        weights="none",
        epochs=12,
        reasons={"pixel_auroc": "no anomalous pixel in the test set"},
    )
    return run


def _blob(size: int, rng: np.random.Generator) -> np.ndarray:
    y, x = np.mgrid[0:size, 0:size]
    cy, cx = rng.integers(size // 4, 3 * size // 4, 2)
    return (y - cy) ** 2 + (x - cx) ** 2 <= (size // 6) ** 2


def plot_run(
    tmp: Path,
    *,
    categories=("weave", "disc"),
    seeds=(0, 1),
    size: int = 32,
    images_on_disk: bool = True,
    n_images: int = 6,
) -> Path:
    """A small synthetic-data run with predictions.npz, config.json, loss history and test images on disk
    (`n_images` per category, the second half anomalous)."""
    from harness.metrics import evaluate

    run, root = tmp / "plot-run", tmp / "data"
    store = RunStore(run)
    for c, category in enumerate(categories):
        paths, types, masks, labels = [], [], [], []
        for i in range(n_images):
            anomalous = i >= n_images // 2
            kind = "scratch" if anomalous else "good"
            paths.append(f"{category}/test/{kind}/{i:03d}.png")
            types.append(kind)
            labels.append(int(anomalous))
            masks.append(_blob(size, np.random.default_rng([c, i])) if anomalous else np.zeros((size, size), bool))
            if images_on_disk:
                (root / category / "test" / kind).mkdir(parents=True, exist_ok=True)
                pixels = np.random.default_rng([c, i, 7]).integers(60, 200, (size * 2, size * 2, 3)).astype(np.uint8)
                Image.fromarray(pixels).save(root / paths[-1])
        masks = np.stack(masks)
        for seed in seeds:
            rng = np.random.default_rng([c, seed])
            maps = rng.random((n_images, size, size)) * 0.5 + masks * rng.uniform(0.2, 0.6)
            maps = maps.astype(np.float32)  # as the methods return them
            scores = maps.max(axis=(1, 2))
            metrics = evaluate(scores, labels, maps, masks, names=("image_auroc", "pixel_auroc", "au_pro"))
            history = [{"epoch": e, "loss": float(0.5 * 0.7**e + 0.01 * seed), "seconds": 0.1} for e in range(1, 6)]
            record = write_record(
                run,
                category,
                seed,
                {n: v.value for n, v in metrics.items()},
                dataset="synthetic",
                weights="none",
                epochs=5,
                history=history,
                definitions={n: v.definition for n, v in metrics.items()},
            )
            job = run / "jobs" / record["job_id"]
            write_json(
                job / "config.json",
                {
                    "dataset": "synthetic",
                    "category": category,
                    "seed": seed,
                    "root": str(root),
                    "job_id": record["job_id"],
                },
            )
            store.write_result(record["job_id"], record, pack_predictions(scores, labels, maps, masks, paths, types))
    store.write_results_csv()
    return run


def dataset_run(
    run: Path,
    dataset: str,
    categories,
    *,
    seeds=(0, 1),
    offset: float = 0.0,
    weights: str = "imagenet",
    epochs: int = 200,
    metrics=("image_auroc", "pixel_auroc", "au_pro"),
) -> Path:
    """A run over many categories with plausible values (deterministic): table layouts at full size."""
    for c, category in enumerate(categories):
        for seed in seeds:
            rng = np.random.default_rng([c, seed, int(1000 * offset)])
            values = {m: float(min(1.0, 0.9 + 0.1 * rng.random() - offset)) for m in metrics}
            if c == 0 and "image_auroc" in values:
                values["image_auroc"] = 1.0  # a 100.0 in the table
            write_record(run, category, seed, values, dataset=dataset, weights=weights, epochs=epochs)
    return run
