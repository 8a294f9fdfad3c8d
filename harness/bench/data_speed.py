"""Decode + resize throughput of a data set's images (`python -m harness bench data`)."""

from __future__ import annotations

import os
import time


def data_source(dataset: str = "synthetic", root: str | None = None, category: str | None = None) -> dict:
    """What `bench_data` reads, resolved (and checked) before anything is measured."""
    from harness import datasets
    from harness.datasets.files import FileAdapter

    adapter = datasets.create(dataset, root)
    category = category or adapter.categories[0]
    adapter.check_category(category)
    source: dict = {"dataset": dataset, "root": root, "category": category, "paths": None}
    if isinstance(adapter, FileAdapter):
        listing = adapter.checked_listing(category)
        source["paths"] = [item.path for _, items, _ in listing.splits() for item in items]
    return source


def bench_data(source: dict, image_size: int) -> dict:
    """Images/s of decoding and resizing one category's images, in threads as the adapters load them.

    Image-file data sets: every image of the category (train and test), read from the files, the
    array cache bypassed; one image is decoded first as warm-up. Array data sets (CIFAR, MNIST,
    BraTS): the adapter's whole load of the category, without the array cache.
    """
    from harness import datasets
    from harness.datasets.imageio import image_size_of, load_rgb, parallel_map

    paths = source["paths"]
    result = {"dataset": source["dataset"], "category": source["category"], "image_size": image_size}
    if paths is not None:
        load_rgb(paths[0], image_size)
        start = time.perf_counter()
        parallel_map(lambda path: load_rgb(path, image_size), paths)
        seconds = time.perf_counter() - start
        width, height = image_size_of(paths[0])
        result |= {"images": len(paths), "source_size": f"{width}x{height}", "what": "decode + resize of image files"}
    else:
        adapter_class = datasets.get(source["dataset"])
        options = {"cache": False} if "cache" in adapter_class.option_defaults else {}
        adapter = datasets.create(source["dataset"], source["root"], **options)
        start = time.perf_counter()
        data = adapter.load(source["category"], image_size)
        seconds = time.perf_counter() - start
        n = len(data.train) + len(data.test) + (len(data.valid) if data.valid is not None else 0)
        result |= {"images": n, "source_size": None, "what": "the adapter's load of the category"}
    threads = min(8, os.cpu_count() or 1)
    return result | {"seconds": seconds, "images_per_s": result["images"] / seconds, "threads": threads}


def format_bench_data(result: dict) -> str:
    source = f" from {result['source_size']}" if result["source_size"] else ""
    return (
        f"data benchmark: {result['dataset']}/{result['category']}, {result['what']}{source} to "
        f"{result['image_size']} px, {result['threads']} thread(s)\n"
        f"  {result['images']} images in {result['seconds']:.3f} s: {result['images_per_s']:.1f} img/s"
    )
