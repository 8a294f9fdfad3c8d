"""MVTec AD, read in its published layout (also the layout of the built-in synthetic data set).

<root>/<cat>/train/good/*.png, <root>/<cat>/test/{good,<defect>}/*.png,
<root>/<cat>/ground_truth/<defect>/<stem>_mask.png
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from harness.datasets.base import Adapter, CategoryData, Split, split_fingerprint
from harness.datasets.imageio import image_size_of, load_mask, load_rgb, parallel_map
from harness.errors import DataError
from harness.paths import data_root

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")

MVTEC_CATEGORIES = (
    "bottle", "cable", "capsule", "carpet", "grid", "hazelnut", "leather", "metal_nut",
    "pill", "screw", "tile", "toothbrush", "transistor", "wood", "zipper",
)


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))


class MVTecLayout(Adapter):
    """Reads any folder in the MVTec AD layout; subclasses fix the name, categories and root."""

    download_hint = ""

    def category_dir(self, category: str) -> Path:
        if category not in self.categories:
            raise DataError(f"unknown category '{category}' for {self.name}; valid: {', '.join(self.categories)}")
        if not self.root:
            raise DataError(f"no root folder given for {self.name}: pass --root PATH or set HARNESS_DATA. {self.download_hint}")
        folder = Path(self.root) / category
        if not folder.is_dir():
            raise DataError(f"{folder}: folder not found (expected the {self.name} layout <root>/{category}/train/good). {self.download_hint}")
        return folder

    def _test_entries(self, folder: Path) -> list[tuple[Path, str, Path | None]]:
        """(image, defect type, mask or None) for every test image, masks paired by name."""
        test_dir = folder / "test"
        if not test_dir.is_dir():
            raise DataError(f"{test_dir}: folder not found (expected test/good and test/<defect>)")
        entries = []
        for defect_dir in sorted(p for p in test_dir.iterdir() if p.is_dir()):
            defect = defect_dir.name
            images = _images_in(defect_dir)
            if defect == "good":
                entries += [(image, defect, None) for image in images]
                continue
            mask_dir = folder / "ground_truth" / defect
            masks = {p.stem: p for p in _images_in(mask_dir)} if mask_dir.is_dir() else {}
            for image in images:
                mask = masks.pop(f"{image.stem}_mask", None)
                if mask is None:
                    raise DataError(f"{image}: no mask {mask_dir / (image.stem + '_mask.png')}")
                entries.append((image, defect, mask))
            if masks:
                extra = next(iter(masks.values()))
                raise DataError(f"{extra}: mask without an image in {defect_dir}")
        return entries

    def fingerprint(self, category: str) -> str:
        folder = self.category_dir(category)
        train = _images_in(folder / "train" / "good") if (folder / "train" / "good").is_dir() else []
        rows = [("train", str(p.relative_to(self.root)), 0) for p in train]
        rows += [("test", str(img.relative_to(self.root)), int(d != "good")) for img, d, _ in self._test_entries(folder)]
        return split_fingerprint(rows)

    def load(self, category: str, image_size: int) -> CategoryData:
        folder = self.category_dir(category)
        train_dir = folder / "train" / "good"
        train_paths = _images_in(train_dir) if train_dir.is_dir() else []
        if not train_paths:
            raise DataError(f"{train_dir}: no training images (expected normal images in train/good)")
        test_entries = self._test_entries(folder)
        if not test_entries:
            raise DataError(f"{folder / 'test'}: no test images")
        root = Path(self.root)

        train = Split(
            images=np.stack(parallel_map(lambda p: load_rgb(p, image_size), train_paths)),
            labels=np.zeros(len(train_paths), dtype=np.int64),
            masks=None,
            defect_types=["good"] * len(train_paths),
            paths=[str(p.relative_to(root)) for p in train_paths],
        )

        def load_test(entry):
            image_path, _, mask_path = entry
            image = load_rgb(image_path, image_size)
            if mask_path is None:
                return image, np.zeros((image_size, image_size), dtype=bool)
            return image, load_mask(mask_path, image_size, expected_size=image_size_of(image_path))

        loaded = parallel_map(load_test, test_entries)
        test = Split(
            images=np.stack([image for image, _ in loaded]),
            labels=np.array([int(defect != "good") for _, defect, _ in test_entries]),
            masks=np.stack([mask for _, mask in loaded]),
            defect_types=[defect for _, defect, _ in test_entries],
            paths=[str(image.relative_to(root)) for image, _, _ in test_entries],
        )
        rows = [("train", p, 0) for p in train.paths] + [("test", p, int(l)) for p, l in zip(test.paths, test.labels)]
        return CategoryData(self.name, category, train, test, fingerprint=split_fingerprint(rows))


class MVTecAD(MVTecLayout):
    name = "mvtec"
    description = "MVTec AD (15 categories, pixel masks)"
    default_profile = "paper"
    download_hint = "Download MVTec AD from https://www.mvtec.com/company/research/datasets/mvtec-ad and extract it."

    def __init__(self, root: str | None = None) -> None:
        super().__init__(root or data_root("mvtec"))

    @property
    def categories(self) -> tuple[str, ...]:
        return MVTEC_CATEGORIES
