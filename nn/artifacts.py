"""Writing artifacts so that a crash never leaves half a file, and reading them back.

Every JSON, text and NPZ file that fewmul keeps (run and build folders, checkpoints, board
reports) goes through :func:`write_atomic` or :func:`save_npz`: the data is written to a
temporary file beside the target, flushed to disk, and renamed over it, so a reader sees the
old file or the new one, never a mix. :func:`read_json` and :func:`load_npz` read them back and
turn a truncated or corrupt file (or one of a newer format, :func:`check_format`) into an
:class:`ArtifactError` that names it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["write_atomic", "save_npz", "ArtifactError", "read_json", "read_versioned_json",
           "load_npz", "check_format"]


class ArtifactError(ValueError):
    """A file fewmul wrote cannot be used: truncated, corrupt, or of a format this version does
    not read. The message names the file and what is wrong with it."""


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


def read_json(path: Path) -> Any:
    """The JSON value in ``path``.

    Raises
    ------
    FileNotFoundError
        When there is no such file.
    ArtifactError
        When it cannot be read or is not JSON (e.g. truncated).
    """
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise
    except (OSError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"{path}: cannot be read ({exc})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ArtifactError(f"{path}: not valid JSON, truncated or corrupt ({exc})") from None


def load_npz(path: Path) -> dict[str, np.ndarray]:
    """The arrays of the NPZ file ``path`` (no pickled objects).

    Raises
    ------
    FileNotFoundError
        When there is no such file.
    ArtifactError
        When it is not a readable NPZ file (truncated, corrupt, not an NPZ at all).
    """
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as f:
            if not hasattr(f, "files"):
                raise ValueError("a single array, not an archive of arrays")
            return {key: f[key] for key in f.files}
    except FileNotFoundError:
        raise
    except Exception as exc:    # zipfile, zlib, format and OS errors all mean the same here
        raise ArtifactError(f"{path}: not a readable NPZ archive, truncated or corrupt "
                            f"({type(exc).__name__}: {exc})") from None


def check_format(path: Path, found: Any, current: int, remedy: str) -> int:
    """``found`` (a format version read from ``path``; None for a file without one, the
    format before versions were written: 1) as an integer no newer than ``current``.

    Raises
    ------
    ArtifactError
        For a newer or malformed version; the message ends with ``remedy``.
    """
    if found is None:
        return 1
    try:
        version = int(np.asarray(found).item() if isinstance(found, np.ndarray) else found)
    except (TypeError, ValueError):
        raise ArtifactError(f"{path}: format version {found!r} is not an integer") from None
    if version > current or version < 1:
        raise ArtifactError(f"{path}: format {version}, but this fewmul reads formats 1 to "
                            f"{current}: {remedy}")
    return version


def read_versioned_json(path: Path, what: str, current: int, remedy: str) -> dict:
    """The JSON object in ``path``, a ``what`` whose ``format`` key is checked against
    ``current`` (see :func:`check_format`).

    Raises
    ------
    ArtifactError
        When it is not JSON, not an object, or of a newer format.
    """
    fields = read_json(path)
    if not isinstance(fields, dict):
        raise ArtifactError(f"{path}: not a {what} (a JSON object)")
    check_format(path, fields.get("format"), current, remedy)
    return fields
