"""Data sets as quantized integer pixels.

Every set is returned as unsigned integers with ``input_bits`` bits per pixel,
which is exactly what the hardware receives; the float model sees them scaled
to [0, 1]. ``digits`` (scikit-learn's 8x8 digits, 1797 images) ships inside this
package, so nothing is downloaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

import numpy as np

from .config import DataConfig

__all__ = ["Split", "Dataset", "quantize_pixels", "load_dataset"]

#: Seed of the fixed permutation that splits the digits into train/val/test.
DIGITS_SPLIT_SEED = 12345


@dataclass
class Split:
    """Images as an ``(n, pixels)`` integer array and labels as ``(n,)``."""
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


def load_dataset(cfg: DataConfig) -> Dataset:
    """Load the data set named by ``cfg.set`` with ``cfg.input_bits`` bits per pixel."""
    if cfg.set == "digits":
        return _digits(cfg)
    raise ValueError(f"Data set {cfg.set!r} is not available yet; use 'digits'")
