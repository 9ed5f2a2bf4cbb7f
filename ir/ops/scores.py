"""``Scores``: the output layer's batch norm as a power-of-two scale and an offset."""

from __future__ import annotations

import numpy as np

from fewmul.arith.ranges import signed_width
from fewmul.gateware.activation import ScoreUnit

from ..op import register
from ..types import TensorType
from .activation import Activation, ActivationBinding

__all__ = ["Scores"]


@register
class Scores(Activation):
    """``score_m = (s_m << shift_m) + offset_m``."""
    kind = "scores"

    def __init__(self, name: str, in_type: TensorType, shifts, offsets):
        super().__init__(name, in_type)
        self.shifts = self._per_neuron("shifts", shifts)
        self.offsets = self._per_neuron("offsets", offsets)
        if (self.shifts < 0).any():
            raise ValueError(f"{name}: shifts must not be negative")

    @property
    def out_type(self):
        bound = self.in_type.bound
        lo = min((-bound << int(s)) + int(o) for s, o in zip(self.shifts, self.offsets))
        hi = max((bound << int(s)) + int(o) for s, o in zip(self.shifts, self.offsets))
        return TensorType(self.in_type.shape, "signed", signed_width(lo, hi), max(-lo, hi))

    def per_pixel(self, x):
        return (x << self.shifts) + self.offsets

    def arrays(self):
        return {"shifts": self.shifts, "offsets": self.offsets}

    @classmethod
    def from_arrays(cls, name, in_type, arrays):
        return cls(name, in_type, arrays["shifts"], arrays["offsets"])

    def describe(self):
        return f"{self.units} scores (s << shift) + offset"


class ScoresBinding(ActivationBinding):
    """A :class:`~fewmul.gateware.ScoreUnit`."""

    @property
    def register_bits(self):
        return self.op.in_type.bits + 8   # as the area model was fitted

    def build(self, folding):
        return ScoreUnit(self.op.shifts.tolist(), self.op.offsets.tolist(),
                         sum_bound=self.op.in_type.bound, pe=folding.pe)

    def report(self, folding, unit):
        return {"output": "scores", "output_bits": unit.score_shape.width}


Scores.binding_class = ScoresBinding
