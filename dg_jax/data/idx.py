"""IDX files (the MNIST / Fashion-MNIST format), plain or gzip-compressed:

    read_idx(path, magic=None) -> np.ndarray     # IdxError naming the file if it is not IDX,
                                                 # truncated, or not of the expected `magic`
    write_idx(path, array) -> path               # .gz suffix -> gzip-compressed (tests, tools)

An IDX file is a 4-byte magic number (two zero bytes, a type code, the number of dimensions),
the dimensions as big-endian int32, then the payload in C order (big-endian for multi-byte
types). MNIST's images are magic 2051 (uint8, 3 dimensions), its labels 2049 (uint8, 1).

Compression is recognised by the gzip signature, not the file name. The files are read as they
are, with no checksum of upstream archives (Debian's dataset-fashion-mnist recompressed them).
"""
from __future__ import annotations

import gzip
import pathlib
import zlib

import numpy as np

from dg_jax.errors import UserError

IMAGES_MAGIC = 2051  # uint8, 3 dimensions (N, rows, cols)
LABELS_MAGIC = 2049  # uint8, 1 dimension (N,)
GZIP_SIGNATURE = b"\x1f\x8b"
# IDX type code -> numpy dtype (multi-byte types are big-endian)
TYPES = {0x08: np.dtype("u1"), 0x09: np.dtype("i1"), 0x0B: np.dtype(">i2"),
         0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
CODES = {dtype.newbyteorder(">"): code for code, dtype in TYPES.items()}


class IdxError(UserError, ValueError):
    """An IDX file that cannot be read (the message names the file)."""


def _read_bytes(path: pathlib.Path) -> bytes:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise IdxError(f"IDX file {path} not found") from None
    except OSError as err:
        raise IdxError(f"IDX file {path} cannot be read: {err}") from None
    if data[:2] != GZIP_SIGNATURE:
        return data
    try:
        return gzip.decompress(data)
    except EOFError:
        raise IdxError(f"{path} is a truncated gzip file (it ends before its compressed "
                       "stream does): download or copy it again") from None
    except (gzip.BadGzipFile, zlib.error) as err:
        raise IdxError(f"{path} is a corrupt gzip file ({err}): download or copy it again"
                       ) from None


def read_idx(path: str | pathlib.Path, magic: int | None = None) -> np.ndarray:
    """The array in the IDX file `path` (.gz or plain), of the file's type and dimensions (native
    byte order); with `magic`, the file's magic number must be that one (2051 images, 2049
    labels)."""
    path = pathlib.Path(path)
    data = _read_bytes(path)
    if len(data) < 4 or data[:2] != b"\0\0" or data[2] not in TYPES or data[3] == 0:
        raise IdxError(f"{path} is not an IDX file (its first bytes {data[:4].hex() or 'none'} "
                       "are no IDX magic number: 00 00, a type code, the number of dimensions)")
    found = int.from_bytes(data[:4], "big")
    if magic is not None and found != magic:
        what = {IMAGES_MAGIC: " (uint8 images)", LABELS_MAGIC: " (uint8 labels)"}.get(magic, "")
        raise IdxError(f"{path} has IDX magic number {found}, expected {magic}{what}: is it "
                       "the right file?")
    dtype, ndim = TYPES[data[2]], data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise IdxError(f"{path} is truncated: its IDX header announces {ndim} dimensions but "
                       f"the file holds {len(data)} bytes")
    shape = tuple(int(n) for n in np.frombuffer(data, ">i4", ndim, 4))
    expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) < expected:
        raise IdxError(f"{path} is truncated: its IDX header announces shape {shape} "
                       f"({expected} bytes in all) but it holds {len(data)} bytes")
    if len(data) > expected:
        raise IdxError(f"{path} is not a valid IDX file: {len(data) - expected} bytes follow "
                       f"the payload of shape {shape} its header announces")
    # a writable copy in native byte order (frombuffer's view of the bytes is read-only)
    return np.frombuffer(data, dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def write_idx(path: str | pathlib.Path, array: np.ndarray) -> pathlib.Path:
    """Writes `array` (uint8, int8, int16, int32, float32 or float64) as an IDX file, gzipped
    when `path` ends in .gz."""
    path, array = pathlib.Path(path), np.asarray(array)
    code = CODES.get(array.dtype.newbyteorder(">"))
    if code is None or array.ndim == 0 or array.ndim > 255:
        raise ValueError(f"IDX holds 1 to 255 dimensions of {sorted(map(str, CODES))}, got "
                         f"{array.dtype} {array.shape}")
    data = (bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, ">i4").tobytes()
            + np.ascontiguousarray(array, TYPES[code]).tobytes())
    path.write_bytes(gzip.compress(data, mtime=0) if path.name.endswith(".gz") else data)
    return path
