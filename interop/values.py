"""Exact bookkeeping of what the tensors of a QONNX graph mean in fewmul's integers.

Between layers a tensor is an :class:`Activations`: every element's float value is
``scale * v + offset[c]`` with ``v`` the integer the hardware streams (``+-1`` for bipolar bits,
the level ``0..L`` for unsigned ones). After a ``MatMul``/``Conv`` it is a :class:`Sums`: output
channel ``m`` holds ``a[m] * s + b[m]`` with ``s`` the integer sum of the pending
:class:`~fewmul.ir.ops.MatVec`. Scale-and-bias nodes update ``(a, b)``; an activation turns
them into integer thresholds on ``s`` (:func:`thresholds`).

Every number is a :class:`fractions.Fraction` of the float32 constants of the graph, so the
thresholds are those the graph implies in exact arithmetic (batch norm's square root is taken in
float64, 1e-16 relative). Nothing is rounded: a value that is not representable is refused.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from fewmul.ir.types import TensorType

__all__ = ["Activations", "Sums", "Step", "exact", "rounding_function", "quant_steps",
           "thresholds", "is_power_of_two"]


def exact(values) -> np.ndarray:
    """An object array of the exact :class:`~fractions.Fraction` values of floats."""
    arr = np.asarray(values, dtype=np.float64)
    out = np.empty(arr.shape, dtype=object)
    for idx, v in np.ndenumerate(arr):
        out[idx] = Fraction(float(v))
    return out


def is_power_of_two(x: Fraction) -> bool:
    """Whether ``x`` is ``2^e`` for an integer ``e`` (of either sign)."""
    return x > 0 and x.numerator & (x.numerator - 1) == 0 and \
        x.denominator & (x.denominator - 1) == 0 and (x.numerator == 1 or x.denominator == 1)


@dataclass
class Activations:
    """A tensor of activations: value ``scale * v + offset[c]`` per channel ``c``.

    Attributes
    ----------
    type : TensorType
        What the hardware streams: ``(C, H, W)`` of ``bipolar`` or ``unsigned`` elements.
    scale : Fraction
        Positive, one for the whole tensor.
    offset : numpy.ndarray
        ``(C,)`` Fractions.
    flat : bool
        Whether the ONNX tensor is flattened (``(1, C*H*W)`` in ``(C, H, W)`` order).
    pad : int
        Padding a ``Pad`` node added, for the next ``Conv``.
    relu : bool
        A ``Relu`` was applied to the sums and awaits its quantizer (only with :class:`Sums`).
    """
    type: TensorType
    scale: Fraction
    offset: np.ndarray
    flat: bool = False
    pad: int = 0

    def values(self) -> np.ndarray:
        """``(C, codes)`` exact value of every code ``v`` per channel."""
        codes = self.codes()
        return np.array([[self.scale * v + o for v in codes] for o in self.offset], dtype=object)

    def codes(self) -> list[int]:
        """The integers an element holds: ``-1, +1`` or ``0..2^bits - 1``."""
        return [-1, 1] if self.type.kind == "bipolar" else list(range(1 << self.type.bits))

    def zero_code_value(self) -> np.ndarray:
        """``(C,)`` value of the code the hardware pads with (bit 0: -1 or level 0)."""
        v = -1 if self.type.kind == "bipolar" else 0
        return np.array([self.scale * v + o for o in self.offset], dtype=object)


@dataclass
class Sums:
    """Pre-activations ``a[m] * s + b[m]`` of the pending layer's integer sums ``s``.

    Attributes
    ----------
    weights : numpy.ndarray
        ``(M, N)`` signed -1/0/+1 weights, columns in fewmul's order.
    weight_kind : str
        ``binary`` or ``ternary``.
    in_type : TensorType
        The matrix-vector unit's input (a convolution's windows).
    shape : tuple of int
        ``(M, H, W)`` of the sums.
    a, b : numpy.ndarray
        ``(M,)`` Fractions.
    layer : dict
        The spec entry of the layer (``kind``, ``units``/``filters``, ...), ``act`` still open.
    window : tuple or None
        ``(kernel, stride, pad)`` of a convolution.
    in_act : Activations
        The layer's input.
    relu : bool
        A ``Relu`` awaits its quantizer.
    """
    weights: np.ndarray
    weight_kind: str
    in_type: TensorType
    shape: tuple[int, int, int]
    a: np.ndarray
    b: np.ndarray
    layer: dict
    window: tuple[int, int, int] | None
    in_act: Activations
    flat: bool = False
    relu: bool = False

    @property
    def bound(self) -> int:
        """``|s| <= bound``."""
        n = self.weights.shape[1]
        return n * ((1 << self.in_type.bits) - 1)

    def parity(self) -> int | None:
        """``s mod 2`` when it is fixed (binary weights on bipolar inputs: ``N mod 2``)."""
        if self.weight_kind == "binary" and self.in_type.kind == "bipolar":
            return self.weights.shape[1] % 2
        return None


@dataclass
class Step:
    """Level ``j + 1`` is reached when ``y > cut`` (``strict``) or ``y >= cut``; per channel."""
    cuts: np.ndarray                   # (M, L) Fractions
    strict: np.ndarray                 # (M, L) bool
    extra: dict = field(default_factory=dict)


_ROUNDING = {
    "ROUND": round, "HALF_EVEN": round, "CEIL": math.ceil, "FLOOR": math.floor,
    "UP": lambda u: int(math.copysign(math.ceil(abs(u)), u)),
    "DOWN": math.trunc,
    "HALF_UP": lambda u: int(math.copysign(math.floor(abs(u) + Fraction(1, 2)), u)),
    "HALF_DOWN": lambda u: int(math.copysign(math.ceil(abs(u) - Fraction(1, 2)), u)),
}


def rounding_function(mode: str):
    """The exact integer rounding of a ``Quant`` node's ``rounding_mode`` (as qonnx defines
    it), on Fractions; None for an unknown mode."""
    return _ROUNDING.get(mode.upper())


def quant_steps(rnd, qmin: int, qmax: int) -> list[tuple[Fraction, bool]]:
    """``(cut, strict)`` of ``u`` at which ``clip(rnd(u), qmin, qmax)`` reaches each of
    ``qmin + 1 .. qmax``."""
    tiny = Fraction(1, 1 << 20)
    steps = []
    for n in range(qmin + 1, qmax + 1):
        for c in (Fraction(n - 1), n - Fraction(1, 2), Fraction(n)):
            if rnd(c) >= n and rnd(c - tiny) < n:
                steps.append((c, False))
                break
            if rnd(c) < n and rnd(c + tiny) >= n:
                steps.append((c, True))
                break
        else:                           # pragma: no cover - every mode above steps there
            raise ValueError(f"no step to level {n}")
    return steps


def _int_threshold(a: Fraction, b: Fraction, cut: Fraction, strict: bool, bound: int) -> int:
    """Smallest integer ``s`` with ``a s + b >= cut`` (``> cut``), for ``a >= 0``, clipped to
    ``[-bound, bound + 1]``."""
    if a == 0:
        reached = b > cut if strict else b >= cut
        return -bound if reached else bound + 1
    x = (cut - b) / a
    t = math.floor(x) + 1 if strict else math.ceil(x)
    return min(max(t, -bound), bound + 1)


def thresholds(sums: Sums, step: Step) -> tuple[np.ndarray, np.ndarray]:
    """Integer thresholds ``(M, L)`` on the sums and the rows whose weights are negated
    (where ``a < 0``: the comparison is then on ``-s``)."""
    flip = np.array([a < 0 for a in sums.a], dtype=bool)
    m, levels = step.cuts.shape
    out = np.zeros((m, levels), dtype=np.int64)
    for i in range(m):
        a, b = (-sums.a[i], sums.b[i]) if flip[i] else (sums.a[i], sums.b[i])
        for j in range(levels):
            out[i, j] = _int_threshold(a, b, step.cuts[i, j], bool(step.strict[i, j]), sums.bound)
    return out, flip
