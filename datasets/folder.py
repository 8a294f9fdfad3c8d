"""Any MVTec-like data set of the user's own: the way to benchmark custom data.

<root>/<cat>/train/good/*            normal training images (any of png, jpg, bmp, tif)
<root>/<cat>/test/good/*             normal test images
<root>/<cat>/test/<defect>/*         anomalous test images
<root>/<cat>/ground_truth/<defect>/<stem>_mask.png or <stem>.png   optional masks

Categories are the subfolders that contain train/good; a root that itself contains train/good is
one category named after the folder. Without a ground_truth folder a category has no masks (pixel
metrics do not apply); with one, every anomalous image needs its mask.
"""

from __future__ import annotations

from pathlib import Path

from harness.datasets.files import folder_entries
from harness.datasets.mvtec import MVTecLayout
from harness.errors import DataError


class FolderDataset(MVTecLayout):
    name = "folder"
    description = "Your own data in the MVTec AD layout (categories = subfolders with train/good)"
    default_profile = "paper"
    data_folder = "folder"
    mask_suffixes = ("_mask", "")
    masks_optional = True
    download_hint = (
        "Arrange your images as <root>/<category>/train/good, test/good, test/<defect>[, ground_truth/<defect>]."
    )

    def _single(self, root: Path) -> bool:
        return (root / "train" / "good").is_dir()

    @property
    def categories(self) -> tuple[str, ...]:
        root = self.root_dir()
        if self._single(root):
            return (root.resolve().name,)
        found = tuple(sorted(p.name for p in folder_entries(root) if p.is_dir() and (p / "train" / "good").is_dir()))
        if not found:
            raise DataError(
                f"{root}: no category folders found (expected <root>/<category>/train/good, "
                f"or train/good directly in {root})"
            )
        return found

    def layout_problem(self, category: str) -> str:
        return ""  # its categories are the folders that have the layout

    def category_dir(self, category: str) -> Path:
        self.check_category(category)
        root = self.root_dir()
        return root if self._single(root) else root / category
