"""Reading CIFAR-10 (the "python version": pickled batches in a gzipped tarball).

The tarball ``cifar-10-python.tar.gz`` holds ``cifar-10-batches-py/`` with five
training batches ``data_batch_1`` .. ``data_batch_5`` and ``test_batch``, each a
pickled dict whose ``data`` is a ``(10000, 3072)`` uint8 array -- every row an
image as 1024 red, then 1024 green, then 1024 blue values, each plane row by row
-- and whose ``labels`` are 10000 integers in 0..9. The batches are read straight
from the tarball or from an extracted folder.

The pickles are Python 2 pickles of NumPy arrays; they are unpickled with only
the NumPy functions such an array needs, so a file that asks for anything else
is refused instead of run. Every problem raises :class:`CifarError` naming the
file.
"""

from __future__ import annotations

import codecs
import io
import pickle
import tarfile
import zlib
from pathlib import Path

import numpy as np

__all__ = ["CifarError", "CIFAR10_FILE", "CIFAR10_FOLDER", "CIFAR10_MD5", "CIFAR10_URLS",
           "CIFAR10_BATCHES", "find_cifar10", "read_cifar10", "to_hwc"]

#: The published tarball and its MD5 checksum.
CIFAR10_FILE = "cifar-10-python.tar.gz"
CIFAR10_MD5 = {CIFAR10_FILE: "c58f30108f718f92721af3b95e74349a"}
#: Where the tarball is fetched from (base URLs, tried in order).
CIFAR10_URLS = ("https://www.cs.toronto.edu/~kriz/",)
#: The folder inside the tarball.
CIFAR10_FOLDER = "cifar-10-batches-py"
#: Training batches, then the test batch.
CIFAR10_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch",)


class CifarError(ValueError):
    """A CIFAR-10 file that cannot be read: the message names the file and the problem."""


try:                                        # NumPy >= 2 (1.26 has it too, for pickles)
    from numpy._core.multiarray import _reconstruct, scalar
except ImportError:                         # pragma: no cover - older NumPy
    from numpy.core.multiarray import _reconstruct, scalar

#: What the arrays (and NumPy integers) of a batch may be rebuilt from; anything else
#: is refused.
_ALLOWED = {**{(module, name): f for module in ("numpy.core.multiarray", "numpy._core.multiarray")
               for name, f in (("_reconstruct", _reconstruct), ("scalar", scalar))},
            ("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype,
            ("_codecs", "encode"): codecs.encode}


class _BatchUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        try:
            return _ALLOWED[module, name]
        except KeyError:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}") from None


def find_cifar10(directory: str | Path) -> Path:
    """The tarball in ``directory``, else the folder of extracted batches (``directory``
    itself or its ``cifar-10-batches-py``)."""
    directory = Path(directory)
    if (directory / CIFAR10_FILE).is_file():
        return directory / CIFAR10_FILE
    for folder in (directory / CIFAR10_FOLDER, directory):
        if (folder / CIFAR10_BATCHES[0]).is_file():
            return folder
    raise FileNotFoundError(f"{directory}: no {CIFAR10_FILE}, nor the extracted batches "
                            f"({CIFAR10_FOLDER}/{CIFAR10_BATCHES[0]} ...) in this directory")


def to_hwc(rows: np.ndarray, shape: tuple[int, int, int] = (3, 32, 32)) -> np.ndarray:
    """Rows of ``(C, H, W)``-ordered images re-flattened in ``(H, W, C)`` order."""
    c, h, w = shape
    images = rows.reshape(-1, c, h, w).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images).reshape(len(rows), -1)


def _batch(name: str, raw: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Images ``(n, 3072)`` in (C, H, W) order and labels ``(n,)`` of the pickled batch."""
    try:
        batch = _BatchUnpickler(io.BytesIO(raw), encoding="latin1").load()
    except Exception as exc:            # a corrupt pickle can fail in many ways
        raise CifarError(f"{name}: not a CIFAR-10 batch: cannot unpickle it ({exc})") from None
    if not isinstance(batch, dict) or "data" not in batch or "labels" not in batch:
        keys = sorted(batch) if isinstance(batch, dict) else type(batch).__name__
        raise CifarError(f"{name}: not a CIFAR-10 batch: expected a dict with 'data' and "
                         f"'labels', got {keys}")
    x, y = batch["data"], np.asarray(batch["labels"])
    if not isinstance(x, np.ndarray) or x.dtype != np.uint8 or x.ndim != 2 or x.shape[1] != 3072:
        what = f"{x.dtype} {x.shape}" if isinstance(x, np.ndarray) else type(x).__name__
        raise CifarError(f"{name}: expected data as uint8 (n, 3072), got {what}")
    if y.shape != (len(x),) or y.dtype.kind not in "iu":
        raise CifarError(f"{name}: expected {len(x)} integer labels, got {y.dtype} {y.shape}")
    if len(y) and (y.min() < 0 or y.max() > 9):
        raise CifarError(f"{name}: label {int(y.max() if y.max() > 9 else y.min())} out of "
                         f"range 0..9")
    return x, y.astype(np.int64)


def _read_batches(source: Path) -> list[tuple[np.ndarray, np.ndarray]]:
    if source.is_dir():
        out = []
        for b in CIFAR10_BATCHES:
            path = source / b
            try:
                raw = path.read_bytes()
            except FileNotFoundError:
                raise FileNotFoundError(f"{path}: missing (the extracted CIFAR-10 folder "
                                        f"needs {', '.join(CIFAR10_BATCHES)})") from None
            out.append(_batch(str(path), raw))
        return out
    raws = {}
    try:
        with tarfile.open(source, "r:gz") as tar:
            for member in tar:
                folder, _, base = member.name.rpartition("/")
                if member.isfile() and base in CIFAR10_BATCHES and folder.endswith(CIFAR10_FOLDER):
                    raws[base] = tar.extractfile(member).read()
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise CifarError(f"{source}: corrupt or truncated tarball ({exc})") from None
    missing = [b for b in CIFAR10_BATCHES if b not in raws]
    if missing:
        raise CifarError(f"{source}: no {', '.join(f'{CIFAR10_FOLDER}/{b}' for b in missing)} "
                         f"in this tarball")
    return [_batch(f"{source}:{CIFAR10_FOLDER}/{b}", raws[b]) for b in CIFAR10_BATCHES]


def read_cifar10(directory: str | Path) -> tuple[tuple[np.ndarray, np.ndarray],
                                                  tuple[np.ndarray, np.ndarray]]:
    """``((x_train, y_train), (x_test, y_test))`` from the tarball or extracted batches
    in ``directory`` (see :func:`find_cifar10`).

    Images are uint8 rows of 3072 values in ``(H, W, C)`` order (a pixel's red,
    green and blue adjacent), labels int64 in 0..9.

    Raises
    ------
    FileNotFoundError
        When neither the tarball nor the extracted batches are there.
    CifarError
        On a corrupt tarball or a batch that is not a CIFAR-10 batch.
    """
    batches = _read_batches(find_cifar10(directory))
    xtr = to_hwc(np.concatenate([x for x, _ in batches[:-1]]))
    ytr = np.concatenate([y for _, y in batches[:-1]])
    return (xtr, ytr), (to_hwc(batches[-1][0]), batches[-1][1])
