"""Data sets as quantized integer pixels.

Every set is returned as unsigned integers with ``input_bits`` bits per pixel,
which is exactly what the hardware receives; the float model sees them scaled
to [0, 1].

* ``digits`` (scikit-learn's 8x8 digits, 1797 images) ships inside this
  package, so nothing is downloaded.
* ``fashion-mnist`` is read from IDX files, by default those of the Debian
  package ``dataset-fashion-mnist`` (:data:`FASHION_MNIST_DIR`).
* ``mnist`` is read from IDX files in a directory (``data.dir``), by default
  the cache (:func:`cache_dir`) that :func:`download` fills once.
* ``cifar10`` is read from the "python version" tarball (or its extracted
  batches, :mod:`fewmul.nn.cifar`) in ``data.dir``, by default the cache.
* ``svhn`` is read from the format-2 MATLAB files ``train_32x32.mat`` and
  ``test_32x32.mat`` (:mod:`fewmul.nn.svhn`) in ``data.dir``, by default the cache.

:func:`download` fetches the files of mnist, cifar10 or svhn once into the
cache (``fewmul data SET --download``) and accepts them only when their
published MD5 checksums match.

The validation images are the last ones of the published training images
(:data:`VALIDATION`): the last 10000 of MNIST's 60000, the last 5000 of
CIFAR-10's 50000 and the last 6000 of SVHN's 73257 (its ``extra`` images are
not used). The splits:

=============  =====  ==========  =====  =========
set            train  validation  test   image
=============  =====  ==========  =====  =========
fashion-mnist  50000  10000       10000  28x28
mnist          50000  10000       10000  28x28
cifar10        45000  5000        10000  32x32 RGB
svhn           67257  6000        26032  32x32 RGB
=============  =====  ==========  =====  =========

Colour images are flattened in ``(H, W, C)`` order, a pixel's red, green and
blue values adjacent, whatever the order of the files.
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

from .cifar import CIFAR10_MD5, CIFAR10_URLS, read_cifar10
from .config import DataConfig
from .idx import IdxError, find_idx, load_pair, md5
from .svhn import SVHN_MD5, SVHN_URLS, read_svhn

__all__ = ["Split", "Dataset", "Download", "quantize_pixels", "load_dataset", "IDX_FILES",
           "MNIST_MD5", "MNIST_URLS", "DOWNLOADS", "FASHION_MNIST_DIR", "SHAPES",
           "VALIDATION", "cache_dir", "data_dir", "download", "download_mnist", "verify_checksums"]

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
#: Training images kept for validation (the last ones of the training files) of each set
#: read from files. A set with no more training images than that (a test's small files)
#: keeps a sixth of them.
VALIDATION = {"fashion-mnist": 10000, "mnist": 10000, "cifar10": 5000, "svhn": 6000}

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


@dataclass(frozen=True)
class Download:
    """Files a data set is fetched as: their published MD5 checksums and the base URLs
    (each file is ``base + name``), tried in order."""
    md5: dict[str, str]
    urls: tuple[str, ...]


#: The data sets :func:`download` fetches.
DOWNLOADS = {"mnist": Download(MNIST_MD5, MNIST_URLS),
             "cifar10": Download(CIFAR10_MD5, CIFAR10_URLS),
             "svhn": Download(SVHN_MD5, SVHN_URLS)}


def quantize_pixels(v: np.ndarray, v_max: int, bits: int) -> np.ndarray:
    """Round pixel values in ``[0, v_max]`` to ``bits``-bit unsigned integers."""
    if not 1 <= bits <= 8:
        raise ValueError(f"Input bits must be an integer in 1..8, not {bits!r}")
    levels = (1 << bits) - 1

    def rounded(a):
        return ((a.astype(np.int64) * levels * 2 + v_max) // (2 * v_max)).astype(np.uint8)
    if v.dtype == np.uint8:             # a table of the 256 values: no int64 copy of the images
        return rounded(np.arange(256))[v]
    return rounded(v)


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
    """The directory the files of ``cfg.set`` are read from: ``cfg.dir`` when given, else
    the Debian package's for fashion-mnist and ``cache_dir() / SET`` for the others."""
    if cfg.dir is not None:
        return Path(cfg.dir)
    if cfg.set == "fashion-mnist":
        return FASHION_MNIST_DIR
    if cfg.set in DOWNLOADS:
        return cache_dir() / cfg.set
    raise ValueError(f"Data set {cfg.set!r} is not read from files")


def _missing_hint(name: str) -> str:
    if name == "fashion-mnist":
        return ("install the Debian package with 'make data' (apt-get install "
                "dataset-fashion-mnist) or give data.dir")
    return (f"give the directory of its files as data.dir in the spec or --data-dir, "
            f"or fetch them once with 'fewmul data {name} --download'")


def _from_files(cfg: DataConfig, read: Callable[[Path], tuple]) -> Dataset:
    """The set of ``read(directory) -> ((x_train, y_train), (x_test, y_test))`` (uint8
    images, labels 0..9), quantized, with the last training images for validation."""
    try:
        (xtr, ytr), (xte, yte) = read(data_dir(cfg))
    except FileNotFoundError as exc:
        raise FileNotFoundError(f"{cfg.set}: {exc}; {_missing_hint(cfg.set)}") from None
    full = VALIDATION[cfg.set]
    n_val = full if len(ytr) > full else len(ytr) // 6
    cut = len(ytr) - n_val

    def q(x):
        return quantize_pixels(x, 255, cfg.input_bits)
    return Dataset(cfg.set, cfg.input_bits, 10, Split(q(xtr[:cut]), ytr[:cut]),
                   Split(q(xtr[cut:]), ytr[cut:]), Split(q(xte), yte))


def _read_idx_set(directory: Path) -> tuple:
    paths = [find_idx(directory, stem) for stem in IDX_FILES]
    (xtr, ytr), (xte, yte) = load_pair(*paths[:2]), load_pair(*paths[2:])
    if xtr.shape[1] != xte.shape[1]:
        raise IdxError(f"{paths[2]}: images of {xte.shape[1]} pixels, but {paths[0]} has "
                       f"{xtr.shape[1]}")
    for path, y in ((paths[1], ytr), (paths[3], yte)):
        if len(y) and y.max() >= 10:
            raise IdxError(f"{path}: label {int(y.max())} out of range 0..9")
    return (xtr, ytr), (xte, yte)


_READERS = {"fashion-mnist": _read_idx_set, "mnist": _read_idx_set, "cifar10": read_cifar10,
            "svhn": read_svhn}


def load_dataset(cfg: DataConfig) -> Dataset:
    """Load the data set named by ``cfg.set`` with ``cfg.input_bits`` bits per pixel.

    Raises
    ------
    FileNotFoundError
        When the files are not there (the message says how to get them).
    fewmul.nn.idx.IdxError, fewmul.nn.cifar.CifarError, fewmul.nn.matfile.MatError
        When a file is corrupt, truncated, or does not pair with its partner
        (all are ``ValueError``).
    """
    if cfg.set == "digits":
        return _digits(cfg)
    if cfg.set in _READERS:
        return _from_files(cfg, _READERS[cfg.set])
    raise ValueError(f"Data set must be one of {', '.join(map(repr, ['digits', *_READERS]))}, "
                     f"not {cfg.set!r}")


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


def _fetch(url: str, path: Path, expected: str) -> str | None:
    """Download ``url`` to ``path`` if its MD5 is ``expected``; else the problem.

    The data goes to ``path.part`` first, which is renamed only when the checksum
    matches and removed in every other case (also on an interrupt)."""
    tmp = path.with_name(path.name + ".part")
    try:
        try:
            with urllib.request.urlopen(url, timeout=60) as r, open(tmp, "wb") as f:
                shutil.copyfileobj(r, f, 1 << 20)
        except OSError as exc:
            return f"{url}: {getattr(exc, 'reason', None) or exc}"
        got = md5(tmp)
        if got != expected:
            return f"{url}: MD5 {got}, expected {expected}"
        os.replace(tmp, path)
        return None
    finally:
        tmp.unlink(missing_ok=True)


def download(name: str, directory: Path | None = None, *, urls: tuple[str, ...] | None = None,
             checksums: dict[str, str] | None = None,
             log: Callable[[str], None] = print) -> Path:
    """Fetch the files of data set ``name`` (see :data:`DOWNLOADS`) once into
    ``directory`` (default: ``cache_dir() / name``) and verify them.

    Files already present with the right checksum are kept. A download is
    written to a temporary name and renamed only after its MD5 matches.
    ``urls`` and ``checksums`` replace the published ones (mirrors, tests).

    Raises
    ------
    ValueError
        When ``name`` is not downloadable, or no URL gives a file with the
        expected checksum (the message names every URL tried and why it failed).
    """
    if name not in DOWNLOADS:
        raise ValueError(f"Only {', '.join(DOWNLOADS)} are downloaded, not {name!r}")
    urls = DOWNLOADS[name].urls if urls is None else tuple(urls)
    checksums = DOWNLOADS[name].md5 if checksums is None else checksums
    directory = Path(directory) if directory is not None else cache_dir() / name
    directory.mkdir(parents=True, exist_ok=True)
    for file, expected in checksums.items():
        path = directory / file
        if path.is_file() and md5(path) == expected:
            log(f"{path}: present, MD5 OK")
            continue
        errors = []
        for base in urls:
            log(f"{path}: fetching {base + file}")
            problem = _fetch(base + file, path, expected)
            if problem is None:
                log(f"{path}: downloaded, MD5 OK")
                break
            errors.append(problem)
        else:
            raise ValueError(f"could not fetch {file} into {directory}: " + "; ".join(errors))
    return directory


def download_mnist(directory: Path | None = None, *, urls: tuple[str, ...] = MNIST_URLS,
                   checksums: dict[str, str] = MNIST_MD5,
                   log: Callable[[str], None] = print) -> Path:
    """:func:`download` of ``mnist``."""
    return download("mnist", directory, urls=urls, checksums=checksums, log=log)
