"""MVTec AD, read in its published layout (also the layout of the built-in synthetic data set).

<root>/<cat>/train/good/*.png, <root>/<cat>/test/{good,<defect>}/*.png,
<root>/<cat>/ground_truth/<defect>/<stem>_mask.png

Grayscale categories (grid, screw, zipper) are converted to RGB; masks are paired with their image
by name, and a missing or extra mask, a mask of another size than its image, an unreadable image or
an empty training split is an error naming the file or folder.
"""

from __future__ import annotations

from pathlib import Path

from harness.datasets.base import empty_training_split
from harness.datasets.files import FileAdapter, Item, Listing, folder_entries, images_in, mvtec_test_items
from harness.errors import DataError

MVTEC_CATEGORIES = (
    "bottle",
    "cable",
    "capsule",
    "carpet",
    "grid",
    "hazelnut",
    "leather",
    "metal_nut",
    "pill",
    "screw",
    "tile",
    "toothbrush",
    "transistor",
    "wood",
    "zipper",
)
# (training images, test images) per category of the published data set: sweep time estimates
MVTEC_COUNTS = {
    "bottle": (209, 83),
    "cable": (224, 150),
    "capsule": (219, 132),
    "carpet": (280, 117),
    "grid": (264, 78),
    "hazelnut": (391, 110),
    "leather": (245, 124),
    "metal_nut": (220, 115),
    "pill": (267, 167),
    "screw": (320, 160),
    "tile": (230, 117),
    "toothbrush": (60, 42),
    "transistor": (213, 100),
    "wood": (247, 79),
    "zipper": (240, 151),
}


class MVTecLayout(FileAdapter):
    """Reads any folder in the MVTec AD layout; subclasses fix the name, categories and root.

    Class settings: `mask_suffixes` (how a mask's stem extends its image's stem) and
    `masks_optional` (a category without a ground_truth folder has no pixel annotation).
    """

    mask_suffixes: tuple[str, ...] = ("_mask",)
    masks_optional: bool = False

    def category_dir(self, category: str) -> Path:
        self.check_category(category)
        root = self.root_dir()
        folder = root / category
        if not folder.is_dir():
            raise DataError(
                f"{folder}: category folder not found (expected the {self.name} layout "
                f"<root>/{category}/train/good).{self._nesting_hint(root, category)}"
            )
        return folder

    def _nesting_hint(self, root: Path, category: str) -> str:
        """Point at the right folder when the user gave the one above or below it."""
        if (root / "train" / "good").is_dir():
            return f" {root} looks like a single category folder: point --root at {root.parent}."
        for child in sorted(p for p in folder_entries(root) if p.is_dir()):
            if (child / category).is_dir():
                return f" Found {child / category}: point --root at {child}."
        return f" {self.download_hint}" if self.download_hint else ""

    def layout_problem(self, category: str) -> str:
        folder = Path(self.root_dir()) / category
        if (folder / "train" / "good").is_dir() and (folder / "test").is_dir():
            return ""
        return f"{category}/train/good and {category}/test"

    def listing(self, category: str) -> Listing:
        folder = self.category_dir(category)
        train_dir = folder / "train" / "good"
        if not train_dir.is_dir():
            raise DataError(f"{train_dir}: folder not found (expected the normal training images in train/good)")
        train = images_in(train_dir)
        if not train:
            raise empty_training_split(train_dir, "normal images in train/good")
        mask_root: Path | None = folder / "ground_truth"
        if self.masks_optional and mask_root is not None and not mask_root.is_dir():
            mask_root = None
        test = mvtec_test_items(folder, self.mask_suffixes, mask_root)
        if not test:
            raise DataError(f"{folder / 'test'}: no test images (expected test/good and test/<defect> folders)")
        return Listing(train=[Item(p) for p in train], test=test, test_masks=mask_root is not None)


class MVTecAD(MVTecLayout):
    name = "mvtec"
    description = "MVTec AD (15 categories, pixel masks)"
    default_profile = "paper"
    data_folder = "mvtec"
    split_counts = MVTEC_COUNTS
    download_hint = (
        "Download MVTec AD from https://www.mvtec.com/company/research/datasets/mvtec-ad "
        "and point --root at the extracted folder that holds bottle/, cable/, ..."
    )

    @property
    def categories(self) -> tuple[str, ...]:
        return MVTEC_CATEGORIES
