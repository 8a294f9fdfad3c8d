"""How papers present a data set: the order of its categories, their groups, and readable names.

MVTec AD follows the RD4AD paper's table (textures, then objects, each group with its mean); VisA
follows its split files (no groups); the synthetic data set its generator's order. Other data sets keep
the order the runs give. The run's end-of-run table and every report use this one order.
"""

from __future__ import annotations

MVTEC_TEXTURES = ("carpet", "grid", "leather", "tile", "wood")
MVTEC_OBJECTS = (
    "bottle",
    "cable",
    "capsule",
    "hazelnut",
    "metal_nut",
    "pill",
    "screw",
    "toothbrush",
    "transistor",
    "zipper",
)
VISA = (
    "candle",
    "capsules",
    "cashew",
    "chewinggum",
    "fryum",
    "macaroni1",
    "macaroni2",
    "pcb1",
    "pcb2",
    "pcb3",
    "pcb4",
    "pipe_fryum",
)
SYNTHETIC = ("weave", "tiles", "disc")  # the generator's order (harness.datasets.synthetic.CATEGORIES)

# data set -> [(group key or None, categories in the published order)]; groups get a mean row when
# the table has more than one group
PAPER_ORDER: dict[str, list[tuple[str | None, tuple[str, ...]]]] = {
    "mvtec": [("textures", MVTEC_TEXTURES), ("objects", MVTEC_OBJECTS)],
    "visa": [(None, VISA)],
    "synthetic": [(None, SYNTHETIC)],
}
GROUP_NAMES = {"textures": "Textures", "objects": "Objects"}
DATASET_NAMES = {
    "mvtec": "MVTec AD",
    "visa": "VisA",
    "btad": "BTAD",
    "brats": "BraTS",
    "mpdd": "MPDD",
    "synthetic": "synthetic data",
    "cifar10": "CIFAR-10",
    "fashion_mnist": "Fashion-MNIST",
    "mnist": "MNIST",
}
CATEGORY_NAMES = {
    "metal_nut": "Metal nut",
    "pipe_fryum": "Pipe fryum",
    "chewinggum": "Chewing gum",
    "pcb1": "PCB1",
    "pcb2": "PCB2",
    "pcb3": "PCB3",
    "pcb4": "PCB4",
}


def group_mean_key(group: str) -> str:
    """The row key of a group's mean ("mean_textures"), also its name in report.csv."""
    return f"mean_{group}"


def full_set(dataset: str) -> tuple[str, ...]:
    """Every category of a data set whose published order is known; empty otherwise."""
    return tuple(c for _, categories in PAPER_ORDER.get(dataset.lower(), []) for c in categories)


def arrange(dataset: str, categories: list[str]) -> list[tuple[str | None, list[str]]]:
    """The categories in the published order, as groups [(group, categories)]; categories the order does not
    know come last, in the given order. One group (None) when the data set has no groups, or when a group has fewer
    than two of the categories (a group mean of one category says nothing)."""
    known = PAPER_ORDER.get(dataset.lower())
    if not known:
        return [(None, list(categories))]
    groups = [(group, [c for c in order if c in categories]) for group, order in known]
    groups = [(group, chosen) for group, chosen in groups if chosen]
    extra = [c for c in categories if c not in full_set(dataset)]
    if len(groups) <= 1 or extra or any(len(chosen) < 2 for _, chosen in groups):
        flat = [c for _, chosen in groups for c in chosen] + extra
        return [(None, flat)]
    return groups


def ordered(dataset: str, categories: list[str] | tuple[str, ...]) -> list[str]:
    """The categories in the data set's published order (unknown ones last, as given), without group rows."""
    return [c for _, members in arrange(dataset, list(dict.fromkeys(categories))) for c in members]


def dataset_name(dataset: str) -> str:
    return DATASET_NAMES.get(dataset.lower(), dataset)


def category_name(category: str) -> str:
    """A category as a paper prints it: "metal_nut" -> "Metal nut"."""
    if category in CATEGORY_NAMES:
        return CATEGORY_NAMES[category]
    text = category.replace("_", " ")
    return text[:1].upper() + text[1:]
