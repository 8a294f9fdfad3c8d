"""BraTS2021 as pre-sliced PNGs distributed by the BMAD benchmark ("Brain" folder).

<root>/[Brain/]train/good/[img/]*.png                 normal training slices
<root>/[Brain/]{valid,test}/good/[img/]*.png          normal slices
<root>/[Brain/]{valid,test}/Ungood/img/*.png          tumour slices
<root>/[Brain/]{valid,test}/Ungood/anomaly_mask/*.png masks, same file names (BMAD's README);
                                                       Ungood/label/ in BMAD's scripts: both accepted
Images and masks are 240x240 RGBA PNGs written with a colour map; alpha is ignored and a mask pixel
is a tumour where any colour channel is nonzero. This is a separate adapter from `brats` (raw
NIfTI volumes) because the slices, the split and the intensity scaling are BMAD's, not ours.
"""

from __future__ import annotations

from pathlib import Path

from harness.datasets.base import CategoryData, empty_training_split
from harness.datasets.files import FileAdapter, Item, Listing, images_in, pair_masks
from harness.errors import DataError

MASK_FOLDERS = ("anomaly_mask", "label")


def _image_dir(folder: Path) -> Path:
    return folder / "img" if (folder / "img").is_dir() else folder


class BraTSBMAD(FileAdapter):
    name = "brats_bmad"
    description = "BraTS2021 brain MRI slices as distributed by BMAD (PNG, train/valid/test, tumour masks)"
    default_profile = "paper"
    data_folder = "brats_bmad"
    download_hint = (
        "Download BMAD's Brain data (BraTS2021 slices) as linked from https://github.com/DorisBao/BMAD "
        "and point --root at the folder that holds Brain/ (or at Brain/ itself)."
    )

    @property
    def categories(self) -> tuple[str, ...]:
        return ("brain",)

    def base_dir(self) -> Path:
        root = self.root_dir()
        for base in (root / "Brain", root):
            if (base / "train" / "good").is_dir():
                return base
        raise DataError(
            f"{root}: no BMAD Brain layout (expected {root / 'Brain' / 'train' / 'good'} or "
            f"{root / 'train' / 'good'}). {self.download_hint}"
        )

    def check_root(self) -> None:
        self.base_dir()

    def _evaluation_items(self, split_dir: Path) -> list[Item]:
        items = [Item(p) for p in images_in(_image_dir(split_dir / "good"))] if (split_dir / "good").is_dir() else []
        ungood = split_dir / "Ungood"
        if ungood.is_dir():
            mask_dir = next((ungood / m for m in MASK_FOLDERS if (ungood / m).is_dir()), ungood / MASK_FOLDERS[0])
            items += pair_masks(images_in(_image_dir(ungood)), mask_dir, ("",), "tumour")
        return items

    def listing(self, category: str) -> Listing:
        self.check_category(category)
        base = self.base_dir()
        train = images_in(_image_dir(base / "train" / "good"))
        if not train:
            raise empty_training_split(_image_dir(base / "train" / "good"), "normal images in train/good")
        if not (base / "test").is_dir():
            raise DataError(f"{base / 'test'}: folder not found (expected test/good/img and test/Ungood/img)")
        valid = self._evaluation_items(base / "valid") if (base / "valid").is_dir() else None
        return Listing(train=[Item(p) for p in train], test=self._evaluation_items(base / "test"), valid=valid or None)

    def check_loaded(self, data: CategoryData) -> None:
        # a colour map that paints the background in a nonzero colour would mark every pixel as tumour
        for split in (data.test, data.valid):
            if split is None or split.masks is None:
                continue
            for mask, label, path in zip(split.masks, split.labels, split.paths, strict=False):
                if label == 1 and mask.all():
                    raise DataError(
                        f"{path}: its mask is tumour everywhere; the mask's background is not black "
                        "(expected colour-mapped masks with a zero background)"
                    )
