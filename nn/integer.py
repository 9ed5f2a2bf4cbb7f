"""The integer golden model: exactly what the gateware computes.

A trained :class:`~fewmul.nn.model.Model` is *folded* into integer layers:

* Weights become bits ``w`` (1 means +1). A hidden layer's input is either the
  ``k``-bit unsigned pixels ``q`` (first layer) or bits ``a`` meaning ±1.
* Sums: for ±1 inputs ``s = 2 popcount(XNOR(a, w)) - N``; for ``k``-bit
  inputs, bit-plane by bit-plane, ``s = sum_i 2^i (2 popcount(q_i AND w) -
  popcount(q_i))``. Both equal the dot product with ±1 weights.
* Batch norm + sign fold into one integer threshold per neuron: ``y = (s >=
  T)``. Where the batch-norm scale is negative the neuron's weights are
  flipped, so the comparison is always ``>=``.
* The output layer's batch norm becomes a per-class power-of-two scale and an
  integer offset: ``score = (s << shift) + offset`` (shift-based batch norm);
  the label is the first index of the largest score.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .config import TrainConfig
from .model import Layer, Model

__all__ = ["IntegerLayer", "IntegerNet", "fold", "SCORE_FRACTION_BITS", "MAX_SCORE_SHIFT"]

#: Fraction bits kept of the output layer's batch-norm offset.
SCORE_FRACTION_BITS = 4
#: Largest relative power-of-two scale between two output classes.
MAX_SCORE_SHIFT = 6


@dataclass
class IntegerLayer:
    """One folded layer. ``weights`` is ``(units, inputs)`` of 0/1."""
    weights: np.ndarray
    input_kind: str                          # "unsigned" (k-bit pixels) or "bipolar" (±1 bits)
    input_bits: int
    thresholds: np.ndarray | None = None     # hidden layers: y = s >= T
    shifts: np.ndarray | None = None         # output layer: score = (s << shift) + offset
    offsets: np.ndarray | None = None

    @property
    def units(self) -> int:
        return self.weights.shape[0]

    @property
    def inputs(self) -> int:
        return self.weights.shape[1]

    @property
    def is_output(self) -> bool:
        return self.thresholds is None

    def sums(self, x: np.ndarray) -> np.ndarray:
        """Integer pre-activations ``s`` of a batch ``x`` (``(n, inputs)``) by popcounts."""
        w = self.weights.astype(np.int64)
        x = x.astype(np.int64)
        if self.input_kind == "bipolar":
            matches = x @ w.T + (1 - x) @ (1 - w).T          # popcount(XNOR(a, w))
            return 2 * matches - self.inputs
        s = np.zeros((len(x), self.units), np.int64)
        for i in range(self.input_bits):
            plane = (x >> i) & 1
            s += (2 * (plane @ w.T) - plane.sum(1, keepdims=True)) << i
        return s

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Layer output: bits (hidden layers) or integer scores (output layer)."""
        s = self.sums(x)
        if self.is_output:
            return (s << self.shifts) + self.offsets
        return (s >= self.thresholds).astype(np.uint8)


@dataclass
class IntegerNet:
    layers: list[IntegerLayer]

    def forward(self, q: np.ndarray) -> list[np.ndarray]:
        """Every layer's output for a batch of quantized inputs ``q``."""
        outs = []
        for layer in self.layers:
            q = layer.forward(q)
            outs.append(q)
        return outs

    def predict(self, q: np.ndarray) -> np.ndarray:
        return self.forward(q)[-1].argmax(1)

    def save(self, path) -> None:
        """Write the folded network to an ``.npz`` file (see :meth:`load`)."""
        arrays = {}
        for i, layer in enumerate(self.layers):
            arrays[f"layer{i}.weights"] = layer.weights
            arrays[f"layer{i}.input"] = np.array([layer.input_kind == "bipolar", layer.input_bits])
            for name in ("thresholds", "shifts", "offsets"):
                if getattr(layer, name) is not None:
                    arrays[f"layer{i}.{name}"] = getattr(layer, name)
        np.savez_compressed(path, **arrays)

    @classmethod
    def load(cls, path) -> "IntegerNet":
        with np.load(path) as f:
            layers, i = [], 0
            while f"layer{i}.weights" in f:
                bipolar, bits = f[f"layer{i}.input"]
                extra = {name: f[f"layer{i}.{name}"] for name in ("thresholds", "shifts", "offsets")
                         if f"layer{i}.{name}" in f}
                layers.append(IntegerLayer(f[f"layer{i}.weights"], "bipolar" if bipolar else "unsigned",
                                           int(bits), **extra))
                i += 1
        if not layers:
            raise ValueError(f"{path}: no folded layers found")
        return cls(layers)


def _affine(layer: Layer, in_scale: float, tcfg: TrainConfig) -> tuple[np.ndarray, np.ndarray]:
    """``(a, b)`` with the layer's pre-activation ``y = a s + b`` in terms of the integer sum."""
    c = np.float64(layer.w0) * in_scale
    if layer.cfg.bn:
        inv = 1 / np.sqrt(layer.var.astype(np.float64) + tcfg.bn_eps)
        g = layer.gamma.astype(np.float64) * inv
        return g * c, layer.beta - g * layer.mean
    return np.full(layer.cfg.units, c), layer.beta.astype(np.float64)


def fold(model: Model, input_bits: int, tcfg: TrainConfig) -> IntegerNet:
    """Fold a trained binary-weight model with sign hidden activations into integers."""
    out = []
    in_scale = 1 / ((1 << input_bits) - 1)
    kind, bits = "unsigned", input_bits
    for i, layer in enumerate(model.layers):
        last = i == len(model.layers) - 1
        if layer.cfg.weights != "binary":
            raise ValueError(f"layers[{i}]: integer folding supports binary weights, "
                             f"not {layer.cfg.weights!r}")
        if layer.cfg.act != ("none" if last else "sign"):
            raise ValueError(f"layers[{i}]: integer folding supports sign hidden activations and "
                             f"a linear output layer, not act {layer.cfg.act!r}")
        a, b = _affine(layer, in_scale, tcfg)
        flip = a < 0
        w = (layer.w >= 0).T.astype(np.uint8)             # sign(0) = +1
        w[flip] ^= 1
        mag = np.abs(a)
        bound = layer.w.shape[0] * ((1 << bits) - 1)       # |s| <= bound
        if not last:
            with np.errstate(divide="ignore", invalid="ignore"):
                t = np.ceil(-b / mag)
            t = np.where(mag > 0, t, np.where(b >= 0, -np.inf, np.inf))
            t = np.clip(t, -bound, bound + 1).astype(np.int64)
            out.append(IntegerLayer(w, kind, bits, thresholds=t))
        else:
            pos = mag[mag > 0]
            base = pos.min() if len(pos) else 1.0
            with np.errstate(divide="ignore"):
                rel = np.where(mag > 0, np.round(np.log2(mag / base)), 0)
            shifts = np.clip(rel, 0, MAX_SCORE_SHIFT).astype(np.int64) + SCORE_FRACTION_BITS
            with np.errstate(divide="ignore", invalid="ignore"):
                t = np.where(mag > 0, b / mag, 0)
            t = np.clip(t, -2 * bound, 2 * bound)
            offsets = np.round(t * np.exp2(shifts)).astype(np.int64)
            out.append(IntegerLayer(w, kind, bits, shifts=shifts, offsets=offsets))
        kind, bits, in_scale = "bipolar", 1, 1.0
    return IntegerNet(out)
