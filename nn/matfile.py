"""Reading the numeric arrays of a MATLAB level-5 MAT-file (``save -v7`` and older).

A MAT v5 file is a 128-byte header -- 116 bytes of text starting ``MATLAB 5.0
MAT-file``, 8 bytes of subsystem offset, the version ``0x0100`` and the endian
indicator ``IM`` (little-endian) or ``MI`` (big-endian) -- followed by data
elements. Each element is an 8-byte tag (type, byte count) and its data padded
to 8 bytes, or a 4-byte "small" tag with up to 4 bytes of data. A variable is an
``miMATRIX`` element (array flags, dimensions, name, real part, optional
imaginary part), possibly wrapped in an ``miCOMPRESSED`` element (zlib, not
padded).

Only what numeric data sets need is read: real or complex, full (not sparse)
arrays of the numeric classes. Their data may be stored in a smaller type than
their class (MATLAB writes a ``double`` array of small integers as bytes); it is
returned as the class's dtype, shaped as in MATLAB (column-major data, so
``x[i, j]`` is MATLAB's ``x(i+1, j+1)``). Every problem raises
:class:`MatError` naming the file. MAT v7.3 files are HDF5 and are refused with
a message saying so.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np

__all__ = ["MatError", "read_mat"]

MI_MATRIX, MI_COMPRESSED = 14, 15
#: Storage types of data elements.
_MI_TYPES = {1: "i1", 2: "u1", 3: "i2", 4: "u2", 5: "i4", 6: "u4", 7: "f4", 9: "f8",
             12: "i8", 13: "u8", 16: "u1"}
#: Array classes that :func:`read_mat` returns (``mxDOUBLE_CLASS`` .. ``mxUINT64_CLASS``).
_MX_CLASSES = {6: "f8", 7: "f4", 8: "i1", 9: "u1", 10: "i2", 11: "u2", 12: "i4", 13: "u4",
               14: "i8", 15: "u8"}
_MX_NAMES = {1: "cell", 2: "struct", 3: "object", 4: "char", 5: "sparse", 16: "function handle",
             17: "opaque"}
_COMPLEX, _LOGICAL = 0x0800, 0x0200


class MatError(ValueError):
    """A MAT-file that cannot be read: the message names the file and the problem."""


class _Reader:
    """Data elements in ``buf[pos:end]`` of a file with byte order ``order`` ('<' or '>')."""

    def __init__(self, path: Path, buf: bytes | memoryview, order: str, where: str = "",
                 base: int = 0):
        self.path, self.buf, self.order, self.where = path, memoryview(buf), order, where
        self.pos, self.base = 0, base       # base: where buf starts, for messages

    def error(self, message: str) -> MatError:
        return MatError(f"{self.path}: {self.where}{message}")

    def at_end(self) -> bool:
        return self.pos >= len(self.buf)

    def element(self) -> tuple[int, memoryview]:
        """The next element's type and data; the position moves past its padding."""
        at = self.base + self.pos
        if len(self.buf) - self.pos < 8:
            raise self.error(f"truncated: a data element tag at byte {at} needs 8 bytes, "
                             f"{len(self.buf) - self.pos} are left")
        first, second = np.frombuffer(self.buf, self.order + "u4", 2, self.pos)
        if first >> 16:                 # small element: type and size in 4 bytes, data in 4
            mtype, nbytes, start = int(first & 0xFFFF), int(first >> 16), self.pos + 4
            if nbytes > 4:
                raise self.error(f"small data element at byte {at} declares {nbytes} bytes "
                                 f"(at most 4)")
            self.pos += 8
        else:
            mtype, nbytes, start = int(first), int(second), self.pos + 8
            if start + nbytes > len(self.buf):
                raise self.error(f"truncated: the data element at byte {at} declares {nbytes} "
                                 f"bytes, {len(self.buf) - start} are left")
            # compressed elements are not padded
            self.pos = start + (nbytes if mtype == MI_COMPRESSED else -(-nbytes // 8) * 8)
        return mtype, self.buf[start:start + nbytes]

    def numbers(self, what: str, types: tuple[int, ...] | None = None) -> np.ndarray:
        """The next element as a 1-D array of its storage type."""
        mtype, data = self.element()
        if mtype not in _MI_TYPES or (types is not None and mtype not in types):
            raise self.error(f"{what}: unexpected data type {mtype}")
        dtype = np.dtype(_MI_TYPES[mtype]).newbyteorder(self.order)
        if len(data) % dtype.itemsize:
            raise self.error(f"{what}: {len(data)} bytes is not a whole number of "
                             f"{dtype.itemsize}-byte values")
        return np.frombuffer(data, dtype)


def _header(path: Path, head: bytes) -> str:
    """The byte order ('<' or '>') of a file starting with ``head`` (128 bytes)."""
    if head[:19] == b"MATLAB 7.3 MAT-file" or head[:8] == b"\x89HDF\r\n\x1a\n":
        raise MatError(f"{path}: a MAT v7.3 file (HDF5), not MAT v5; save it with 'save -v7'")
    if len(head) < 128:
        raise MatError(f"{path}: truncated: {len(head)} bytes, a MAT v5 header is 128")
    indicator = head[126:128]
    if indicator not in (b"IM", b"MI") or not head.startswith(b"MATLAB 5.0 MAT-file"):
        raise MatError(f"{path}: not a MAT v5 file (expected a header starting 'MATLAB 5.0 "
                       f"MAT-file' with endian indicator IM or MI, got {head[:19]!r} and "
                       f"{indicator!r})")
    return "<" if indicator == b"IM" else ">"


def _matrix(r: _Reader, wanted) -> tuple[str, np.ndarray | None]:
    """Name and array of the ``miMATRIX`` element whose contents ``r`` reads (``None``:
    not wanted, skipped)."""
    flags = r.numbers("array flags", (6,))
    if len(flags) != 2:
        raise r.error(f"array flags: {len(flags)} values, expected 2")
    cls, bits = int(flags[0] & 0xFF), int(flags[0])
    dims = r.numbers("dimensions", (5,))
    _, raw_name = r.element()
    name = bytes(raw_name).decode("ascii", "replace")
    if wanted is not None and name not in wanted:
        return name, None
    r.where = f"variable {name!r}: "
    if cls not in _MX_CLASSES:
        raise r.error(f"a {_MX_NAMES.get(cls, f'class {cls}')} array; only numeric arrays "
                      f"are read")
    if len(dims) < 2 or dims.min() < 0:
        raise r.error(f"bad dimensions {dims.tolist()}")
    shape = tuple(int(d) for d in dims)
    count = int(np.prod(shape, dtype=np.int64))
    dtype = np.dtype(_MX_CLASSES[cls])
    parts = []
    for part in ("real part", "imaginary part")[:2 if bits & _COMPLEX else 1]:
        values = r.numbers(part)
        if len(values) != count:
            raise r.error(f"{part}: {len(values)} values, but the dimensions {shape} "
                          f"need {count}")
        parts.append(values.astype(dtype.newbyteorder("="), copy=False))
    array = parts[0] if len(parts) == 1 else parts[0] + 1j * parts[1]
    if bits & _LOGICAL:
        array = array != 0
    return name, array.reshape(shape, order="F")


def read_mat(path: str | Path, names: tuple[str, ...] | None = None) -> dict[str, np.ndarray]:
    """The variables of a MAT v5 file (only ``names``, when given) as NumPy arrays.

    Raises
    ------
    MatError
        On a file that is not MAT v5, truncated or corrupt data, or a wanted
        variable that is not a numeric array.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise MatError(f"{path}: cannot read: {exc.strerror or exc}") from None
    order = _header(path, raw[:128])
    wanted = None if names is None else set(names)
    top = _Reader(path, memoryview(raw)[128:], order, base=128)
    out: dict[str, np.ndarray] = {}
    seen: list[str] = []
    while not top.at_end():
        offset = 128 + top.pos
        mtype, data = top.element()
        r = _Reader(path, data, order, f"element at byte {offset}: ")
        if mtype == MI_COMPRESSED:
            try:
                # A compressed element holds one whole element; MATLAB may leave
                # bytes after the zlib stream, which are ignored.
                d = zlib.decompressobj()
                inner = d.decompress(data)
            except zlib.error as exc:
                raise MatError(f"{path}: element at byte {offset}: corrupt compressed "
                               f"data ({exc})") from None
            if not d.eof:
                raise MatError(f"{path}: element at byte {offset}: truncated compressed data")
            r = _Reader(path, inner, order, f"element at byte {offset}: ")
            mtype, data = r.element()
            r = _Reader(path, data, order, f"element at byte {offset}: ")
        if mtype != MI_MATRIX:
            continue                    # e.g. subsystem data: nothing a data set needs
        name, array = _matrix(r, wanted)
        seen.append(name)
        if array is not None:
            out[name] = array
    if wanted is not None and (missing := sorted(wanted - out.keys())):
        raise MatError(f"{path}: no variable {', '.join(map(repr, missing))} (it has "
                       f"{', '.join(map(repr, seen)) or 'no variables'})")
    return out
