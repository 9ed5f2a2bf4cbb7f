"""The integer golden model: exactly what the gateware computes.

A trained :class:`~fewmul.nn.model.Model` is *folded* into integer layers:

* Binary weights become bits ``w`` (1 means +1); ternary weights stay -1/0/+1
  (the hardware keeps a positive and a negative mask). A layer's input is
  ``k``-bit unsigned values ``q`` (the pixels, or the levels of a ``k``-bit
  quantized hidden layer) or bits ``a`` meaning ±1 (after a sign layer).
* Sums: for ±1 inputs ``s = 2 popcount(XNOR(a, w)) - N``; for ``k``-bit
  inputs, bit-plane by bit-plane, ``s = sum_i 2^i (2 popcount(q_i AND w) -
  popcount(q_i))``. With ternary masks ``P``, ``Q``: ``s = sum_i 2^i
  (popcount(q_i AND P) - popcount(q_i AND Q))``. All equal the dot product.
* Batch norm + sign fold into one integer threshold per neuron: ``y = (s >=
  T)``. Batch norm + a ``k``-bit quantizer fold into ``2^k - 1`` thresholds:
  ``y = sum_j (s >= T_j)``, the level. Where the batch-norm scale is negative
  the neuron's weights are flipped (negated), so the comparison is always
  ``>=``.
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
from .quantize import quantize_weights

__all__ = ["IntegerLayer", "IntegerNet", "fold", "SCORE_FRACTION_BITS", "MAX_SCORE_SHIFT"]

#: Fraction bits kept of the output layer's batch-norm offset.
SCORE_FRACTION_BITS = 4
#: Largest relative power-of-two scale between two output classes.
MAX_SCORE_SHIFT = 6


def _dot(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``x @ w.T`` of 0/1 arrays, exactly: the counts are far below 2**53, so the product runs
    in float64 (BLAS) and converts back without rounding."""
    return (x.astype(np.float64) @ w.T.astype(np.float64)).astype(np.int64)


@dataclass
class IntegerLayer:
    """One folded layer. ``weights`` is ``(units, inputs)``: 0/1 bits if binary, -1/0/+1 if
    ternary."""
    weights: np.ndarray
    input_kind: str                          # "unsigned" (k-bit values) or "bipolar" (±1 bits)
    input_bits: int
    thresholds: np.ndarray | None = None     # hidden: (units,) y = s >= T; (units, 2^k-1) levels
    shifts: np.ndarray | None = None         # output layer: score = (s << shift) + offset
    offsets: np.ndarray | None = None
    weight_kind: str = "binary"              # "binary" or "ternary"

    @property
    def output_bits(self) -> int:
        """Bits per output of a hidden layer: 1 (sign) or ``k`` (``2^k - 1`` thresholds)."""
        t = np.asarray(self.thresholds)
        return 1 if t.ndim == 1 else t.shape[1].bit_length()

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
        if self.weight_kind == "ternary":
            pos, neg = (w == 1).astype(np.int64), (w == -1).astype(np.int64)
            if self.input_kind == "bipolar":              # agree - disagree
                agree = _dot(x, pos) + _dot(1 - x, neg)
                return 2 * agree - np.abs(w).sum(1)
            s = np.zeros((len(x), self.units), np.int64)
            for i in range(self.input_bits):
                plane = (x >> i) & 1
                s += (_dot(plane, pos) - _dot(plane, neg)) << i
            return s
        if self.input_kind == "bipolar":
            matches = _dot(x, w) + _dot(1 - x, 1 - w)     # popcount(XNOR(a, w))
            return 2 * matches - self.inputs
        s = np.zeros((len(x), self.units), np.int64)
        for i in range(self.input_bits):
            plane = (x >> i) & 1
            s += (2 * _dot(plane, w) - plane.sum(1, keepdims=True)) << i
        return s

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Layer output: bits (hidden layers) or integer scores (output layer)."""
        s = self.sums(x)
        if self.is_output:
            return (s << self.shifts) + self.offsets
        t = np.asarray(self.thresholds)
        if t.ndim == 2:
            return (s[:, :, None] >= t[None]).sum(2).astype(np.uint8)
        return (s >= t).astype(np.uint8)


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
            if layer.weight_kind != "binary":    # absent (binary) in files of older versions
                arrays[f"layer{i}.weight_kind"] = np.array(layer.weight_kind)
        np.savez_compressed(path, **arrays)

    @classmethod
    def load(cls, path) -> "IntegerNet":
        with np.load(path) as f:
            layers, i = [], 0
            while f"layer{i}.weights" in f:
                bipolar, bits = f[f"layer{i}.input"]
                extra = {name: f[f"layer{i}.{name}"] for name in ("thresholds", "shifts", "offsets")
                         if f"layer{i}.{name}" in f}
                if f"layer{i}.weight_kind" in f:
                    extra["weight_kind"] = str(f[f"layer{i}.weight_kind"])
                layers.append(IntegerLayer(f[f"layer{i}.weights"], "bipolar" if bipolar else "unsigned",
                                           int(bits), **extra))
                i += 1
        if not layers:
            raise ValueError(f"{path}: no folded layers found")
        return cls(layers)


def _affine(layer: Layer, in_scale: float, tcfg: TrainConfig) -> tuple[np.ndarray, np.ndarray]:
    """``(a, b)`` with the layer's pre-activation ``y = a s + b`` in terms of the integer sum."""
    c = np.float64(layer.w0) * in_scale
    g, b = layer.bn_affine(tcfg)
    return g * c, b


def _signed_weights(layer: Layer) -> np.ndarray:
    """Deployed weights of a layer as -1/0/+1, ``(units, inputs)``."""
    wq = quantize_weights(layer.w, layer.w0, layer.cfg.weights)
    return np.sign(wq).T.astype(np.int8) if layer.cfg.weights == "ternary" else \
        np.where(layer.w >= 0, 1, -1).T.astype(np.int8)          # sign(0) = +1


def _cuts(act: str, bits: int) -> np.ndarray:
    """Pre-activation values at which the output level steps up.

    ``sign``: one cut at 0. ``quant`` (``round(clip(y, 0, 1) * L) / L``, ``L = 2^k - 1``):
    level ``j`` is reached at ``y = (j - 1/2) / L``.
    """
    if act == "sign":
        return np.zeros(1)
    levels = (1 << bits) - 1
    return (np.arange(1, levels + 1) - 0.5) / levels


def fold(model: Model, input_bits: int, tcfg: TrainConfig) -> IntegerNet:
    """Fold a trained model into integers.

    Supports binary and ternary weights, ``sign`` or ``quant`` (``k``-bit) hidden activations
    and a linear (``none``) output layer.
    """
    out = []
    in_scale = 1 / ((1 << input_bits) - 1)
    kind, bits = "unsigned", input_bits
    for i, layer in enumerate(model.layers):
        last = i == len(model.layers) - 1
        if layer.cfg.weights not in ("binary", "ternary"):
            raise ValueError(f"layers[{i}]: integer folding supports binary and ternary weights, "
                             f"not {layer.cfg.weights!r}")
        allowed = ("none",) if last else ("sign", "quant")
        if layer.cfg.act not in allowed:
            raise ValueError(f"layers[{i}]: integer folding supports sign or quant hidden "
                             f"activations and a linear output layer, not act {layer.cfg.act!r}")
        a, b = _affine(layer, in_scale, tcfg)
        flip = a < 0
        signed_w = _signed_weights(layer)
        signed_w[flip] *= -1
        ternary = layer.cfg.weights == "ternary"
        w = signed_w if ternary else (signed_w > 0).astype(np.uint8)
        wkind = layer.cfg.weights
        mag = np.abs(a)
        bound = layer.w.shape[0] * ((1 << bits) - 1)       # |s| <= bound
        if not last:
            cuts = _cuts(layer.cfg.act, layer.cfg.act_bits)
            with np.errstate(divide="ignore", invalid="ignore"):
                t = np.ceil((cuts[None, :] - b[:, None]) / mag[:, None])
            t = np.where(mag[:, None] > 0, t,
                         np.where(b[:, None] >= cuts[None, :], -np.inf, np.inf))
            t = np.clip(t, -bound, bound + 1).astype(np.int64)
            if layer.cfg.act == "sign":
                t = t[:, 0]
            out.append(IntegerLayer(w, kind, bits, thresholds=t, weight_kind=wkind))
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
            out.append(IntegerLayer(w, kind, bits, shifts=shifts, offsets=offsets,
                                    weight_kind=wkind))
        if layer.cfg.act == "quant":
            kind, bits = "unsigned", layer.cfg.act_bits
            in_scale = 1 / ((1 << bits) - 1)
        else:
            kind, bits, in_scale = "bipolar", 1, 1.0
    return IntegerNet(out)
