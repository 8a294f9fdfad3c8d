"""A file server on 127.0.0.1 for the download tests, and archives in the layouts of the real downloads.

`FileServer` serves bytes by URL path from a thread (http.server), answers HTTP Range requests (206,
or 416 past the end) unless told to ignore them, can cut the connection after some bytes of a file
(announcing the full length first, as a dropped transfer looks), and records every request.
Nothing here reaches the internet.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import pickle
import re
import socket
import subprocess
import sys
import tarfile
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Self

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Drop:
    after: int  # bytes of the body sent before the connection is cut
    times: int = 1 << 30  # how many requests are cut; later ones are served whole


@dataclass
class FileServer:
    files: dict[str, bytes] = field(default_factory=dict)
    drops: dict[str, Drop] = field(default_factory=dict)
    no_range: set[str] = field(default_factory=set)
    stalls: dict[str, int] = field(default_factory=dict)  # path -> bytes sent before the server goes silent
    requests: list[tuple[str, str | None]] = field(default_factory=list)  # (path, Range header)

    def __enter__(self) -> Self:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                path, wanted = self.path, self.headers.get("Range")
                server.requests.append((path, wanted))
                if path not in server.files:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                data = server.files[path]
                start = 0
                match = re.fullmatch(r"bytes=(\d+)-", wanted or "")
                if match and path not in server.no_range:
                    start = int(match.group(1))
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Accept-Ranges", "none" if path in server.no_range else "bytes")
                self.end_headers()
                if path in server.stalls:  # half a file, then silence with the connection open
                    self.wfile.write(body[: server.stalls[path]])
                    self.wfile.flush()
                    server._stop.wait(60)
                    return
                drop = server.drops.get(path)
                if drop and drop.times > 0:
                    drop.times -= 1
                    self.wfile.write(body[: drop.after])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                self.wfile.write(body)

        self._stop = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._server.shutdown()
        self._server.server_close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def gets(self, path: str) -> list[str | None]:
        """The Range header of every request for `path` (None: the whole file was asked for)."""
        return [wanted for requested, wanted in self.requests if requested == path]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def tar_bytes(members: dict[str, bytes], compression: str = "") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=f"w:{compression}") as tar:
        for name, content in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            info.mtime = 1_663_800_000
            tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


# --------------------------------------------------------------------------------------------
# Archives in the layouts of the real downloads


def _png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def _jpeg(value: int, block: bool = False) -> bytes:
    array = np.full((24, 36, 3), value, dtype=np.uint8)
    if block:
        array[:, :12] = 250
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


def visa_members(with_split: bool = True) -> dict[str, bytes]:
    """VisA_20220922.tar's layout (no top-level folder): <cat>/Data/Images/{Normal,Anomaly}/*.JPG,
    <cat>/Data/Masks/Anomaly/*.png (class ids), <cat>/image_anno.csv, split_csv/*.csv (CRLF)."""
    members = {}
    for i in range(4):
        members[f"candle/Data/Images/Normal/{i:03d}.JPG"] = _jpeg(40 + i)
    ids = np.zeros((24, 36), dtype=np.uint8)
    ids[:, :12] = 1
    for i in range(2):
        members[f"candle/Data/Images/Anomaly/{i:03d}.JPG"] = _jpeg(20, block=True)
        members[f"candle/Data/Masks/Anomaly/{i:03d}.png"] = _png(ids)
    members["candle/image_anno.csv"] = (
        b"image,label,mask\r\ncandle/Data/Images/Anomaly/000.JPG,wax missing,candle/Data/Masks/Anomaly/000.png\r\n"
    )
    if with_split:
        rows = [f"candle,train,normal,candle/Data/Images/Normal/{i:03d}.JPG," for i in range(3)]
        rows += ["candle,test,normal,candle/Data/Images/Normal/003.JPG,"]
        rows += [
            f"candle,test,anomaly,candle/Data/Images/Anomaly/{i:03d}.JPG,candle/Data/Masks/Anomaly/{i:03d}.png"
            for i in range(2)
        ]
        split = ("\r\n".join(["object,split,label,image,mask", *rows]) + "\r\n").encode()
        for name in ("1cls.csv", "2cls_fewshot.csv", "2cls_highshot.csv"):
            members[f"split_csv/{name}"] = split
    return members


CIFAR_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def cifar_members() -> dict[str, bytes]:
    """cifar-10-python.tar.gz's layout: cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta,
    readme.html}, Python pickles (protocol 2, bytes keys as the real files), 10 images a batch."""

    def batch(count: int, first: int) -> dict:
        labels = [(first + i) % 10 for i in range(count)]
        data = np.zeros((count, 3072), dtype=np.uint8)
        data[:, :1024] = np.arange(count)[:, None] * 20
        return {b"labels": labels, b"data": data, b"batch_label": b"batch"}

    members = {f"cifar-10-batches-py/data_batch_{b}": pickle.dumps(batch(10, b), protocol=2) for b in range(1, 6)}
    members["cifar-10-batches-py/test_batch"] = pickle.dumps(batch(20, 0), protocol=2)
    members["cifar-10-batches-py/batches.meta"] = pickle.dumps(
        {b"label_names": [n.encode() for n in CIFAR_CLASSES], b"num_vis": 3072}, protocol=2
    )
    members["cifar-10-batches-py/readme.html"] = b"<html></html>"
    return members


def idx_files() -> dict[str, bytes]:
    """MNIST's four gzip-compressed IDX files (30 training and 12 test images)."""

    def idx(array: np.ndarray, magic: int) -> bytes:
        header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
        return gzip.compress(header + array.astype(np.uint8).tobytes(), mtime=0)

    return {
        "train-images-idx3-ubyte.gz": idx(np.zeros((30, 28, 28)) + np.arange(30)[:, None, None], 0x803),
        "train-labels-idx1-ubyte.gz": idx(np.arange(30) % 10, 0x801),
        "t10k-images-idx3-ubyte.gz": idx(np.zeros((12, 28, 28)) + np.arange(12)[:, None, None], 0x803),
        "t10k-labels-idx1-ubyte.gz": idx((np.arange(12) * 7) % 10, 0x801),
    }


# --------------------------------------------------------------------------------------------
# The command line in a subprocess, with the download tables pointed at test files

_WRAPPER = '''\
"""python -m harness, with download tables changed as RD_TEST_TABLES says (the test files' checksums)."""
import dataclasses
import json
import os

_tables = json.loads(os.environ.get("RD_TEST_TABLES", "{}"))
if _tables.get("weights"):
    from harness.methods import rd_checkpoints

    rd_checkpoints.imagenet_weights_url = lambda backbone, _urls=_tables["weights"]: _urls[backbone]
if _tables.get("sources"):
    from harness.datasets import fetch

    for _name, _spec in _tables["sources"].items():
        _source = fetch.SOURCES[_name]
        _files = tuple(dataclasses.replace(r, checksums=_spec["files"][r.name], size=None) for r in _source.files)
        _supplements = {k: dataclasses.replace(r, checksums=_spec["members"][k])
                        for k, r in _source.supplements.items()}
        fetch.SOURCES[_name] = dataclasses.replace(_source, files=_files, supplements=_supplements,
                                                   members=_spec["members"])

if __name__ == "__main__":
    from harness.cli import main

    raise SystemExit(main())
'''


def harness_cli(
    tmp_path: Path, *args: str, env: dict | None = None, tables: dict | None = None, timeout: float = 600
) -> subprocess.CompletedProcess:
    """Run `python -m harness ARGS` in a subprocess (through a wrapper that changes the download tables)."""
    wrapper = tmp_path / "harness_with_test_tables.py"
    wrapper.write_text(_WRAPPER)
    environment = {k: v for k, v in os.environ.items() if k not in ("HARNESS_OFFLINE", "HARNESS_MIRROR")}
    environment |= {"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "RD_TEST_TABLES": json.dumps(tables or {})}
    environment |= env or {}
    return subprocess.run(
        [sys.executable, str(wrapper), *args],
        capture_output=True,
        text=True,
        env=environment,
        timeout=timeout,
        cwd=tmp_path,
        check=False,
    )


def last_line(text: str) -> str:
    lines = [line for line in text.replace("\r", "\n").splitlines() if line.strip()]
    return lines[-1] if lines else ""
