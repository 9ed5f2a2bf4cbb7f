"""Data sets as quantized integer pixels.

Every set is returned as unsigned integers with ``input_bits`` bits per pixel,
which is exactly what the hardware receives; the float model sees them scaled
to [0, 1].

* ``digits`` (scikit-learn's 8x8 digits, 1797 images) ships inside this
  package, so nothing is downloaded.
* ``fashion-mnist`` is read from IDX files, by default those of the Debian
  package ``dataset-fashion-mnist`` (:data:`FASHION_MNIST_DIR`).
* ``mnist`` is read from IDX files in a directory (``data.dir``), by default
  the cache that :func:`download_mnist` fills once, checking the published
  MD5 checksums.

Both 28x28 sets give 60000 training images, of which the last 10000 are the
validation split, and 10000 test images.
"""

from __future__ import annotations

import os
import shutil
import urllib.request
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Callable

import numpy as np

from .config import DataConfig
from .idx import IdxError, find_idx, load_pair, md5

__all__ = ["Split", "Dataset", "quantize_pixels", "load_dataset", "IDX_FILES", "MNIST_MD5",
           "MNIST_URLS", "FASHION_MNIST_DIR", "INPUTS", "SHAPES", "cache_dir", "data_dir", "download_mnist",
           "verify_checksums"]

#: The four IDX files of the MNIST-format sets, without ``.gz``.
IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
             "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
#: Published MD5 checksums of the gzipped MNIST files.
MNIST_MD5 = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
#: Where ``download_mnist`` looks, in order.
MNIST_URLS = ("https://ossci-datasets.s3.amazonaws.com/mnist/",
              "http://yann.lecun.com/exdb/mnist/")
#: Where the Debian package ``dataset-fashion-mnist`` installs its IDX files.
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
#: Image shape ``(channels, height, width)`` of each data set.
SHAPES = {"digits": (1, 8, 8), "fashion-mnist": (1, 28, 28), "mnist": (1, 28, 28),
          "cifar10": (3, 32, 32), "svhn": (3, 32, 32)}
#: Pixels per image of each data set.
INPUTS = {name: c * h * w for name, (c, h, w) in SHAPES.items()}
#: Training images kept for validation (the last ones of the training files).
VALIDATION_IMAGES = 10000

#: Seed of the fixed permutation that splits the digits into train/val/test.
DIGITS_SPLIT_SEED = 12345


@dataclass
class Split:
    """Images as an ``(n, pixels)`` integer array and labels as ``(n,)``.

    A row is an image flattened in ``(H, W, C)`` order: a pixel's channels are adjacent."""
    x: np.ndarray
    y: np.ndarray

    def __len__(self) -> int:
        return len(self.y)


@dataclass
class Dataset:
    name: str
    input_bits: int
    classes: int
    train: Split
    val: Split
    test: Split

    @property
    def inputs(self) -> int:
        return self.train.x.shape[1]

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(channels, height, width)`` of an image."""
        return SHAPES[self.name]

    def scale(self, q: np.ndarray) -> np.ndarray:
        """Map quantized pixels to the float model's input range [0, 1]."""
        return q.astype(np.float32) / np.float32((1 << self.input_bits) - 1)


def quantize_pixels(v: np.ndarray, v_max: int, bits: int) -> np.ndarray:
    """Round pixel values in ``[0, v_max]`` to ``bits``-bit unsigned integers."""
    if not 1 <= bits <= 8:
        raise ValueError(f"Input bits must be an integer in 1..8, not {bits!r}")
    levels = (1 << bits) - 1
    q = (v.astype(np.int64) * levels * 2 + v_max) // (2 * v_max)
    return q.astype(np.uint8)


def _digits(cfg: DataConfig) -> Dataset:
    with resources.files("fewmul.nn.bundled").joinpath("digits.npz").open("rb") as f:
        raw = np.load(f)
        images, labels = raw["images"], raw["labels"].astype(np.int64)
    q = quantize_pixels(images, 16, cfg.input_bits)
    # A fixed shuffle (independent of the training seed) mixes the writers, whose
    # images come in blocks; then 1257 training, 180 validation, 360 test images.
    order = np.random.default_rng(DIGITS_SPLIT_SEED).permutation(len(labels))
    cut = [1257, 1257 + 180]
    xs, ys = np.split(q[order], cut), np.split(labels[order], cut)
    return Dataset("digits", cfg.input_bits, 10, *(Split(x, y) for x, y in zip(xs, ys)))


def cache_dir() -> Path:
    """``$FEWMUL_CACHE``, else ``$XDG_CACHE_HOME/fewmul``, else ``~/.cache/fewmul``."""
    if os.environ.get("FEWMUL_CACHE"):
        return Path(os.environ["FEWMUL_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "fewmul"


def data_dir(cfg: DataConfig) -> Path:
    """The directory the IDX files of ``cfg.set`` are read from."""
    if cfg.dir is not None:
        return Path(cfg.dir)
    if cfg.set == "fashion-mnist":
        return FASHION_MNIST_DIR
    if cfg.set == "mnist":
        return cache_dir() / "mnist"
    raise ValueError(f"Data set {cfg.set!r} is not read from IDX files")


_MISSING_HINT = {
    "fashion-mnist": "install the Debian package with 'make data' (apt-get install "
                     "dataset-fashion-mnist) or give data.dir",
    "mnist": "give the directory of the IDX files as data.dir in the spec or --data-dir, "
             "or fetch them once with 'fewmul data mnist --download'",
}


def _idx_set(cfg: DataConfig) -> Dataset:
    directory = data_dir(cfg)
    try:
        paths = [find_idx(directory, stem) for stem in IDX_FILES]
    except FileNotFoundError as exc:
        raise FileNotFoundError(f"{cfg.set}: {exc}; {_MISSING_HINT[cfg.set]}") from None
    (xtr, ytr), (xte, yte) = load_pair(*paths[:2]), load_pair(*paths[2:])
    if xtr.shape[1] != xte.shape[1]:
        raise IdxError(f"{paths[2]}: images of {xte.shape[1]} pixels, but {paths[0]} has "
                       f"{xtr.shape[1]}")
    if len(ytr) <= VALIDATION_IMAGES:
        n_val = len(ytr) // 6           # small sets (tests): keep the same 5:1 ratio
    else:
        n_val = VALIDATION_IMAGES
    for path, y in ((paths[1], ytr), (paths[3], yte)):
        if len(y) and y.max() >= 10:
            raise IdxError(f"{path}: label {int(y.max())} out of range 0..9")
    q = quantize_pixels
    cut = len(ytr) - n_val
    return Dataset(cfg.set, cfg.input_bits, 10,
                   Split(q(xtr[:cut], 255, cfg.input_bits), ytr[:cut]),
                   Split(q(xtr[cut:], 255, cfg.input_bits), ytr[cut:]),
                   Split(q(xte, 255, cfg.input_bits), yte))


def load_dataset(cfg: DataConfig) -> Dataset:
    """Load the data set named by ``cfg.set`` with ``cfg.input_bits`` bits per pixel.

    Raises
    ------
    FileNotFoundError
        When the IDX files are not there (the message says how to get them).
    fewmul.nn.idx.IdxError
        When a file is corrupt, truncated, or does not pair with its partner.
    """
    if cfg.set == "digits":
        return _digits(cfg)
    if cfg.set in ("fashion-mnist", "mnist"):
        return _idx_set(cfg)
    raise ValueError(f"Data set must be 'digits', 'fashion-mnist' or 'mnist', not {cfg.set!r}")


def verify_checksums(directory: Path, checksums: dict[str, str] = MNIST_MD5) -> list[str]:
    """Problems with the files of ``checksums`` in ``directory`` (empty when all match)."""
    problems = []
    for name, expected in checksums.items():
        path = Path(directory) / name
        if not path.is_file():
            problems.append(f"{path}: missing")
        elif (got := md5(path)) != expected:
            problems.append(f"{path}: MD5 {got}, expected {expected} (corrupt or a different file)")
    return problems


def download_mnist(directory: Path | None = None, *, urls: tuple[str, ...] = MNIST_URLS,
                   checksums: dict[str, str] = MNIST_MD5,
                   log: Callable[[str], None] = print) -> Path:
    """Fetch the MNIST IDX files once into ``directory`` (default: the cache) and verify them.

    Files already present with the right checksum are kept. A download is
    written to a temporary name and renamed only after its MD5 matches.

    Raises
    ------
    ValueError
        When no URL gives a file with the published checksum.
    """
    directory = Path(directory) if directory is not None else cache_dir() / "mnist"
    directory.mkdir(parents=True, exist_ok=True)
    for name, expected in checksums.items():
        path = directory / name
        if path.is_file() and md5(path) == expected:
            log(f"{path}: present, MD5 OK")
            continue
        errors = []
        for base in urls:
            tmp = path.with_name(name + ".part")
            try:
                with urllib.request.urlopen(base + name, timeout=60) as r, open(tmp, "wb") as f:
                    shutil.copyfileobj(r, f)
            except OSError as exc:
                errors.append(f"{base + name}: {getattr(exc, 'reason', None) or exc}")
                tmp.unlink(missing_ok=True)
                continue
            got = md5(tmp)
            if got != expected:
                errors.append(f"{base + name}: MD5 {got}, expected {expected}")
                tmp.unlink()
                continue
            os.replace(tmp, path)
            log(f"{path}: downloaded, MD5 OK")
            break
        else:
            raise ValueError(f"could not fetch {name} into {directory}: " + "; ".join(errors))
    return directory
