import hashlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from harness.datasets import create
from harness.datasets.synthetic import CATEGORIES, COUNTS, DEFECTS, SIZE, ensure_generated, generate
from harness.errors import HarnessError


def _digest(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.png")):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory) -> Path:
    return ensure_generated(tmp_path_factory.mktemp("synthetic") / "v1")


def test_layout_is_mvtec(synthetic_root):
    assert len(CATEGORIES) >= 3 and len(DEFECTS) >= 3
    for category in CATEGORIES:
        base = synthetic_root / category
        assert len(list((base / "train" / "good").glob("*.png"))) == COUNTS["train"]
        assert len(list((base / "test" / "good").glob("*.png"))) == COUNTS["good"]
        assert not (base / "ground_truth" / "good").exists()
        for defect in DEFECTS:
            images = sorted((base / "test" / defect).glob("*.png"))
            assert [p.name for p in images][:2] == ["000.png", "001.png"]
            for image in images:
                mask = np.asarray(Image.open(base / "ground_truth" / defect / f"{image.stem}_mask.png"))
                assert mask.shape == (SIZE, SIZE) and set(np.unique(mask)) == {0, 255}
                picture = np.asarray(Image.open(image))
                assert picture.shape == (SIZE, SIZE, 3)


def test_defects_change_only_masked_pixels_and_categories_differ(synthetic_root):
    means = []
    for category in CATEGORIES:
        good = np.asarray(Image.open(synthetic_root / category / "train" / "good" / "000.png"), dtype=np.float32)
        means.append(good.mean(axis=(0, 1)))
        mask = np.asarray(Image.open(synthetic_root / category / "ground_truth" / "stain" / "000_mask.png")) > 0
        assert 0.002 < mask.mean() < 0.2  # a visible but local defect
    # texture, pattern and object look different: their mean colours are far apart
    assert min(np.abs(a - b).sum() for i, a in enumerate(means) for b in means[i + 1 :]) > 20


def test_generation_is_deterministic(synthetic_root, tmp_path):
    generate(tmp_path)
    assert _digest(tmp_path) == _digest(synthetic_root)


def test_adapter_loads_and_generates_on_first_use(tmp_path):
    adapter = create("synthetic", str(tmp_path / "fresh"))
    data = adapter.load("disc", 64)
    assert (tmp_path / "fresh" / ".complete").exists()
    assert data.train.images.shape == (COUNTS["train"], 64, 64, 3)
    n_test = COUNTS["good"] + COUNTS["defect"] * len(DEFECTS)
    assert data.test.images.shape == (n_test, 64, 64, 3)
    assert data.test.labels.sum() == COUNTS["defect"] * len(DEFECTS)
    # normal test images have empty masks, every anomalous one a non-empty mask
    per_image = data.test.masks.reshape(n_test, -1).any(axis=1)
    assert np.array_equal(per_image, data.test.labels == 1)
    assert data.fingerprint == adapter.fingerprint("disc")


def test_adapter_takes_the_layout_options(tmp_path):
    assert create("synthetic", str(tmp_path), cache=True).options["cache"] is True
    with pytest.raises(HarnessError, match="unknown option"):
        create("synthetic", str(tmp_path), split="1cls")


def test_processes_generating_at_once_share_one_complete_copy(tmp_path, synthetic_root, monkeypatch):
    # The first process to take the lock generates; the others wait and then use its copy, which a
    # late finisher must never delete while it is being read.
    import multiprocessing

    from harness.datasets import synthetic

    calls = tmp_path / "calls"

    def counted(folder):
        with open(calls, "a") as log:
            log.write(f"{folder}\n")
        generate(folder)

    monkeypatch.setattr(synthetic, "generate", counted)
    root = tmp_path / "data" / "v1"
    with multiprocessing.get_context("fork").Pool(3) as pool:
        roots = pool.map(ensure_generated, [root] * 3)
    assert roots == [root] * 3
    assert len(calls.read_text().splitlines()) == 1  # generated once
    assert _digest(root) == _digest(synthetic_root)
    assert sorted(p.name for p in root.parent.iterdir()) == [".v1.lock", "v1"]  # no staging folder left behind
