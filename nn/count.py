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
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .config import LayerConfig

__all__ = ["Ops", "LayerOps", "count_layer", "count_network", "total", "BN_PER_SAMPLE", "BN_PER_BATCH"]

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
    """Counts of one layer: ``train`` for a step on a batch, ``infer`` for one image."""
    inputs: int
    units: int
    train: Ops = field(default_factory=Ops)
    infer: Ops = field(default_factory=Ops)


def count_layer(inputs: int, cfg: LayerConfig, batch: int, *, qbp: bool, bn: bool,
                bn_kind: str = "standard") -> LayerOps:
    """Operation counts of one layer (see the module docstring for the rule).

    Parameters
    ----------
    inputs : int
        Fan-in ``n``.
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
    """
    if inputs <= 0 or batch <= 0:
        raise ValueError(f"Inputs and batch must be positive, not {inputs!r}, {batch!r}")
    n, m, N = inputs, cfg.units, batch
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
    train = Ops(per_sample.mul * N, per_sample.add * N, per_sample.shift * N) + per_batch
    return LayerOps(n, m, train, infer)


def count_network(inputs: int, layers: list[LayerConfig], batch: int, *, qbp: bool,
                  bn: bool | None = None, bn_kind: str = "standard",
                  weights: str | None = None) -> list[LayerOps]:
    """Counts of every layer.

    ``bn=None`` counts batch norm where a layer has it; ``True``/``False``
    forces it on/off for every layer. ``weights`` overrides every layer's
    weight quantizer (``"float"`` gives the full-precision baseline).
    """
    out, fan_in = [], inputs
    for cfg in layers:
        if weights is not None:
            cfg = LayerConfig(cfg.units, weights, cfg.act, cfg.act_bits, cfg.bn)
        out.append(count_layer(fan_in, cfg, batch, qbp=qbp, bn=cfg.bn if bn is None else bn,
                               bn_kind=bn_kind))
        fan_in = cfg.units
    return out


def total(layers: list[LayerOps], which: str) -> Ops:
    """Sum of ``train`` or ``infer`` over the layers."""
    acc = Ops()
    for layer in layers:
        acc = acc + getattr(layer, which)
    return acc
