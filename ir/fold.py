"""Folding a trained float model into the network IR: the one place where ``nn`` meets the IR.

* Binary weights become bits ``w`` (1 means +1); ternary weights stay -1/0/+1.
  A layer's input is ``k``-bit unsigned values (the pixels, or the levels of a ``k``-bit
  quantized hidden layer) or bits meaning ±1 (after a sign layer).
* Batch norm + sign fold into one integer threshold per neuron: ``y = (s >= T)``. Batch norm +
  a ``k``-bit quantizer fold into ``2^k - 1`` thresholds: ``y = sum_j (s >= T_j)``, the level.
  Where the batch-norm scale is negative the neuron's weights are flipped (negated), so the
  comparison is always ``>=``.
* The output layer's batch norm becomes a per-class power-of-two scale and an integer offset:
  ``score = (s << shift) + offset`` (shift-based batch norm); the label is the first index of
  the largest score.

The sums ``s`` are computed by popcounts, as :class:`fewmul.arith.DotProduct` defines them.
"""

from __future__ import annotations

import numpy as np

from fewmul.nn.config import TrainConfig
from fewmul.nn.model import Layer, Model
from fewmul.nn.quantize import quantize_weights

from .build import dense_layer, dense_net
from .graph import Graph

__all__ = ["fold", "SCORE_FRACTION_BITS", "MAX_SCORE_SHIFT"]

#: Fraction bits kept of the output layer's batch-norm offset.
SCORE_FRACTION_BITS = 4
#: Largest relative power-of-two scale between two output classes.
MAX_SCORE_SHIFT = 6


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


def fold(model: Model, input_bits: int, tcfg: TrainConfig) -> Graph:
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
            out.append(dense_layer(w, kind, bits, thresholds=t, weight_kind=wkind))
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
            out.append(dense_layer(w, kind, bits, shifts=shifts, offsets=offsets,
                                   weight_kind=wkind))
        if layer.cfg.act == "quant":
            kind, bits = "unsigned", layer.cfg.act_bits
            in_scale = 1 / ((1 << bits) - 1)
        else:
            kind, bits, in_scale = "bipolar", 1, 1.0
    return dense_net(out)
