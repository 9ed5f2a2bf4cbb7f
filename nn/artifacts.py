"""Writing artifacts so that a crash never leaves half a file.

Every JSON, text and NPZ file that fewmul keeps (run and build folders, checkpoints, board
reports) goes through these two functions: the data is written to a temporary file beside
the target, flushed to disk, and renamed over it, so a reader sees the old file or the new
one, never a mix.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

__all__ = ["write_atomic", "save_npz"]


def _replace(tmp: Path, path: Path, write) -> None:
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_atomic(path: Path, data: bytes | str) -> None:
    """Write ``path`` through a temporary file and a rename."""
    path = Path(path)
    payload = data.encode() if isinstance(data, str) else data
    _replace(path.with_name(path.name + ".tmp"), path, lambda f: f.write(payload))


def save_npz(path: Path, arrays: dict, *, compressed: bool = True) -> None:
    """``numpy.savez_compressed`` (or ``numpy.savez``) through a temporary file and a
    rename."""
    path = Path(path)
    save = np.savez_compressed if compressed else np.savez
    _replace(path.with_name(path.name + ".tmp.npz"), path, lambda f: save(f, **arrays))
