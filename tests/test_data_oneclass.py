"""CIFAR-10 (python pickle batches) and MNIST / Fashion-MNIST (IDX files) one-class adapters."""

from __future__ import annotations

import gzip
import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest

from harness.datasets import create
from harness.datasets.cifar import CIFAR10, CIFAR10_CLASSES
from harness.datasets.mnist import MNIST, FashionMNIST
from harness.errors import DataError

pytestmark = pytest.mark.usefixtures("isolated_data_env")


# CIFAR-10: batches of 10 images (one per class, in a rotating order), a test batch of 20


def cifar_batch(count: int, first_label: int) -> tuple[np.ndarray, list[int]]:
    labels = [(first_label + i) % 10 for i in range(count)]
    data = np.zeros((count, 3, 32, 32), dtype=np.uint8)
    data[:, 0] = (np.arange(32 * 32) % 256).reshape(32, 32)  # red: row-major position
    data[:, 1] = np.arange(count)[:, None, None]  # green: index in the batch
    data[:, 2] = (np.array(labels) * 20)[:, None, None]  # blue: label
    return data.reshape(count, 3072), labels


def make_cifar(root: Path, bytes_keys: bool = True) -> Path:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    key = (lambda k: k.encode()) if bytes_keys else (lambda k: k)

    def dump(name: str, content: dict) -> None:
        with open(folder / name, "wb") as file:
            pickle.dump({key(k): v for k, v in content.items()}, file, protocol=2)

    for b in range(1, 6):
        data, labels = cifar_batch(10, b)
        dump(
            f"data_batch_{b}",
            {
                "batch_label": key(f"training batch {b} of 5"),
                "labels": labels,
                "data": data,
                "filenames": [key(f"img_{b}_{i}.png") for i in range(10)],
            },
        )
    data, labels = cifar_batch(20, 0)
    dump("test_batch", {"batch_label": key("testing batch 1 of 1"), "labels": labels, "data": data})
    dump("batches.meta", {"num_cases_per_batch": 10, "label_names": [key(n) for n in CIFAR10_CLASSES], "num_vis": 3072})
    return root


@pytest.mark.parametrize("bytes_keys", [True, False])
def test_cifar_one_class_split(tmp_path, bytes_keys):
    adapter = CIFAR10(make_cifar(tmp_path / "cifar10", bytes_keys))
    assert adapter.categories == CIFAR10_CLASSES and adapter.default_profile == "novelty"
    data = adapter.load("cat", 32)
    assert len(data.train) == 5 and data.train.labels.sum() == 0 and data.train.masks is None
    assert len(data.test) == 20 and data.test.masks is None  # the whole test batch
    assert data.test.labels.tolist() == [int(i % 10 != 3) for i in range(20)]
    assert data.test.defect_types[:4] == ["airplane", "automobile", "bird", "good"]
    assert (
        data.train.paths[0] == "cifar-10-batches-py/data_batch_1#2"
        and data.test.paths[3] == "cifar-10-batches-py/test_batch#3"
    )
    image = data.test.images[13]  # test image 13 has label 3
    assert image.shape == (32, 32, 3)
    assert image[0, 1].tolist() == [1, 13, 60] and image[2, 5].tolist() == [69, 13, 60]  # planes, row-major
    assert np.all(data.train.images[..., 2] == 60)


def test_cifar_images_are_resized_and_the_fingerprint_depends_on_the_class(tmp_path):
    adapter = CIFAR10(make_cifar(tmp_path / "cifar10"))
    assert adapter.load("ship", 16).train.images.shape == (5, 16, 16, 3)
    assert adapter.fingerprint("ship") != adapter.fingerprint("truck")
    assert adapter.fingerprint("ship") == CIFAR10(tmp_path / "cifar10").load("ship", 8).fingerprint


def test_cifar_bad_files(tmp_path):
    root = make_cifar(tmp_path / "cifar10")
    folder = root / "cifar-10-batches-py"
    (folder / "data_batch_4").unlink()
    with pytest.raises(DataError, match=r"data_batch_4: file not found"):
        CIFAR10(root).load("cat", 32)
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    (folder / "data_batch_4").write_bytes(pickle.dumps({"data": Evil()}, protocol=2))
    with pytest.raises(DataError, match=r"data_batch_4: cannot read CIFAR-10 pickle.*refusing"):
        CIFAR10(root).load("cat", 32)
    assert not marker.exists()
    (folder / "data_batch_4").write_bytes(
        pickle.dumps({b"data": np.zeros((10, 1024), np.uint8), b"labels": [0] * 10}, protocol=2)
    )
    with pytest.raises(DataError, match=r"data_batch_4: data is uint8 \(10, 1024\), expected uint8 N x 3072"):
        CIFAR10(root).load("cat", 32)
    with pytest.raises(DataError, match=r"no CIFAR-10 batches.*cs\.toronto\.edu"):
        CIFAR10(tmp_path).load("cat", 32)
    with pytest.raises(DataError, match=r"unknown category 'kitten'.*airplane, automobile"):
        CIFAR10(root).load("kitten", 32)


# MNIST / Fashion-MNIST: IDX files with the real magic numbers


def idx_bytes(array: np.ndarray, magic: int) -> bytes:
    return (
        struct.pack(">I", magic)
        + b"".join(struct.pack(">I", d) for d in array.shape)
        + array.astype(np.uint8).tobytes()
    )


def make_idx(folder: Path, compress: bool, dotted: bool = False) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    train_labels = np.arange(30) % 10  # 3 training images per class
    test_labels = (np.arange(12) * 7) % 10
    parts = {
        "train-images-idx3-ubyte": (np.arange(30)[:, None, None] + np.zeros((30, 28, 28)), 0x803),
        "train-labels-idx1-ubyte": (train_labels, 0x801),
        "t10k-images-idx3-ubyte": (100 + np.arange(12)[:, None, None] + np.zeros((12, 28, 28)), 0x803),
        "t10k-labels-idx1-ubyte": (test_labels, 0x801),
    }
    for name, (array, magic) in parts.items():
        content = idx_bytes(array, magic)
        name = name.replace("-idx", ".idx") if dotted else name
        if compress:
            (folder / f"{name}.gz").write_bytes(gzip.compress(content))
        else:
            (folder / name).write_bytes(content)
    return folder


@pytest.mark.parametrize("compress", [True, False])
def test_mnist_one_class_split(tmp_path, compress):
    make_idx(tmp_path / "mnist", compress)
    adapter = create("mnist", str(tmp_path / "mnist"))
    assert adapter.categories == tuple("0123456789") and adapter.default_profile == "novelty"
    data = adapter.load("7", 28)
    assert len(data.train) == 3 and [int(v) for v in data.train.images[:, 0, 0, 0]] == [7, 17, 27]
    assert len(data.test) == 12 and data.test.masks is None
    assert data.test.labels.tolist() == [int((i * 7) % 10 != 7) for i in range(12)]
    image = data.test.images[1]  # grayscale -> 3 equal channels
    assert image.shape == (28, 28, 3) and image[5, 5].tolist() == [101, 101, 101]
    assert data.train.paths[0] == ("train-images-idx3-ubyte.gz#7" if compress else "train-images-idx3-ubyte#7")
    assert adapter.load("7", 16).test.images.shape == (12, 16, 16, 3)


def test_fashion_mnist_in_torchvision_layout_and_dotted_names(tmp_path):
    make_idx(tmp_path / "fm" / "FashionMNIST" / "raw", compress=False, dotted=True)
    adapter = FashionMNIST(tmp_path / "fm")
    assert adapter.categories[0] == "tshirt_top" and adapter.categories[-1] == "ankle_boot"
    data = adapter.load("bag", 28)  # class 8
    assert len(data.train) == 3 and data.test.labels.sum() == 12 - 1
    assert data.train.paths[0] == "FashionMNIST/raw/train-images.idx3-ubyte#8"


def test_mnist_bad_files(tmp_path):
    folder = make_idx(tmp_path / "mnist", compress=False)
    labels = folder / "t10k-labels-idx1-ubyte"
    content = labels.read_bytes()
    labels.write_bytes(struct.pack(">I", 0x803) + content[4:])
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte: not an IDX file.*0x00000803, expected 0x00000801"):
        MNIST(folder).load("1", 28)
    labels.write_bytes(content[:-3])
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte: 9 data bytes for shape \(12,\)"):
        MNIST(folder).load("1", 28)
    labels.write_bytes(idx_bytes(np.zeros(11), 0x801))
    with pytest.raises(
        DataError, match=r"t10k-images-idx3-ubyte: 12 images but .*t10k-labels-idx1-ubyte has 11 labels"
    ):
        MNIST(folder).load("1", 28)
    labels.unlink()
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte\[\.gz\] not found.*yann\.lecun\.com"):
        MNIST(folder).load("1", 28)
