"""VisA (Visual Anomaly data set, Amazon, ECCV 2022), raw download or converted layout.

Raw layout (VisA_20220922.tar), read through the official split file, no conversion step:
    <root>/split_csv/1cls.csv                       header object,split,label,image,mask (CRLF)
    <root>/<cat>/Data/Images/{Normal,Anomaly}/*.JPG  uppercase .JPG; names collide across folders
    <root>/<cat>/Data/Masks/Anomaly/*.png           class ids 0..K (any PNG mode): anomalous = != 0
    <root>/<cat>/image_anno.csv                     optional: the defect description of each image
Converted layout (the data set's prepare_data.py, or anomalib):
    <root>/[visa_pytorch|VisA_pytorch/][<split>/]<cat>/{train/good, test/good, test/bad,
    ground_truth/[test/]bad/<stem>.png}             masks 0/255, maybe 3-channel

Option `split`: "1cls" (default, the standard one-class protocol), "2cls_highshot" or
"2cls_fewshot". The 2cls splits also list anomalous training images; a one-class method cannot use
them, so they are left out of the training split (their number is recorded in the provenance).
Option `layout`: "auto" (raw when the split CSV or <cat>/Data exists), "raw" or "converted".
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from harness import order
from harness.datasets.base import empty_training_split
from harness.datasets.files import FileAdapter, Item, Listing, images_in, mvtec_test_items
from harness.errors import DataError, HarnessError

# the split files' categories, in their order (one list: reports show them in the same order)
VISA_CATEGORIES = order.VISA
SPLITS = ("1cls", "2cls_highshot", "2cls_fewshot")
# (training images, test images) per category of the standard 1cls split: sweep time estimates
VISA_1CLS_COUNTS = {
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
CSV_HEADER = ["object", "split", "label", "image", "mask"]


@dataclass(frozen=True)
class SplitRow:
    line: int  # line number in the CSV file, for error messages
    object: str
    split: str  # train | test
    label: str  # normal | anomaly
    image: str  # relative to the root, e.g. candle/Data/Images/Normal/0836.JPG
    mask: str  # empty for normal rows


def read_split_csv(path: Path) -> list[SplitRow]:
    """Parse a VisA split file (CRLF or LF, optional BOM); a malformed row is an error naming its line."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as file:
            lines = list(csv.reader(file))
    except FileNotFoundError:
        raise DataError(f"{path}: split file not found") from None
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise DataError(f"{path}: cannot read split file ({error})") from None
    if not lines or [cell.strip().lower() for cell in lines[0]] != CSV_HEADER:
        found = ",".join(lines[0]) if lines else "an empty file"
        raise DataError(f"{path}: expected the header {','.join(CSV_HEADER)}, found {found}")
    rows = []
    for number, cells in enumerate(lines[1:], start=2):
        if not any(cell.strip() for cell in cells):
            continue
        cells = [cell.strip() for cell in cells]
        if len(cells) == 4:
            cells.append("")  # a normal row whose empty mask column was cut off
        if len(cells) != 5:
            raise DataError(f"{path} line {number}: expected 5 columns ({','.join(CSV_HEADER)}), found {len(cells)}")
        row = SplitRow(number, *cells)
        if row.split not in ("train", "test"):
            raise DataError(f"{path} line {number}: split is '{row.split}', expected train or test")
        if row.label not in ("normal", "anomaly"):
            raise DataError(f"{path} line {number}: label is '{row.label}', expected normal or anomaly")
        rows.append(row)
    return rows


# (split, label) -> how messages name the rows; every category of a split file needs all three
REQUIRED_ROWS = {
    ("train", "normal"): "normal training",
    ("test", "normal"): "normal test",
    ("test", "anomaly"): "anomalous test",
}


def check_category_rows(path: Path, category: str, rows: list[SplitRow]) -> None:
    """A split file must give each category normal training images and normal and anomalous test
    images; one that lacks any of them (an edited or cut file) is an error naming the file and category."""
    if not rows:
        raise DataError(f"{path}: no rows for category '{category}'")
    present = {(row.split, row.label) for row in rows}
    missing = [name for kind, name in REQUIRED_ROWS.items() if kind not in present]
    if missing:
        raise DataError(
            f"{path}: category '{category}' has no {' and no '.join(missing)} rows (every category needs "
            "normal training, normal test and anomalous test rows; is the split file complete?)"
        )


class VisA(FileAdapter):
    name = "visa"
    description = "VisA (12 categories, non-square JPEGs, class-id masks), raw download via split_csv"
    default_profile = "paper"
    data_folder = "visa"
    split_counts = VISA_1CLS_COUNTS
    option_defaults = {"cache": None, "split": "1cls", "layout": "auto"}
    download_hint = (
        "Fetch it with `python -m harness data fetch visa [--root PATH]`, or download "
        "VisA_20220922.tar from https://github.com/amazon-science/spot-diff "
        "(https://amazon-visual-anomaly.s3.us-west-2.amazonaws.com/VisA_20220922.tar), extract it "
        "and point --root at the folder that holds split_csv/, candle/, ..."
    )

    def __init__(self, root: str | Path | None = None, **options) -> None:
        super().__init__(root, **options)
        if self.options["split"] not in SPLITS:
            raise HarnessError(f"unknown VisA split '{self.options['split']}'; valid: {', '.join(SPLITS)}")
        if self.options["layout"] not in ("auto", "raw", "converted"):
            raise HarnessError(f"unknown VisA layout '{self.options['layout']}'; valid: auto, raw, converted")
        self._parsed: dict[Path, list[SplitRow]] = {}

    @property
    def categories(self) -> tuple[str, ...]:
        return VISA_CATEGORIES

    @property
    def split(self) -> str:
        return self.options["split"]

    def split_csv(self) -> Path:
        return self.root_dir() / "split_csv" / f"{self.split}.csv"

    def listing(self, category: str) -> Listing:
        self.check_category(category)
        root = self.root_dir()
        layout = self.options["layout"]
        if layout == "auto":
            layout = "raw" if self.split_csv().is_file() or (root / category / "Data").is_dir() else "converted"
        return self._raw_listing(category) if layout == "raw" else self._converted_listing(category)

    def layout_problem(self, category: str) -> str:
        root = self.root_dir()
        layout = self.options["layout"]
        raw = f"split_csv/{self.split}.csv with {category}/Data"
        if layout != "converted" and self.split_csv().is_file() and (root / category / "Data").is_dir():
            return ""
        if layout != "raw":
            try:
                self._converted_dir(category)
                return ""
            except DataError:
                pass
        converted = f"{category}/train/good (converted layout)"
        return {"raw": raw, "converted": converted}.get(layout, f"{raw} (raw download), or {converted}")

    # raw download

    def _split_rows(self, path: Path) -> list[SplitRow]:
        if path not in self._parsed:  # one parse per adapter, shared by all categories
            if not path.is_file():
                raise DataError(
                    f"{path}: split file not found; it ships with VisA_20220922.tar as split_csv/{self.split}.csv "
                    f"(also in https://github.com/amazon-science/spot-diff/tree/main/split_csv)"
                )
            self._parsed[path] = read_split_csv(path)
        return self._parsed[path]

    def _defect_names(self, category: str) -> dict[str, str]:
        """image path -> defect description from <cat>/image_anno.csv, when the file is there."""
        path = self.root_dir() / category / "image_anno.csv"
        if not path.is_file():
            return {}
        try:
            with open(path, newline="", encoding="utf-8-sig") as file:
                return {r.get("image", "").strip(): (r.get("label") or "").strip() for r in csv.DictReader(file)}
        except (OSError, UnicodeDecodeError, csv.Error):
            return {}  # descriptions are informative only; the split file decides labels

    def _raw_listing(self, category: str) -> Listing:
        root = self.root_dir()
        csv_path = self.split_csv()
        rows = [row for row in self._split_rows(csv_path) if row.object == category]
        check_category_rows(csv_path, category, rows)
        names = self._defect_names(category)
        train: list[Item] = []
        test: list[Item] = []
        seen: dict[str, int] = {}
        excluded = 0
        for row in rows:
            if row.image in seen:
                raise DataError(
                    f"{csv_path} line {row.line}: {row.image} is listed twice (first on line {seen[row.image]})"
                )
            seen[row.image] = row.line
            image = root / row.image
            if not image.is_file():
                raise DataError(f"{csv_path} line {row.line}: image {row.image} not found (looked for {image})")
            if row.label == "normal":
                (train if row.split == "train" else test).append(Item(image))
                continue
            if row.split == "train":
                excluded += 1  # 2cls splits: anomalous training images, unusable for one-class training
                continue
            if not row.mask:
                raise DataError(f"{csv_path} line {row.line}: anomalous image {row.image} has no mask")
            mask = root / row.mask
            if not mask.is_file():
                raise DataError(f"{csv_path} line {row.line}: mask {row.mask} not found (looked for {mask})")
            defect = names.get(row.image) or "anomaly"
            test.append(Item(image, 1, defect, mask))
        provenance: dict[str, str | int] = {"visa_layout": "raw", "visa_split": self.split, "split_file": str(csv_path)}
        if excluded:
            provenance["excluded_anomalous_train_images"] = excluded
        return Listing(train=train, test=test, provenance=provenance)

    # converted layout

    def _converted_dir(self, category: str) -> Path:
        root = self.root_dir()
        bases = [root / "visa_pytorch", root / "VisA_pytorch", root]
        candidates = [base / self.split / category for base in bases]
        if self.split == "1cls":
            candidates += [base / category for base in bases]  # anomalib writes no 1cls/ level
        for candidate in candidates:
            if (candidate / "train" / "good").is_dir():
                return candidate
        looked = ", ".join(str(c / "train" / "good") for c in candidates)
        raise DataError(
            f"{root}: no VisA data for '{category}': neither the raw layout ({self.split_csv()} with "
            f"{root / category / 'Data'}) nor the converted layout (looked for {looked}). {self.download_hint}"
        )

    def _converted_listing(self, category: str) -> Listing:
        folder = self._converted_dir(category)
        train_dir = folder / "train" / "good"
        train = images_in(train_dir)
        if not train:
            raise empty_training_split(train_dir, "normal images in train/good")
        # 2cls conversions keep test masks in ground_truth/test/bad, 1cls ones in ground_truth/bad
        mask_root = folder / "ground_truth" / "test"
        if not mask_root.is_dir():
            mask_root = folder / "ground_truth"
        test = mvtec_test_items(folder, ("", "_mask"), mask_root)
        provenance: dict[str, str | int] = {
            "visa_layout": "converted",
            "visa_split": self.split,
            "visa_folder": str(folder),
        }
        excluded = len(images_in(folder / "train" / "bad")) if (folder / "train" / "bad").is_dir() else 0
        if excluded:
            provenance["excluded_anomalous_train_images"] = excluded
        return Listing(train=[Item(p) for p in train], test=test, provenance=provenance)
