"""Completeness check of NIfTI volumes (.nii, .nii.gz) before they are read.

ITK, which medpy.io.load uses, reads a truncated volume without complaint and returns the missing
voxels as zeros: an interrupted download would silently become black slices with empty tumour masks.
So every file is checked first: a gzip stream must reach its end marker (its CRC and length are then
verified too), and the uncompressed data must hold all the voxels its header announces
(vox_offset + voxel count x bitpix / 8 bytes).
"""

from __future__ import annotations

import gzip
import math
import struct
import zlib
from pathlib import Path

from harness.errors import DataError

GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 1 << 20
# sizeof_hdr -> (struct formats and offsets of bitpix, dim[8], vox_offset), NIfTI-1 and NIfTI-2
_LAYOUTS = {
    348: ("h", 72, "8h", 40, "f", 108),
    540: ("h", 14, "8q", 16, "q", 168),
}


def _expected_bytes(header: bytes, path: Path) -> int:
    """vox_offset + the data size the header announces; DataError when the header is not NIfTI."""
    for order in "<>":
        if len(header) >= 4 and struct.unpack(f"{order}i", header[:4])[0] in _LAYOUTS:
            break
    else:
        found = f"{len(header)} bytes" if len(header) < 4 else f"header size {struct.unpack('<i', header[:4])[0]}"
        raise DataError(
            f"{path}: cannot read NIfTI volume (no NIfTI-1 or NIfTI-2 header: {found}; a damaged or truncated file?)"
        )
    size = struct.unpack(f"{order}i", header[:4])[0]
    if len(header) < size:
        raise DataError(f"{path}: truncated NIfTI file ({len(header)} bytes, shorter than its {size}-byte header)")
    bitpix_format, bitpix_at, dim_format, dim_at, offset_format, offset_at = _LAYOUTS[size]
    bitpix = struct.unpack_from(f"{order}{bitpix_format}", header, bitpix_at)[0]
    dim = struct.unpack_from(f"{order}{dim_format}", header, dim_at)
    vox_offset = struct.unpack_from(f"{order}{offset_format}", header, offset_at)[0]
    ndim = dim[0]
    if not (1 <= ndim <= 7) or any(d < 1 for d in dim[1 : ndim + 1]) or bitpix < 1 or bitpix % 8 or vox_offset < size:
        raise DataError(f"{path}: damaged NIfTI header (dim {list(dim)}, bitpix {bitpix}, vox_offset {vox_offset})")
    return int(vox_offset) + math.prod(dim[1 : ndim + 1]) * bitpix // 8


def check_complete(path: str | Path) -> None:
    """Raise DataError naming `path` unless it is a complete NIfTI file (gzip-compressed or not)."""
    path = Path(path)
    try:
        with open(path, "rb") as raw:
            compressed = raw.read(2) == GZIP_MAGIC
        with gzip.open(path, "rb") if compressed else open(path, "rb") as stream:
            header = stream.read(540)
            expected = _expected_bytes(header, path)
            total = len(header)
            while chunk := stream.read(_CHUNK):
                total += len(chunk)
    except EOFError:
        raise DataError(
            f"{path}: truncated gzip stream (the file ends before its end-of-stream marker); download or copy it again"
        ) from None
    except (gzip.BadGzipFile, zlib.error) as error:
        raise DataError(
            f"{path}: cannot read NIfTI volume (damaged gzip stream: {error}); download or copy it again"
        ) from None
    except OSError as error:
        raise DataError(f"{path}: cannot read NIfTI volume ({error.strerror or error})") from None
    if total < expected:
        raise DataError(
            f"{path}: truncated NIfTI volume ({total} bytes{' uncompressed' if compressed else ''}, "
            f"its header announces {expected}); download or copy it again"
        )
