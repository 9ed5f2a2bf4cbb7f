"""Reading and writing IDX files (the MNIST / Fashion-MNIST format), raw or gzipped.

An IDX file is a 4-byte magic number ``0x00 0x00 <type> <ndim>``, ``ndim``
big-endian 32-bit sizes, then the data. Only unsigned bytes (type ``0x08``)
are used by the image sets. Every problem -- wrong magic, truncated or corrupt
data, images and labels that do not pair up -- raises :class:`IdxError` naming
the file.
"""

from __future__ import annotations

import gzip
import hashlib
import zlib
from pathlib import Path

import numpy as np

__all__ = ["IdxError", "read_idx", "write_idx", "load_pair", "find_idx", "md5"]

#: IDX element type code -> NumPy dtype (big-endian).
_TYPES = {0x08: np.dtype("u1"), 0x09: np.dtype("i1"), 0x0B: np.dtype(">i2"),
          0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
_CODES = {v.newbyteorder("="): k for k, v in _TYPES.items()}


class IdxError(ValueError):
    """An IDX file that cannot be read: the message names the file and the problem."""


def _read_bytes(path: Path) -> bytes:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise IdxError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if path.suffix == ".gz" or raw[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise IdxError(f"{path}: corrupt or truncated gzip data ({exc})") from None
    return raw


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (``.gz`` or raw) into an array of its declared shape.

    Raises
    ------
    IdxError
        On a wrong magic number, an unknown type code, or a data size that does
        not match the header.
    """
    path = Path(path)
    raw = _read_bytes(path)
    if len(raw) < 4:
        raise IdxError(f"{path}: truncated: {len(raw)} bytes, an IDX header needs at least 4")
    if raw[0] != 0 or raw[1] != 0 or raw[2] not in _TYPES or not 1 <= raw[3] <= 4:
        raise IdxError(f"{path}: wrong magic number 0x{raw[:4].hex()}: expected 0x0000TTDD "
                       f"(type TT in {sorted(hex(t) for t in _TYPES)}, 1..4 dimensions); "
                       f"is this an IDX file?")
    dtype, ndim = _TYPES[raw[2]], raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise IdxError(f"{path}: truncated header: {len(raw)} bytes, expected {header}")
    shape = tuple(int(v) for v in np.frombuffer(raw, ">u4", ndim, 4))
    expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) != expected:
        what = "truncated" if len(raw) < expected else "trailing bytes"
        raise IdxError(f"{path}: {what}: {len(raw)} bytes, but the header declares shape "
                       f"{shape} ({expected} bytes)")
    return np.frombuffer(raw, dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def write_idx(path: str | Path, array: np.ndarray) -> None:
    """Write ``array`` as an IDX file, gzipped when ``path`` ends in ``.gz``."""
    path = Path(path)
    a = np.asarray(array)
    code = _CODES.get(a.dtype)
    if code is None:
        raise ValueError(f"IDX cannot store dtype {a.dtype!r}")
    body = (bytes([0, 0, code, a.ndim]) + np.asarray(a.shape, ">u4").tobytes()
            + a.astype(_TYPES[code]).tobytes())
    path.write_bytes(gzip.compress(body, mtime=0) if path.suffix == ".gz" else body)


def find_idx(directory: Path, stem: str) -> Path:
    """``directory/stem`` as ``.gz`` or raw (also ``stem`` with ``-idx`` written as ``.idx``)."""
    directory = Path(directory)
    names = [stem, stem.replace("-idx", ".idx")]
    for name in names:
        for candidate in (directory / f"{name}.gz", directory / name):
            if candidate.is_file():
                return candidate
    raise FileNotFoundError(f"{directory}: no {stem}.gz or {stem} in this directory")


def load_pair(images: Path, labels: Path) -> tuple[np.ndarray, np.ndarray]:
    """Images as ``(n, rows*cols)`` uint8 and labels as ``(n,)`` int64, checked to pair up."""
    x, y = read_idx(images), read_idx(labels)
    if x.ndim != 3 or x.dtype != np.uint8:
        raise IdxError(f"{images}: expected unsigned-byte images (n, rows, cols), "
                       f"got {x.dtype} with shape {x.shape}")
    if y.ndim != 1 or y.dtype != np.uint8:
        raise IdxError(f"{labels}: expected unsigned-byte labels (n,), got {y.dtype} with shape {y.shape}")
    if len(x) != len(y):
        raise IdxError(f"{labels}: {len(y)} labels but {images} has {len(x)} images")
    return x.reshape(len(x), -1), y.astype(np.int64)


def md5(path: Path) -> str:
    """Hex MD5 digest of a file."""
    h = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
