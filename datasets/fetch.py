"""Where each data set is downloaded from, with its published checksums, and `data fetch` / `data list`.

`SOURCES` is the table: one entry per data set that can be downloaded without a licence form (URLs
and checksums with their source; docs/data-setup.md lists the same), and a one-line pointer for the
others. `fetch` downloads into the folder the adapter reads (resuming, verifying, through a mirror
when one is set: harness/downloads.py), unpacks archives, checks the files the adapter needs, and
writes `.rd-harness-fetch.json` there, which `data list` shows.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from harness.downloads import Remote, checksum_problem, extract, fetch_file, mirror_base, mirror_url, offline
from harness.errors import DataError, HarnessError
from harness.files import atomic_write_text
from harness.paths import data_root

MARKER = ".rd-harness-fetch.json"  # written last, after every check passed
DOWNLOADS = ".download"  # archives while they download and until they are unpacked


@dataclass(frozen=True)
class Source:
    """How to get one data set into the layout its adapter reads."""

    files: tuple[Remote, ...] = ()
    unpack: bool = False  # the files are archives to extract into the root (then removed)
    # relative path -> file fetched when an archive did not bring it
    supplements: dict[str, Remote] = field(default_factory=dict)
    # relative path -> checksums every fetched copy must have (files inside archives)
    members: dict[str, dict[str, str]] = field(default_factory=dict)
    check: Callable[[Path], str] | None = None  # further layout check; returns a summary
    manual: str = ""  # data sets behind a licence form or registration: where to get them
    page: str = ""  # for those: the page to get them from


# --------------------------------------------------------------------------------------------
# The table

VISA_URL = "https://amazon-visual-anomaly.s3.us-west-2.amazonaws.com/VisA_20220922.tar"
VISA_ARCHIVE_SOURCE = "anomalib (src/anomalib/data/datamodules/image/visa.py, DOWNLOAD_INFO; sha256)"
SPOT_DIFF_RAW = "https://raw.githubusercontent.com/amazon-science/spot-diff/main/split_csv/"
# sha256 of the split files as published in amazon-science/spot-diff split_csv/ (CRLF line endings),
# the same bytes as tests/fixtures/visa_split_csv/
VISA_SPLITS = {
    "1cls.csv": "a48557e6033318cb90556f706196bc9d247a776a23ea51aecee5a80dd0332995",
    "2cls_fewshot.csv": "5ca490e84cd7664f9d93ba3d82399d991edb5a6cbcc41359452ad7ec24be354d",
    "2cls_highshot.csv": "c3331eede15f2da8a75b380d4fbfb24f75ee036ec9a25147eca898da6e972f09",
}


def _check_visa(root: Path) -> str:
    """Every image and mask the one-class split lists is on disk."""
    from harness.datasets.visa import read_split_csv

    split = root / "split_csv" / "1cls.csv"
    rows = read_split_csv(split)
    listed = [row.image for row in rows] + [row.mask for row in rows if row.mask]
    missing = [path for path in listed if not (root / path).is_file()]
    if missing:
        raise DataError(
            f"{root}: {len(missing)} of the {len(listed)} files listed in {split} are missing "
            f"(first: {missing[0]}); the archive was incomplete"
        )
    return f"{len(rows)} images and {len(listed) - len(rows)} masks listed in split_csv/1cls.csv are present"


CIFAR_MD5 = {  # torchvision datasets/cifar.py (train_list, test_list, meta)
    "data_batch_1": "c99cafc152244af753f735de768cd75f",
    "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
    "test_batch": "40351d587109b95175f43aff81a1287e",
    "batches.meta": "5ff9c542aee3614f3951f8cda6e48888",
}

MNIST_URLS = ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/")
MNIST_SOURCE = "torchvision datasets/mnist.py (md5); sizes from the MNIST page http://yann.lecun.com/exdb/mnist/"
MNIST_FILES = {  # name -> (md5, size in bytes)
    "train-images-idx3-ubyte.gz": ("f68b3c2dcbeaaa9fbdd348bbdeb94873", 9912422),
    "train-labels-idx1-ubyte.gz": ("d53e105ee54ea40749a09fcbcd1e9432", 28881),
    "t10k-images-idx3-ubyte.gz": ("9fb629c4189551a2d022fa330f9573f3", 1648877),
    "t10k-labels-idx1-ubyte.gz": ("ec29112dd5afa0611ce80d1b7f02629c", 4542),
}
FASHION_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
FASHION_SOURCE = "zalandoresearch/fashion-mnist README (md5; also torchvision datasets/mnist.py)"
FASHION_MD5 = {
    "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
    "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
    "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
}

SOURCES: dict[str, Source] = {
    "visa": Source(
        files=(
            Remote(
                "VisA_20220922.tar",
                (VISA_URL,),
                {"sha256": "2eb8690c803ab37de0324772964100169ec8ba1fa3f7e94291c9ca673f40f362"},
                source=VISA_ARCHIVE_SOURCE,
            ),
        ),
        unpack=True,
        supplements={
            f"split_csv/{name}": Remote(
                name,
                (SPOT_DIFF_RAW + name,),
                {"sha256": digest},
                source="amazon-science/spot-diff split_csv/ (pinned here)",
            )
            for name, digest in VISA_SPLITS.items()
        },
        members={f"split_csv/{name}": {"sha256": digest} for name, digest in VISA_SPLITS.items()},
        check=_check_visa,
    ),
    "cifar10": Source(
        files=(
            Remote(
                "cifar-10-python.tar.gz",
                ("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",),
                {"md5": "c58f30108f718f92721af3b95e74349a"},
                source="the CIFAR page https://www.cs.toronto.edu/~kriz/cifar.html and torchvision",
            ),
        ),
        unpack=True,
        members={f"cifar-10-batches-py/{name}": {"md5": md5} for name, md5 in CIFAR_MD5.items()},
    ),
    "mnist": Source(
        files=tuple(
            Remote(name, tuple(base + name for base in MNIST_URLS), {"md5": md5}, size, source=MNIST_SOURCE)
            for name, (md5, size) in MNIST_FILES.items()
        )
    ),
    "fashion_mnist": Source(
        files=tuple(
            Remote(name, (FASHION_URL + name,), {"md5": md5}, source=FASHION_SOURCE)
            for name, md5 in FASHION_MD5.items()
        )
    ),
    "mvtec": Source(
        manual="MVTec AD is downloaded from https://www.mvtec.com/company/research/datasets/mvtec-ad "
        "after accepting its licence (CC BY-NC-SA 4.0) in the page's form; the harness does not "
        "script that: extract mvtec_anomaly_detection.tar.xz and pass --root (see "
        "docs/data-setup.md)",
        page="https://www.mvtec.com/company/research/datasets/mvtec-ad",
    ),
    "brats": Source(
        manual="BraTS needs a registration (BraTS 2021: https://www.synapse.org/brats2021 ; 2020/2018: "
        "https://www.med.upenn.edu/cbica/brats/); download the training data yourself and pass "
        "--root (see docs/data-setup.md)",
        page="https://www.synapse.org/brats2021",
    ),
    "brats_bmad": Source(
        manual="BMAD's Brain slices are shared through the links on https://github.com/DorisBao/BMAD "
        "(subject to the BraTS terms); download them yourself and pass --root (see "
        "docs/data-setup.md)",
        page="https://github.com/DorisBao/BMAD",
    ),
    "synthetic": Source(manual="the synthetic data set is built in: it is generated on first use, nothing to fetch"),
    "folder": Source(manual="'folder' reads your own images: there is nothing to fetch; pass --root"),
}


def fetchable() -> list[str]:
    return [name for name, source in SOURCES.items() if not source.manual]


# --------------------------------------------------------------------------------------------
# fetch


def default_root(name: str, root: str | os.PathLike | None) -> Path:
    from harness import datasets

    if root is not None:
        return Path(root).expanduser()
    folder = datasets.get(name).data_folder or name
    default = data_root(folder)
    if default is None:
        raise HarnessError(
            f"no folder to fetch {name} into: pass --root PATH, or set HARNESS_DATA (then {name} goes "
            f"to $HARNESS_DATA/{folder})"
        )
    return Path(default)


def read_marker(root: Path) -> dict | None:
    try:
        return json.loads((root / MARKER).read_text())
    except (OSError, ValueError):
        return None


def check_layout(name: str, root: Path, source: Source) -> str:
    """Check what the adapter needs is under `root` (checksums of pinned members included); a summary."""
    from harness import datasets

    for relative, checksums in source.members.items():
        path = root / relative
        if not path.is_file():
            raise DataError(f"{path}: missing after the download (the archive should contain {relative})")
        problem = checksum_problem(path, checksums)
        if problem:
            raise DataError(f"{path}: checksum mismatch ({problem}); delete {root} and fetch it again")
    datasets.create(name, root).check_root()
    return source.check(root) if source.check else ""


def _count_files(root: Path) -> int:
    count = 0
    for _folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d != DOWNLOADS]
        count += sum(1 for f in files if f != MARKER and not f.endswith(".part"))
    return count


def fetch(
    name: str,
    root: str | os.PathLike | None = None,
    *,
    mirror: str | None = None,
    force: bool = False,
    keep_archives: bool = False,
    progress: bool = True,
) -> Path:
    """Download, unpack and check one data set; returns its root. Raises HarnessError (one line)."""
    from harness import datasets

    datasets.get(name)  # unknown names fail with the list of known ones
    source = SOURCES.get(name, Source(manual=f"{name} has no download source"))
    if source.manual:
        raise HarnessError(f"cannot fetch {name}: {source.manual}")
    if offline():
        raise HarnessError("HARNESS_OFFLINE is set: `data fetch` downloads, so unset HARNESS_OFFLINE to run it")
    root = default_root(name, root)
    marker = read_marker(root)
    if marker and not force:
        try:
            check_layout(name, root, source)
        except HarnessError as error:
            print(
                f"{name}: the copy in {root} no longer passes its checks ({error}); fetching it again", file=sys.stderr
            )
        else:
            print(f"{name}: already fetched into {root} ({marker.get('fetched', 'earlier')}); --force fetches it again")
            return root
    root.mkdir(parents=True, exist_ok=True)
    where = root / DOWNLOADS if source.unpack else root
    started = time.time()
    fetched = []
    for remote in source.files:
        url = mirror_url(remote.urls[0], name, remote.name, mirror)
        urls = (url,) if mirror_base(mirror) else remote.urls
        print(f"{name}: {remote.name} from {urls[0]}", file=sys.stderr)
        path = fetch_file(remote, where / remote.name, urls=urls, what=remote.name, progress=progress)
        fetched.append(
            {
                "file": remote.name,
                "url": urls[0],
                **remote.checksums,
                "source": remote.source,
                "bytes": path.stat().st_size,
            }
        )
    files = 0
    if source.unpack:
        for remote in source.files:
            files += extract(where / remote.name, root, what=remote.name, progress=progress)
    for relative, remote in source.supplements.items():
        if not (root / relative).is_file():
            url = mirror_url(remote.urls[0], name, remote.name, mirror)
            urls = (url,) if mirror_base(mirror) else remote.urls
            print(f"{name}: {relative} was not in the archive; fetching it from {urls[0]}", file=sys.stderr)
            fetch_file(remote, root / relative, urls=urls, what=relative, progress=progress)
            fetched.append({"file": relative, "url": urls[0], **remote.checksums, "source": remote.source})
    summary = check_layout(name, root, source)
    count = _count_files(root)
    atomic_write_text(
        root / MARKER,
        json.dumps(
            {
                "dataset": name,
                "fetched": time.strftime("%Y-%m-%d %H:%M:%S"),
                "seconds": round(time.time() - started, 1),
                "files": fetched,
                "file_count": count,
                "check": summary,
            },
            indent=2,
        )
        + "\n",
    )
    if source.unpack and not keep_archives:
        for remote in source.files:
            (where / remote.name).unlink(missing_ok=True)
        with contextlib.suppress(OSError):  # kept when it holds other files
            where.rmdir()
    print(f"{name}: ready in {root} ({count} files{'; ' + summary if summary else ''})")
    return root


# --------------------------------------------------------------------------------------------
# list


def status(name: str, base: str | os.PathLike | None) -> tuple[str, str]:
    """(status, detail) of one data set under the data folder `base`."""
    from harness import datasets

    adapter_class = datasets.get(name)
    source = SOURCES.get(name, Source())
    if name == "synthetic":
        return "built in", "generated on first use"
    if not adapter_class.data_folder or name == "folder":
        return "-", "your own data, given with --root"
    if base is None:
        return "-", "HARNESS_DATA not set"
    root = Path(base) / adapter_class.data_folder
    if not root.exists():
        return "missing", str(root)
    try:
        summary = check_layout(name, root, source)
    except HarnessError as error:
        text = str(error)
        return "incomplete", text if len(text) <= 100 else text[:97] + "..."
    marker = read_marker(root)
    if marker:
        first = (marker.get("files") or [{}])[0]
        digest = next((f"{k} {first[k][:12]}" for k in ("sha256", "md5") if k in first), "")
        return "present", ", ".join(
            filter(
                None,
                [f"fetched {str(marker.get('fetched', '?'))[:16]}", f"{marker.get('file_count', '?')} files", digest],
            )
        )
    return "present", f"{_count_files(root)} files" + (f"; {summary}" if summary else "")


def how_to_get(name: str) -> str:
    source = SOURCES.get(name, Source())
    if not source.manual:
        return f"data fetch {name}"
    return f"by hand: {source.page}" if source.page else "-"


def command_fetch(args) -> int:
    names = [n.strip() for n in args.name.split(",") if n.strip()]
    if names == ["all"]:
        names = fetchable()
    if len(names) > 1 and args.root:
        raise HarnessError("--root names one data set's folder: fetch several data sets with HARNESS_DATA set instead")
    for name in names:
        fetch(name, args.root, mirror=args.mirror, force=args.force, keep_archives=args.keep_archive)
    return 0


def command_list(args) -> int:
    from tabulate import tabulate

    from harness import datasets

    base = args.data or os.environ.get("HARNESS_DATA") or None
    rows = []
    for name in datasets.names():
        try:
            state, detail = status(name, base)
        except HarnessError as error:  # a plugin that fails to load: listed with why, the others still shown
            state, detail = "cannot load", str(error)
        rows.append([name, state, detail, how_to_get(name)])
    print(
        f"Data sets under {base}"
        if base
        else "HARNESS_DATA is not set: set it (or pass --data DIR) to see which data sets are present"
    )
    print(
        tabulate(
            rows,
            headers=["name", "status", "details", "how to get it"],
            tablefmt="simple",
            maxcolwidths=[None, None, 60, 50],
        )
    )
    return 0
