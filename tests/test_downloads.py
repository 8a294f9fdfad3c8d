"""harness/downloads.py against a file server on 127.0.0.1: verified, resumed, restarted, refused."""

from __future__ import annotations

import io
import os
import tarfile

import pytest

from harness import downloads
from harness.downloads import Remote, extract, fetch_file, mirror_url, permit_downloads
from harness.errors import DownloadError

from http_fixtures import Drop, FileServer, md5, sha256, tar_bytes

DATA = bytes(range(256)) * 4096  # 1 MiB


@pytest.fixture(autouse=True)
def online(monkeypatch):
    monkeypatch.delenv("HARNESS_OFFLINE", raising=False)
    monkeypatch.delenv("HARNESS_MIRROR", raising=False)


def remote(server: FileServer, path: str = "/files/data.bin", **checksums) -> Remote:
    return Remote("data.bin", (server.url + path,), checksums or {"sha256": sha256(DATA)}, source="the test")


def test_download_is_verified_renamed_and_kept(tmp_path, capfd):
    with FileServer({"/files/data.bin": DATA}) as server:
        dest = fetch_file(remote(server, md5=md5(DATA), sha256=sha256(DATA)), tmp_path / "data.bin")
        assert dest.read_bytes() == DATA and not (tmp_path / "data.bin.part").exists()
        err = capfd.readouterr().err  # not a terminal: one plain line, no bar
        assert f"data.bin: downloading, {len(DATA) / 2**20:,.1f} MiB" in err and "\r" not in err and "\x1b[" not in err
        fetch_file(remote(server), dest)  # a verified file is not downloaded again
        assert server.gets("/files/data.bin") == [None]


def test_a_dropped_connection_is_resumed_with_a_range_request(tmp_path):
    with FileServer({"/files/data.bin": DATA}, drops={"/files/data.bin": Drop(after=300_000, times=1)}) as server:
        dest = fetch_file(remote(server), tmp_path / "data.bin", pause=0)
        assert dest.read_bytes() == DATA
        assert server.gets("/files/data.bin") == [None, "bytes=300000-"]


def test_interrupted_download_keeps_only_a_part_file_and_the_next_call_resumes(tmp_path):
    """Each try resumes where the last stopped; when all break, the bytes so far stay in a .part file
    (never taken for the file) and the next call continues from there."""
    with FileServer({"/files/data.bin": DATA}, drops={"/files/data.bin": Drop(after=200_000)}) as server:
        with pytest.raises(DownloadError) as error:
            fetch_file(remote(server), tmp_path / "data.bin", pause=0)
        message = str(error.value)
        assert "connection closed after 600000 of 1048576 bytes" in message and "resumes" in message
        assert "\n" not in message
        assert not (tmp_path / "data.bin").exists()
        part = tmp_path / "data.bin.part"
        assert part.read_bytes() == DATA[:600_000]
        assert server.gets("/files/data.bin") == [None, "bytes=200000-", "bytes=400000-"]

        server.drops.clear()
        assert fetch_file(remote(server), tmp_path / "data.bin").read_bytes() == DATA
        assert server.gets("/files/data.bin")[-1] == "bytes=600000-" and not part.exists()


def test_a_server_without_range_support_restarts_from_the_beginning(tmp_path, capfd):
    (tmp_path / "data.bin.part").write_bytes(b"stale bytes of an earlier attempt")
    with FileServer({"/files/data.bin": DATA}, no_range={"/files/data.bin"}) as server:
        assert fetch_file(remote(server), tmp_path / "data.bin").read_bytes() == DATA
    assert "does not resume downloads; starting again" in capfd.readouterr().err


def test_a_complete_part_file_is_verified_without_downloading_again(tmp_path):
    (tmp_path / "data.bin.part").write_bytes(DATA)
    with FileServer({"/files/data.bin": DATA}) as server:
        assert fetch_file(remote(server), tmp_path / "data.bin").read_bytes() == DATA
        assert server.gets("/files/data.bin") == [f"bytes={len(DATA)}-"]  # answered 416: nothing left


def test_checksum_mismatch_is_one_line_and_deletes_the_file(tmp_path):
    with FileServer({"/files/data.bin": DATA[::-1]}) as server, pytest.raises(DownloadError) as error:
        fetch_file(remote(server), tmp_path / "data.bin")
    message = str(error.value)
    assert "checksum mismatch" in message and sha256(DATA) in message and "the test" in message and "\n" not in message
    assert list(tmp_path.iterdir()) == []


def test_a_stored_file_that_no_longer_matches_is_downloaded_again(tmp_path):
    (tmp_path / "data.bin").write_bytes(b"edited")
    with FileServer({"/files/data.bin": DATA}) as server:
        assert fetch_file(remote(server), tmp_path / "data.bin").read_bytes() == DATA


def test_refused_url_falls_back_to_the_next_one(tmp_path):
    with FileServer({"/b/data.bin": DATA}) as server:
        source = Remote("data.bin", (server.url + "/a/data.bin", server.url + "/b/data.bin"), {"md5": md5(DATA)})
        assert fetch_file(source, tmp_path / "data.bin").read_bytes() == DATA
        with pytest.raises(DownloadError, match=r"cannot download .*/a/data.bin: HTTP 404"):
            fetch_file(Remote("x", (server.url + "/a/data.bin",)), tmp_path / "x")
        assert server.gets("/a/data.bin") == [None, None]  # a refusal is not retried


def test_offline_refuses_to_download(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_OFFLINE", "1")
    with FileServer({"/files/data.bin": DATA}) as server:
        with pytest.raises(DownloadError, match="HARNESS_OFFLINE is set"):
            fetch_file(remote(server), tmp_path / "data.bin")
        assert server.requests == []


def test_mirror_urls_and_a_folder_as_mirror(tmp_path, monkeypatch):
    assert mirror_url("https://host/x/a.tar", "visa", "a.tar") == "https://host/x/a.tar"
    assert mirror_url("https://host/x/a.tar", "visa", "a.tar", mirror="http://m:8/b/") == "http://m:8/b/visa/a.tar"
    (tmp_path / "mirror" / "visa").mkdir(parents=True)
    (tmp_path / "mirror" / "visa" / "data.bin").write_bytes(DATA)
    monkeypatch.setenv("HARNESS_MIRROR", str(tmp_path / "mirror"))
    url = mirror_url("https://nowhere.invalid/data.bin", "visa", "data.bin")
    assert url.startswith("file://")
    source = Remote("data.bin", ("https://nowhere.invalid/data.bin",), {"sha256": sha256(DATA)})
    assert fetch_file(source, tmp_path / "out" / "data.bin", urls=(url,)).read_bytes() == DATA


def test_permission_to_download_is_scoped(monkeypatch):
    assert not downloads.downloads_permitted()
    with permit_downloads():
        assert downloads.downloads_permitted()
        monkeypatch.setenv("HARNESS_OFFLINE", "1")
        assert not downloads.downloads_permitted()
    assert not downloads.downloads_permitted()


def test_extract_tar_and_refuse_members_outside_the_folder(tmp_path):
    archive = tmp_path / "a.tar.gz"
    archive.write_bytes(tar_bytes({"top/one.txt": b"1", "top/sub/two.txt": b"22"}, "gz"))
    assert extract(archive, tmp_path / "out", progress=False) == 2
    assert (tmp_path / "out" / "top" / "sub" / "two.txt").read_bytes() == b"22"

    evil = tmp_path / "evil.tar"
    evil.write_bytes(tar_bytes({"../escaped.txt": b"x"}))
    with pytest.raises(DownloadError, match="cannot extract"):
        extract(evil, tmp_path / "out2", progress=False)
    assert not (tmp_path / "escaped.txt").exists()
    (tmp_path / "plain.bin").write_bytes(os.urandom(64))
    with pytest.raises(DownloadError, match="neither a tar nor a zip"):
        extract(tmp_path / "plain.bin", tmp_path / "out3")


def test_tar_helper_writes_what_tarfile_reads():
    with tarfile.open(fileobj=io.BytesIO(tar_bytes({"a/b": b"xyz"}))) as tar:
        assert tar.extractfile("a/b").read() == b"xyz"
