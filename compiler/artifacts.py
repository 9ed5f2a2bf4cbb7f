"""Writing run and build artifacts so that a crash never leaves half a file."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

__all__ = ["write_atomic", "save_npz"]


def write_atomic(path: Path, data: bytes | str) -> None:
    """Write ``path`` through a temporary file and a rename."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data.encode() if isinstance(data, str) else data)
    os.replace(tmp, path)


def save_npz(path: Path, arrays: dict) -> None:
    """``numpy.savez_compressed`` through a temporary file and a rename."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez_compressed(tmp, **arrays)
    os.replace(tmp, path)
