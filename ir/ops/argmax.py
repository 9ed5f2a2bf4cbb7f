"""``Argmax``: the label, the first index of the largest score."""

from __future__ import annotations

from amaranth.hdl import signed

from fewmul.gateware.argmax import Argmax as ArgmaxUnit

from ..op import Binding, Op, StreamLayout, register
from ..types import TensorType

__all__ = ["Argmax"]


@register
class Argmax(Op):
    """The index of the largest element (the first one on ties)."""
    kind = "argmax"

    def __init__(self, name: str, in_type: TensorType):
        super().__init__(name, in_type)
        if in_type.kind != "signed":
            raise ValueError(f"{name}: inputs must be signed scores, not {in_type}")

    @property
    def out_type(self):
        return TensorType.vector(1, "index", max(1, (self.in_type.size - 1).bit_length()))

    def forward(self, x):
        return x.argmax(1)[:, None]


class ArgmaxBinding(Binding):
    """An :class:`~fewmul.gateware.Argmax` tournament, two cycles per round."""
    role = "argmax"
    takes_vector = True

    def _rounds(self) -> int:
        return max(1, (self.op.in_type.size - 1).bit_length())

    def cycles(self, folding):
        return 2 * self._rounds() + 1

    def latency(self, folding):
        return 2 * self._rounds() + 1

    def stream(self, folding):
        return StreamLayout(1, 1, self.op.out_type.bits, False)

    def build(self, folding):
        return ArgmaxUnit(self.op.in_type.size, signed(self.op.in_type.bits))


Argmax.binding_class = ArgmaxBinding
