"""Folding a trained float model into the network IR: the one place where ``nn`` meets the IR.

* Binary weights become bits ``w`` (1 means +1); ternary weights stay -1/0/+1.
  A layer's input is ``k``-bit unsigned values (the pixels, or the levels of a ``k``-bit
  quantized hidden layer) or bits meaning ±1 (after a sign layer).
* Batch norm + sign fold into one integer threshold per neuron: ``y = (s >= T)``. Batch norm +
  a ``k``-bit quantizer fold into ``2^k - 1`` thresholds: ``y = sum_j (s >= T_j)``, the level.
  Where the batch-norm scale is negative the neuron's weights are flipped (negated), so the
  comparison is always ``>=``.
* A convolution is a :class:`~.ops.SlidingWindow` feeding a :class:`~.ops.MatVec` whose
  weight columns are the window's ``(kh, kw, c)`` positions; its thresholds are per channel.
  A max-pool pools the activations (an OR of bits, the largest level). Where the float model
  pools the sums before batch norm (``pools: sums``) it takes the minimum on the channels whose
  scale is negative, which gives the same bits.
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

from .build import weighted_ops
from .graph import Graph
from .ops import Argmax, MaxPool, MultiThreshold, SlidingWindow
from .types import TensorType

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


def _thresholds(layer: Layer, mag: np.ndarray, b: np.ndarray, bound: int) -> np.ndarray:
    """Integer thresholds ``T`` with ``act(a s + b) = sum_j (s >= T_j)`` (``a`` flipped to
    ``mag = |a|``)."""
    cuts = _cuts(layer.cfg.act, layer.cfg.act_bits)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.ceil((cuts[None, :] - b[:, None]) / mag[:, None])
    t = np.where(mag[:, None] > 0, t, np.where(b[:, None] >= cuts[None, :], -np.inf, np.inf))
    t = np.clip(t, -bound, bound + 1).astype(np.int64)
    return t[:, 0] if layer.cfg.act == "sign" else t


def _scores(mag: np.ndarray, b: np.ndarray, bound: int) -> tuple[np.ndarray, np.ndarray]:
    """Power-of-two scales (as shifts) and offsets of the output layer's scores."""
    pos = mag[mag > 0]
    base = pos.min() if len(pos) else 1.0
    with np.errstate(divide="ignore"):
        rel = np.where(mag > 0, np.round(np.log2(mag / base)), 0)
    shifts = np.clip(rel, 0, MAX_SCORE_SHIFT).astype(np.int64) + SCORE_FRACTION_BITS
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(mag > 0, b / mag, 0)
    t = np.clip(t, -2 * bound, 2 * bound)
    return shifts, np.round(t * np.exp2(shifts)).astype(np.int64)


def fold(model: Model, input_bits: int, tcfg: TrainConfig) -> Graph:
    """Fold a trained model into integers.

    Supports binary and ternary weights, ``sign`` or ``quant`` (``k``-bit) hidden activations,
    convolutions (a :class:`~.ops.SlidingWindow` feeding the :class:`~.ops.MatVec`), max-pools
    of hidden activations and a linear (``none``) fully-connected output layer.
    """
    ops: list = []
    in_scale = 1 / ((1 << input_bits) - 1)
    c, h, w = model.layers[0].in_shape
    in_type = TensorType((c, h, w), "unsigned", input_bits)
    index = 0                           # the IR layer (max-pools join the layer before them)
    weighted = [i for i, layer in enumerate(model.layers) if layer.cfg.kind != "maxpool"]
    for i, layer in enumerate(model.layers):
        cfg = layer.cfg
        if cfg.kind == "maxpool":
            if not ops or not isinstance(ops[-1], (MultiThreshold, MaxPool)):
                raise ValueError(f"layers[{i}]: a maxpool must follow a hidden layer")
            # a pool of the sums before batch norm takes the least activation where the
            # scale is negative (`flip`, of the conv before it)
            minimum = flip if cfg.pools == "sums" else None
            ops.append(MaxPool(f"layer{index - 1}.pool", in_type, cfg.size, minimum))
            in_type = ops[-1].out_type
            continue
        last = i == weighted[-1]
        if cfg.weights not in ("binary", "ternary"):
            raise ValueError(f"layers[{i}]: integer folding supports binary and ternary weights, "
                             f"not {cfg.weights!r}")
        allowed = ("none",) if last else ("sign", "quant")
        if cfg.act not in allowed:
            raise ValueError(f"layers[{i}]: integer folding supports sign or quant hidden "
                             f"activations and a linear output layer, not act {cfg.act!r}")
        if last and (cfg.kind != "dense" or i != len(model.layers) - 1):
            raise ValueError(f"layers[{i}]: the output layer must be the last, fully connected")
        prefix = f"layer{index}"
        if cfg.kind == "conv":
            pad = (cfg.kernel - 1) // 2 if cfg.padding == "same" else 0
            ops.append(SlidingWindow(f"{prefix}.window", in_type, cfg.kernel, cfg.stride, pad))
            in_type = ops[-1].out_type
        else:
            in_type = TensorType.vector(in_type.size, in_type.kind, in_type.bits)
        a, b = _affine(layer, in_scale, tcfg)
        flip = a < 0
        signed_w = _signed_weights(layer)
        signed_w[flip] *= -1
        ternary = cfg.weights == "ternary"
        weights = signed_w if ternary else (signed_w > 0).astype(np.uint8)
        mag = np.abs(a)
        bound = layer.w.shape[0] * ((1 << in_type.bits) - 1)       # |s| <= bound
        if last:
            shifts, offsets = _scores(mag, b, bound)
            ops += weighted_ops(prefix, in_type, weights, cfg.weights, shifts=shifts,
                                offsets=offsets)
        else:
            ops += weighted_ops(prefix, in_type, weights, cfg.weights,
                                thresholds=_thresholds(layer, mag, b, bound))
        in_type = ops[-1].out_type
        if cfg.act == "quant":
            in_scale = 1 / ((1 << cfg.act_bits) - 1)
        else:
            in_scale = 1.0
        index += 1
    ops.append(Argmax("argmax", ops[-1].out_type))
    return Graph(ops)
