"""`data fetch` and `data list`, end to end in subprocesses, against archives in the real layouts served on
127.0.0.1; the download table keeps its real URLs (taken through --mirror / HARNESS_MIRROR) and gets the
test archives' checksums."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import pytest

from harness.datasets import create, fetch
from harness.errors import DataError

from http_fixtures import (
    Drop,
    FileServer,
    cifar_members,
    harness_cli,
    idx_files,
    last_line,
    md5,
    sha256,
    tar_bytes,
    visa_members,
)

REAL_SPLITS = Path(__file__).resolve().parent / "fixtures" / "visa_split_csv"

pytestmark = pytest.mark.usefixtures("isolated_data_env")


def visa_tables(archive: bytes, members: dict[str, bytes]) -> dict:
    return {
        "sources": {
            "visa": {
                "files": {"VisA_20220922.tar": {"sha256": sha256(archive)}},
                "members": {f"split_csv/{n}": {"sha256": sha256(members[f"split_csv/{n}"])} for n in fetch.VISA_SPLITS},
            }
        }
    }


def cifar_tables(archive: bytes, members: dict[str, bytes]) -> dict:
    pins = {f"cifar-10-batches-py/{n}": {"md5": md5(members[f"cifar-10-batches-py/{n}"])} for n in fetch.CIFAR_MD5}
    return {"sources": {"cifar10": {"files": {"cifar-10-python.tar.gz": {"md5": md5(archive)}}, "members": pins}}}


def test_visa_fetch_unpacks_the_raw_layout_the_adapter_reads(tmp_path):
    members = visa_members()
    archive = tar_bytes(members)
    data = tmp_path / "data"
    with FileServer({"/visa/VisA_20220922.tar": archive}) as server:
        result = harness_cli(
            tmp_path,
            "data",
            "fetch",
            "visa",
            "--mirror",
            server.url,
            tables=visa_tables(archive, members),
            env={"HARNESS_DATA": str(data)},
        )
        assert result.returncode == 0, result.stderr
        assert server.gets("/visa/VisA_20220922.tar") == [None]
    root = data / "visa"
    assert (
        f"visa: ready in {root} (12 files; 6 images and 2 masks listed in split_csv/1cls.csv are present)"
        in result.stdout
    )
    assert (root / ".rd-harness-fetch.json").is_file() and not (root / ".download").exists()  # archive removed
    loaded = create("visa", root).load("candle", 32)
    assert len(loaded.train) == 3 and loaded.test.labels.tolist() == [0, 1, 1] and loaded.test.masks.any()

    listing = harness_cli(
        tmp_path, "data", "list", env={"HARNESS_DATA": str(data)}, tables=visa_tables(archive, members)
    )
    assert listing.returncode == 0, listing.stderr
    visa = next(line for line in listing.stdout.splitlines() if line.startswith("visa"))
    assert "present" in visa and "fetched" in visa and f"12 files, sha256 {sha256(archive)[:12]}" in visa
    cifar = next(line for line in listing.stdout.splitlines() if line.startswith("cifar10"))
    assert "missing" in cifar and "data fetch cifar10" in cifar
    mvtec = next(line for line in listing.stdout.splitlines() if line.startswith("mvtec"))
    assert "missing" in mvtec and "mvtec.com" in mvtec

    again = harness_cli(tmp_path, "data", "fetch", "visa", "--root", str(root), tables=visa_tables(archive, members))
    assert again.returncode == 0 and "already fetched" in again.stdout


def test_cifar_fetch_with_checksum_mismatch_interruption_and_resume(tmp_path):
    members = cifar_members()
    archive = tar_bytes(members, "gz")
    tables = cifar_tables(archive, members)
    root = tmp_path / "cifar"
    path = "/cifar10/cifar-10-python.tar.gz"
    part = root / ".download" / "cifar-10-python.tar.gz.part"
    with FileServer({path: archive[::-1]}) as server:
        env = {"HARNESS_MIRROR": server.url}
        bad = harness_cli(tmp_path, "data", "fetch", "cifar10", "--root", str(root), tables=tables, env=env)
        assert bad.returncode == 2
        assert last_line(bad.stderr).startswith("error: cifar-10-python.tar.gz from ")
        assert "checksum mismatch (md5 is" in bad.stderr
        assert "Traceback" not in bad.stderr and not part.exists() and not (root / ".rd-harness-fetch.json").exists()
        assert list((root / ".download").iterdir()) == []  # the bad file was deleted

        server.files[path] = archive
        server.drops[path] = Drop(after=len(archive) // 5)
        cut = harness_cli(tmp_path, "data", "fetch", "cifar10", "--root", str(root), tables=tables, env=env)
        assert cut.returncode == 2 and "Traceback" not in cut.stderr
        assert "the same command resumes" in last_line(cut.stderr)
        kept = part.stat().st_size
        assert kept == 3 * (len(archive) // 5) and not (root / "cifar-10-batches-py").exists()

        server.drops.clear()
        good = harness_cli(tmp_path, "data", "fetch", "cifar10", "--root", str(root), tables=tables, env=env)
        assert good.returncode == 0, good.stderr
        assert server.gets(path)[-1] == f"bytes={kept}-"  # resumed, not restarted
    assert not part.exists() and (root / ".rd-harness-fetch.json").is_file()
    for name, content in members.items():
        assert (root / name).read_bytes() == content
    loaded = create("cifar10", root).load("cat", 32)
    assert len(loaded.train) == 5 and len(loaded.test) == 20


def test_run_without_data_names_the_fetch_command(tmp_path):
    for env in ({}, {"HARNESS_DATA": str(tmp_path / "data")}):
        result = harness_cli(tmp_path, "run", "--dataset", "cifar10", "--weights", "none", env=env)
        assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
        assert "python -m harness data fetch cifar10" in result.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["data", "fetch", "mvtec"], "cannot fetch mvtec: MVTec AD is downloaded from https://www.mvtec.com"),
        (["data", "fetch", "brats"], "cannot fetch brats: BraTS needs a registration"),
        (["data", "fetch", "visa"], "no folder to fetch visa into: pass --root PATH, or set HARNESS_DATA"),
        (["data", "fetch", "imagenet"], "unknown data set 'imagenet'"),
    ],
)
def test_fetch_refusals_are_one_line_and_exit_2(tmp_path, args, message):
    result = harness_cli(tmp_path, *args)
    assert result.returncode == 2 and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_offline_forbids_data_fetch(tmp_path):
    result = harness_cli(
        tmp_path,
        "data",
        "fetch",
        "cifar10",
        "--root",
        str(tmp_path / "c"),
        env={"HARNESS_OFFLINE": "1", "HARNESS_MIRROR": "http://127.0.0.1:9"},
    )
    assert result.returncode == 2 and "HARNESS_OFFLINE is set" in result.stderr and not (tmp_path / "c").exists()


# In-process: the table itself, and data sets the subprocess tests leave out


def test_pinned_visa_split_checksums_are_those_of_the_published_files():
    for name, digest in fetch.VISA_SPLITS.items():
        assert hashlib.sha256((REAL_SPLITS / name).read_bytes()).hexdigest() == digest


def test_every_data_set_has_a_source_with_checksums_or_a_pointer():
    from harness import datasets

    # every source belongs to a registered data set; one without a source (a plugin, the generated one) is
    # listed with a pointer instead
    assert set(fetch.SOURCES) <= set(datasets.names())
    assert set(fetch.fetchable()) == {"visa", "cifar10", "mnist", "fashion_mnist"}
    for source in fetch.SOURCES.values():
        for remote in source.files:
            assert remote.checksums and remote.source
            assert all(url.startswith(("http://", "https://")) for url in remote.urls)
            assert remote.urls[0].rsplit("/", 1)[-1] == remote.name


def _with_test_checksums(monkeypatch, name: str, files: dict[str, bytes], members: dict[str, bytes] | None = None):
    source = fetch.SOURCES[name]
    remotes = tuple(dataclasses.replace(r, checksums={"md5": md5(files[r.name])}, size=None) for r in source.files)
    pins = {k: {"sha256": sha256(members[k])} for k in source.members} if members else {}
    supplements = {k: dataclasses.replace(r, checksums=pins[k]) for k, r in source.supplements.items()}
    monkeypatch.setitem(
        fetch.SOURCES, name, dataclasses.replace(source, files=remotes, members=pins, supplements=supplements)
    )


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist"])
def test_idx_files_are_fetched_into_the_folder_the_adapter_reads(tmp_path, monkeypatch, name):
    monkeypatch.delenv("HARNESS_OFFLINE")
    files = idx_files()
    _with_test_checksums(monkeypatch, name, files)
    with FileServer({f"/{name}/{n}": content for n, content in files.items()}) as server:
        root = fetch.fetch(name, tmp_path / name, mirror=server.url, progress=False)
    assert sorted(p.name for p in root.iterdir()) == sorted([*files, ".rd-harness-fetch.json"])
    data = create(name, root).load(create(name, root).categories[3], 32)
    assert len(data.train) == 3 and len(data.test) == 12


def test_visa_split_files_missing_from_the_archive_are_fetched_and_pinned(tmp_path, monkeypatch):
    monkeypatch.delenv("HARNESS_OFFLINE")
    members = visa_members()
    archive = tar_bytes(visa_members(with_split=False))
    _with_test_checksums(monkeypatch, "visa", {"VisA_20220922.tar": archive}, members)
    served = {"/visa/VisA_20220922.tar": archive} | {f"/visa/{n}": members[f"split_csv/{n}"] for n in fetch.VISA_SPLITS}
    with FileServer(served) as server:
        root = fetch.fetch("visa", tmp_path / "visa", mirror=server.url, progress=False, keep_archives=True)
        assert [p for p, _ in server.requests] == list(served)
    assert (root / "split_csv" / "1cls.csv").read_bytes() == members["split_csv/1cls.csv"]
    assert (root / ".download" / "VisA_20220922.tar").is_file()  # --keep-archive


def test_a_bad_member_of_a_verified_archive_is_caught(tmp_path, monkeypatch):
    monkeypatch.delenv("HARNESS_OFFLINE")
    members = cifar_members()
    archive = tar_bytes(members, "gz")
    _with_test_checksums(monkeypatch, "cifar10", {"cifar-10-python.tar.gz": archive})
    source = fetch.SOURCES["cifar10"]
    monkeypatch.setitem(
        fetch.SOURCES,
        "cifar10",
        dataclasses.replace(source, members={"cifar-10-batches-py/test_batch": {"md5": "0" * 32}}),
    )
    mismatch = r"test_batch: checksum mismatch \(md5 is .*, expected 0{32}\)"
    with FileServer({"/cifar10/cifar-10-python.tar.gz": archive}) as server, pytest.raises(DataError, match=mismatch):
        fetch.fetch("cifar10", tmp_path / "c", mirror=server.url, progress=False)
    assert not (tmp_path / "c" / ".rd-harness-fetch.json").exists()
    assert fetch.status("cifar10", tmp_path / "nowhere") == ("missing", str(tmp_path / "nowhere" / "cifar10"))
