"""``MultiThreshold``: batch norm and a sign or ``k``-bit activation, folded into integer
thresholds."""

from __future__ import annotations

import numpy as np

from fewmul.gateware.activation import ThresholdUnit

from ..op import register
from ..types import TensorType
from .activation import Activation, ActivationBinding

__all__ = ["MultiThreshold"]


@register
class MultiThreshold(Activation):
    """``y_m = sum_j (s_m >= T_mj)``.

    With one threshold per neuron (``thresholds`` of shape ``(M,)``) the output is a bipolar
    bit (1 for +1); with ``L = 2^k - 1`` (shape ``(M, L)``) it is the ``k``-bit level.
    """
    kind = "threshold"

    def __init__(self, name: str, in_type: TensorType, thresholds):
        super().__init__(name, in_type)
        self.thresholds = self._per_neuron("thresholds", thresholds)
        if self.thresholds.ndim not in (1, 2):
            raise ValueError(f"{name}: thresholds must be (M,) or (M, L), not of shape "
                             f"{self.thresholds.shape}")

    @property
    def levels(self) -> int:
        return 1 if self.thresholds.ndim == 1 else self.thresholds.shape[1]

    @property
    def out_type(self):
        if self.thresholds.ndim == 1:
            return TensorType(self.in_type.shape, "bipolar", 1)
        return TensorType(self.in_type.shape, "unsigned", self.levels.bit_length())

    def per_pixel(self, x):
        t = self.thresholds
        if t.ndim == 2:
            return (x[:, :, None] >= t[None]).sum(2).astype(np.uint8)
        return (x >= t).astype(np.uint8)

    def arrays(self):
        return {"thresholds": self.thresholds}

    @classmethod
    def from_arrays(cls, name, in_type, arrays):
        return cls(name, in_type, arrays["thresholds"])

    def describe(self):
        out = "sign" if self.levels == 1 else f"{self.out_type.bits}-bit levels"
        return f"{self.units} x {self.levels} thresholds -> {out}"


class ThresholdBinding(ActivationBinding):
    """A :class:`~fewmul.gateware.ThresholdUnit`."""

    @property
    def levels(self):
        return self.op.levels

    @property
    def register_bits(self):
        return self.levels.bit_length()

    def build(self, folding):
        return ThresholdUnit(self.op.thresholds.tolist(), sum_bound=self.op.in_type.bound,
                             pe=folding.pe)

    def report(self, folding, unit):
        bits = self.op.out_type.bits
        return {"output": "sign" if self.levels == 1 else f"{bits}-bit levels",
                "output_bits": unit.out_shape.width}


MultiThreshold.binding_class = ThresholdBinding
