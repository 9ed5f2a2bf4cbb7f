"""Arithmetic operation counts of one training step and of one inference.

The few-multiplications slides estimate, for the MNIST net 784-1024-1024-1024-10
and a batch of N = 200, 1.7480e9 multiplications per float training step and
1.8492e6 with TernaryConnect + quantized back-propagation (1.7535e9 and
7.4245e6 when batch norm is counted). They do not state the rule; the rule
below reproduces all four numbers exactly.

Weights and passes
    A layer with ``n`` inputs and ``m`` units has ``(n + 1) m`` weights, the
    bias being a weight on a constant input 1. A training step makes three
    passes over them for each of the N samples: the forward pass ``x W``,
    the error back-propagation ``W^T delta`` and the weight gradient
    ``delta x^T``; each pass multiplies every weight once.
    Binary or ternary weights turn the ``n m`` products of the forward pass and
    of the back-propagation into sign changes (additions); quantized
    back-propagation turns those of the gradient into shifts. The bias column is
    not quantized, so its ``3 m`` multiplications per sample remain:
    ``3 N (n + 1) m`` in float, ``3 N m`` with TernaryConnect + QBP.

Batch norm
    Per unit and sample, 9 multiplications (as the trainer computes them):
    forward ``(z - mu)^2`` (variance), ``(z - mu) inv``, ``gamma xhat``;
    backward ``gy gamma``, ``gy xhat`` (for ``dgamma``), ``gx xhat``,
    ``xhat sum(gx xhat)``, ``N gx``, ``(inv / N) (...)``. Per unit and batch, 9
    more: the batch mean and variance (two scalings by ``1/N``), the
    reciprocal square root, ``inv / N``, the running mean and running
    variance updates (two each) and the unbiased-variance factor
    ``N / (N - 1)`` of the running variance. Shift-based batch norm makes the
    per-sample ones shifts.

What is not counted
    The optimizer's update (with a power-of-two learning rate it is a shift),
    the loss, and the activation functions (ReLU and sign need no
    multiplication; a k-bit activation's ``(2^k - 1)`` scaling is counted
    as one multiplication per unit and sample in the forward pass).

One inference counts the same way: ``(n + 1) m`` multiplications per layer in
float, ``m`` (the bias) with binary/ternary weights, plus 2 per unit for batch
norm (``(z - mu) inv`` and ``gamma xhat``; shifts in shift-based batch norm).

Convolutions
    A convolution computes, at each of its ``P = OH * OW`` output positions, a
    fully-connected layer of ``n = kernel * kernel * C_in`` inputs (the window)
    and ``m = units`` outputs (the filters): the trainer runs it as exactly that
    on the matrix of windows. So it counts as a dense layer with ``N P``
    samples per training step and ``P`` per inference, everything per sample
    above multiplied by ``P``; its batch norm is per channel, so the per-batch
    counts stay ``9 m``. (Summing the overlapping windows' errors back into the
    input image is not counted, as the other additions of a pass are counted
    one per product.)

Max-pooling
    No multiplications: ``size * size - 1`` comparisons (counted as additions) per
    output value in the forward pass; the backward pass only routes the error
    to the maximum.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from .config import LayerConfig
from .conv import conv_geometry

__all__ = ["Ops", "LayerOps", "count_layer", "count_pool", "count_network", "total", "BN_PER_SAMPLE",
           "BN_PER_BATCH"]

#: Batch-norm multiplications per unit and sample in a training step.
BN_PER_SAMPLE = 9
#: Batch-norm multiplications per unit and batch in a training step.
BN_PER_BATCH = 9


@dataclass
class Ops:
    """Multiplications, additions (including subtractions and sign changes) and shifts."""
    mul: int = 0
    add: int = 0
    shift: int = 0

    def __add__(self, other: "Ops") -> "Ops":
        return Ops(self.mul + other.mul, self.add + other.add, self.shift + other.shift)


@dataclass
class LayerOps:
    """Counts of one layer: ``train`` for a step on a batch, ``infer`` for one image.

    ``inputs`` is the fan-in of one output value (a convolution's window, a max-pool's
    block), ``units`` the outputs per position (units, filters or channels), ``positions``
    the output positions (1 for a dense layer).
    """
    inputs: int
    units: int
    train: Ops = field(default_factory=Ops)
    infer: Ops = field(default_factory=Ops)
    kind: str = "dense"
    positions: int = 1


def count_layer(inputs: int, cfg: LayerConfig, batch: int, *, qbp: bool, bn: bool,
                bn_kind: str = "standard", positions: int = 1) -> LayerOps:
    """Operation counts of a dense layer, or of a convolution with ``positions`` > 1
    (see the module docstring for the rule).

    Parameters
    ----------
    inputs : int
        Fan-in ``n`` (a convolution's ``kernel * kernel * C_in``).
    cfg : LayerConfig
        The layer: its ``units``, ``weights`` (float/binary/ternary) and ``act``.
    batch : int
        Samples per training step ``N``.
    qbp : bool
        Quantized back-propagation: the weight gradient is shifts.
    bn : bool
        Count batch norm.
    bn_kind : str
        ``standard`` or ``shift``.
    positions : int
        Output positions ``P`` of a convolution: each sample counts ``P`` times.
    """
    if inputs <= 0 or batch <= 0 or positions <= 0:
        raise ValueError(f"Inputs, batch and positions must be positive, not {inputs!r}, "
                         f"{batch!r}, {positions!r}")
    n, m, N, P = inputs, cfg.units, batch, positions
    nm = n * m
    quantized = cfg.weights != "float"
    fwd = Ops(add=nm) + (Ops(mul=0) if quantized else Ops(mul=nm))
    back = Ops(add=nm) + (Ops(mul=0) if quantized else Ops(mul=nm))
    grad = Ops(add=nm) + (Ops(shift=nm) if qbp else Ops(mul=nm))
    bias = Ops(mul=3 * m, add=m)            # the bias column in each of the three passes
    per_sample = fwd + back + grad + bias
    act = Ops(mul=m) if cfg.act == "quant" else Ops()
    per_sample = per_sample + act
    per_batch = Ops()
    infer = Ops(add=nm + m, mul=m) + (Ops() if quantized else Ops(mul=nm)) + act
    if bn:
        if bn_kind == "shift":
            per_sample = per_sample + Ops(shift=BN_PER_SAMPLE * m, add=9 * m)
            infer = infer + Ops(shift=2 * m, add=2 * m)
        else:
            per_sample = per_sample + Ops(mul=BN_PER_SAMPLE * m, add=9 * m)
            infer = infer + Ops(mul=2 * m, add=2 * m)
        per_batch = Ops(mul=BN_PER_BATCH * m, add=4 * m)
    train = _times(per_sample, N * P) + per_batch
    return LayerOps(n, m, train, _times(infer, P), cfg.kind, P)


def _times(ops: Ops, k: int) -> Ops:
    return Ops(ops.mul * k, ops.add * k, ops.shift * k)


def count_pool(in_shape: tuple[int, int, int], size: int, batch: int) -> LayerOps:
    """Operation counts of a ``size x size`` max-pool of an input ``(C, H, W)``: comparisons only."""
    c, h, w = in_shape
    positions = (h // size) * (w // size)
    per_image = Ops(add=(size * size - 1) * c * positions)
    return LayerOps(size * size, c, _times(per_image, batch), per_image, "maxpool", positions)


def count_network(inputs: int | tuple[int, int, int], layers: list[LayerConfig], batch: int, *,
                  qbp: bool, bn: bool | None = None, bn_kind: str = "standard",
                  weights: str | None = None) -> list[LayerOps]:
    """Counts of every layer, for inputs of ``inputs`` pixels or of shape ``(C, H, W)``.

    ``bn=None`` counts batch norm where a layer has it; ``True``/``False``
    forces it on/off for every layer. ``weights`` overrides every layer's
    weight quantizer (``"float"`` gives the full-precision baseline).
    """
    out = []
    shape = tuple(inputs) if isinstance(inputs, (tuple, list)) else (int(inputs), 1, 1)
    for cfg in layers:
        c, h, w = shape
        if cfg.kind == "maxpool":
            out.append(count_pool(shape, cfg.size, batch))
            shape = (c, h // cfg.size, w // cfg.size)
            continue
        if weights is not None:
            cfg = dataclasses.replace(cfg, weights=weights)
        use_bn = cfg.bn if bn is None else bn
        if cfg.kind == "conv":
            _, oh, ow = conv_geometry(shape, cfg.kernel, cfg.stride, cfg.padding)
            out.append(count_layer(cfg.kernel * cfg.kernel * c, cfg, batch, qbp=qbp, bn=use_bn,
                                   bn_kind=bn_kind, positions=oh * ow))
            shape = (cfg.units, oh, ow)
        else:
            out.append(count_layer(c * h * w, cfg, batch, qbp=qbp, bn=use_bn, bn_kind=bn_kind))
            shape = (cfg.units, 1, 1)
    return out


def total(layers: list[LayerOps], which: str) -> Ops:
    """Sum of ``train`` or ``infer`` over the layers."""
    acc = Ops()
    for layer in layers:
        acc = acc + getattr(layer, which)
    return acc
