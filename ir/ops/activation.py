"""What the per-neuron activations (:class:`~.threshold.MultiThreshold`,
:class:`~.scores.Scores`) share: they apply neuron ``m``'s constants to sum ``m`` as the sums
stream by, ``pe`` lanes per beat, so they take their layer's folding."""

from __future__ import annotations

import numpy as np

from ..op import Binding, Estimate, Op, StreamLayout
from ..types import TensorType

__all__ = ["Activation", "ActivationBinding", "LUT_PER_THRESHOLD_BIT",
           "THRESHOLD_GROUPS_PER_BIT"]

#: Threshold compare and its per-group constant, per bit of each lane, times
#: ``1 + groups / THRESHOLD_GROUPS_PER_BIT`` (the constants are multiplexed by the group).
LUT_PER_THRESHOLD_BIT = 1.0
THRESHOLD_GROUPS_PER_BIT = 10


class Activation(Op):
    """An op on signed sums with per-neuron integer constants; on a ``(C, H, W)`` input the
    neurons are the ``C`` channels, the same constants applied at every pixel."""

    def __init__(self, name: str, in_type: TensorType):
        super().__init__(name, in_type)
        if in_type.kind != "signed" or in_type.bound is None:
            raise ValueError(f"{name}: inputs must be bounded signed sums, not {in_type}")

    @property
    def units(self) -> int:
        return self.in_type.channels

    def forward(self, x):
        x = np.asarray(x)
        n = len(x)
        return self.per_pixel(x.reshape(n * self.in_type.pixels, self.units)).reshape(n, -1)

    def per_pixel(self, x: np.ndarray) -> np.ndarray:
        """The outputs for ``x`` of shape ``(rows, units)``: one pixel's sums per row."""
        raise NotImplementedError

    def _per_neuron(self, name: str, values) -> np.ndarray:
        values = np.asarray(values).astype(np.int64)
        if len(values) != self.units:
            raise ValueError(f"{self.name}: {self.units} neurons but {len(values)} {name}")
        return values


class ActivationBinding(Binding):
    """A unit between the matrix-vector unit and the collector of its layer.

    Subclasses give :attr:`levels` (constants compared per neuron) and
    :attr:`register_bits` (bits per element of the layer's output register, for the estimate).
    """
    role = "act"

    levels = 1

    @property
    def register_bits(self) -> int:
        return self.op.out_type.bits

    def estimate(self, folding):
        pe, acc = folding.pe, self.op.in_type.bits
        groups = self.op.units // pe
        luts = (LUT_PER_THRESHOLD_BIT * pe * self.levels * acc
                * (1 + groups / THRESHOLD_GROUPS_PER_BIT))
        return Estimate(luts, self.op.units * self.register_bits, 0)

    def stream(self, folding):
        out = self.op.out_type
        return StreamLayout(out.pixels * self.op.units // folding.pe, folding.pe, out.bits,
                            out.kind == "signed")
