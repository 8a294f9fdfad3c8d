"""How long a sweep takes at measured rates (`python -m harness bench estimate`)."""

from __future__ import annotations

from harness.errors import HarnessError


def split_counts(dataset: str, root: str | None = None) -> tuple[dict[str, tuple[int, int]], str]:
    """(training, test) images per category: counted under `root` when given, else the adapter's table."""
    from harness import datasets
    from harness.datasets.files import FileAdapter

    adapter_class = datasets.get(dataset)
    if root is not None:
        adapter = datasets.create(dataset, root)
        if isinstance(adapter, FileAdapter):
            counts = {}
            for category in adapter.categories:
                listing = adapter.checked_listing(category)
                counts[category] = (len(listing.train), len(listing.test))
            return counts, f"counted under {root}"
    known = adapter_class.split_counts
    if not known:
        raise HarnessError(f"no image counts known for data set '{dataset}'; pass --root to count its files")
    return dict(known), "published counts"


def estimate_sweep(
    counts: dict[str, tuple[int, int]],
    *,
    epochs: int,
    seeds: int,
    cache_used: bool,
    train: dict | None,
    infer: dict | None,
    data: dict | None,
    protocol: str = "single",
    category_epochs: dict[str, int] | None = None,
) -> dict:
    """Seconds a sweep takes at the measured rates: per category, training (epochs x images at the
    cached or on-the-fly rate, plus one teacher pass to fill the cache), inference and, when measured
    on the same data set, decoding. Parts without a measured rate are left out and named.
    `category_epochs` gives some categories their own epoch count (the others train `epochs`).

    protocol "unified": one model per seed trained on every category's images together, so training
    (and filling the teacher cache) is counted once over all of them ("unified" in the result), and
    inference and decoding per category as before. One model has one epoch count: categories with
    different counts are refused (HarnessError), as `run --protocol unified` refuses them."""
    unified = protocol == "unified"
    if unified and category_epochs:
        epochs = unified_epochs(counts, epochs, category_epochs)
        category_epochs = None
    train_run = (train or {}).get("cached" if cache_used else "uncached")
    per_category, missing = {}, []
    if train_run is None:
        missing.append("training")
    if infer is None:
        missing.append("inference")
    if data is None:
        missing.append("data loading")
    for category, (n_train, n_test) in counts.items():
        parts = {}
        if train_run and not unified:
            parts["train_s"] = (category_epochs or {}).get(category, epochs) * n_train / train_run["images_per_s"]
            if cache_used:
                parts["cache_s"] = n_train / train_run["teacher_images_per_s"]
        if infer:
            parts["infer_s"] = n_test / infer["images_per_s"]
        if data:
            parts["load_s"] = (n_train + n_test) / data["images_per_s"]
        per_category[category] = {k: v * seeds for k, v in parts.items()} | {"total_s": seeds * sum(parts.values())}
    n_all = sum(n for n, _ in counts.values())
    shared = {}
    if unified and train_run:
        shared["train_s"] = seeds * epochs * n_all / train_run["images_per_s"]
        if cache_used:
            shared["cache_s"] = seeds * n_all / train_run["teacher_images_per_s"]
    totals = {
        key: sum(c.get(key, 0.0) for c in per_category.values()) + shared.get(key, 0.0)
        for key in ("train_s", "cache_s", "infer_s", "load_s")
    }
    totals["total_s"] = sum(totals.values())
    return {
        "epochs": epochs,
        "seeds": seeds,
        "teacher_cache": cache_used,
        "protocol": protocol,
        "categories": per_category,
        **({"unified": shared} if unified else {}),
        **({"category_epochs": dict(category_epochs)} if category_epochs else {}),
        "n_train": n_all,
        "n_test": sum(n for _, n in counts.values()),
        "totals": totals,
        "not_included": missing,
    }


def unified_epochs(counts: dict, epochs: int, category_epochs: dict[str, int]) -> int:
    """The one epoch count of a unified model over the categories in `counts`, or a HarnessError when the
    profile gives them different counts."""
    found = {category: category_epochs.get(category, epochs) for category in counts}
    if len(set(found.values())) > 1:
        (a, n), (b, m) = sorted(found.items(), key=lambda kv: kv[1])[0], sorted(found.items(), key=lambda kv: kv[1])[-1]
        raise HarnessError(
            f"the unified protocol trains one model for all categories, but the profile gives them "
            f"different epochs ({a}: {n}, {b}: {m}); set one count with --epochs N, or use --protocol single"
        )
    return next(iter(found.values()), epochs)


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def epochs_text(estimate: dict) -> str:
    """'200 epochs', or the range when categories train their own counts."""
    counts = set((estimate.get("category_epochs") or {}).values())
    if not counts:
        return f"{estimate['epochs']} epochs"
    if len(estimate["category_epochs"]) < len(estimate["categories"]):
        counts.add(estimate["epochs"])
    return f"{min(counts)}-{max(counts)} epochs per category"


def format_estimate(estimate: dict, header: str) -> str:
    t = estimate["totals"]
    rows = [
        (
            "training",
            t["train_s"],
            f"{estimate['n_train']} images x {epochs_text(estimate)}"
            + (", cached teacher features" if estimate["teacher_cache"] else ", teacher on the fly"),
        ),
        ("teacher cache", t["cache_s"], f"one teacher pass over {estimate['n_train']} images"),
        ("inference", t["infer_s"], f"{estimate['n_test']} test images, map + blur"),
        ("data loading", t["load_s"], "decode + resize of every image"),
    ]
    lines = [header]
    lines += [f"  {name:<14} {_duration(s):>9}  {what}" for name, s, what in rows if s > 0]
    if estimate.get("protocol") == "unified":
        lines.append(
            f"  {'total':<14} {_duration(t['total_s']):>9}  (one model per seed trained on all "
            f"{len(estimate['categories'])} categories together; metrics not included)"
        )
    else:
        largest = max(estimate["categories"].items(), key=lambda kv: kv[1]["total_s"])
        lines.append(
            f"  {'total':<14} {_duration(t['total_s']):>9}  (longest category: {largest[0]}, "
            f"{_duration(largest[1]['total_s'])}; metrics not included)"
        )
    if estimate["not_included"]:
        lines.append(f"  not measured, not included: {', '.join(estimate['not_included'])}")
    return "\n".join(lines)
