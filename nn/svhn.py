"""Reading SVHN (Street View House Numbers), format 2: cropped 32x32 digits.

``train_32x32.mat`` (73257 images) and ``test_32x32.mat`` (26032 images) are
MATLAB v5 files (read by :mod:`fewmul.nn.matfile`) with two variables: ``X``, a
uint8 array ``(32, 32, 3, n)`` -- row, column, channel (RGB), image -- and ``y``,
``(n, 1)`` labels 1..10 where 10 stands for the digit 0. The ``extra`` file is
not used. Every problem raises :class:`~fewmul.nn.matfile.MatError` naming the
file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .matfile import MatError, read_mat

__all__ = ["SVHN_FILES", "SVHN_MD5", "SVHN_URLS", "read_svhn", "read_svhn_file"]

#: The training and test files.
SVHN_FILES = ("train_32x32.mat", "test_32x32.mat")
#: Their published MD5 checksums.
SVHN_MD5 = {"train_32x32.mat": "e26dedcc434d2e4c54c9b2d4a06d8373",
            "test_32x32.mat": "eb5a983be6a315427106f1b164d9cef3"}
#: Where the files are fetched from (base URLs, tried in order).
SVHN_URLS = ("http://ufldl.stanford.edu/housenumbers/",)


def read_svhn_file(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Images ``(n, 3072)`` uint8 flattened in ``(H, W, C)`` order and labels ``(n,)``
    int64 in 0..9 (the file's 10 read as 0) of one SVHN ``.mat`` file."""
    path = Path(path)
    v = read_mat(path, ("X", "y"))
    x, y = v["X"], v["y"]
    if x.dtype != np.uint8 or x.ndim != 4 or x.shape[:3] != (32, 32, 3):
        raise MatError(f"{path}: X: expected uint8 (32, 32, 3, n), got {x.dtype} {x.shape}")
    n = x.shape[3]
    if y.size != n or (y.ndim == 2 and 1 not in y.shape) or y.ndim > 2:
        raise MatError(f"{path}: y: expected ({n}, 1) labels for the {n} images of X, "
                       f"got shape {y.shape}")
    y = y.reshape(-1)
    labels = y.astype(np.int64)
    bad = (labels != y) | (labels < 1) | (labels > 10)
    if bad.any():
        first = int(np.argmax(bad))
        raise MatError(f"{path}: y: label {y[first].item()!r} (image {first}) out of range 1..10")
    # (row, column, channel, image) -> (image, row, column, channel)
    images = np.ascontiguousarray(x.transpose(3, 0, 1, 2)).reshape(n, -1)
    return images, labels % 10


def read_svhn(directory: str | Path) -> tuple[tuple[np.ndarray, np.ndarray],
                                               tuple[np.ndarray, np.ndarray]]:
    """``((x_train, y_train), (x_test, y_test))`` from the two files in ``directory``.

    Raises
    ------
    FileNotFoundError
        When a file is not there.
    MatError
        When a file is not a readable MAT v5 file or does not hold SVHN images.
    """
    directory = Path(directory)
    paths = [directory / name for name in SVHN_FILES]
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"{directory}: no {' and no '.join(missing)} in this directory")
    train, test = (read_svhn_file(p) for p in paths)
    return train, test
