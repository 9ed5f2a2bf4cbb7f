"""``MaxPool``: the largest activation of each block of pixels, per channel."""

from __future__ import annotations

import numpy as np
from amaranth.hdl import unsigned

from fewmul.gateware.pool import MaxPool as MaxPoolUnit

from ..op import Binding, Estimate, Op, StreamLayout, register
from ..types import TensorType

__all__ = ["MaxPool", "LUT_PER_POOL_BIT"]

#: Area model: a comparator and a multiplexer per bit of each lane, and the counters.
LUT_PER_POOL_BIT = 3.0
LUT_POOL_CONTROL = 40


@register
class MaxPool(Op):
    """The maximum over non-overlapping ``size x size`` blocks of a ``(C, H, W)`` input of
    bipolar bits or unsigned levels; ``size`` divides ``H`` and ``W``.

    It follows the activation that gives its input: of bipolar bits (1 for +1) the maximum is
    an OR, of ``k``-bit levels the largest level. On the channels flagged in ``minimum`` it
    takes the minimum instead (an AND of bits): a float model that pools a convolution's sums
    before batch norm and activation gives, where batch norm's scale is negative, the
    activation of the largest sum, the smallest activation. Since the activation is monotone
    in the sum, the two orders then give the same bits.
    """
    kind = "maxpool"

    def __init__(self, name: str, in_type: TensorType, size: int,
                 minimum: np.ndarray | None = None):
        super().__init__(name, in_type)
        channels = in_type.shape[0]
        minimum = np.zeros(channels, bool) if minimum is None else np.asarray(minimum)
        if minimum.shape != (channels,) or minimum.dtype != bool:
            raise ValueError(f"{name}: minimum must be {channels} booleans, one per channel, "
                             f"not {minimum.dtype} {minimum.shape}")
        self.minimum = minimum
        if not isinstance(size, (int, np.integer)) or isinstance(size, bool) or size < 1:
            raise ValueError(f"{name}: Size must be a positive integer, not {size!r}")
        if in_type.kind not in ("bipolar", "unsigned"):
            raise ValueError(f"{name}: inputs must be bipolar or unsigned, not {in_type.kind!r}")
        _, h, w = in_type.shape
        if h % size or w % size:
            raise ValueError(f"{name}: size {size} does not divide the {h}x{w} input")
        self.size = int(size)

    @property
    def out_type(self) -> TensorType:
        c, h, w = self.in_type.shape
        return TensorType((c, h // self.size, w // self.size), self.in_type.kind,
                          self.in_type.bits)

    def forward(self, x):
        c, h, w = self.in_type.shape
        s = self.size
        blocks = np.asarray(x).reshape(len(x), h // s, s, w // s, s, c)
        largest, smallest = blocks.max(axis=(2, 4)), blocks.min(axis=(2, 4))
        return np.where(self.minimum, smallest, largest).reshape(len(x), -1)

    def arrays(self):
        return {"size": np.array(self.size), "minimum": self.minimum}

    @classmethod
    def from_arrays(cls, name, in_type, arrays):
        minimum = arrays["minimum"].astype(bool) if "minimum" in arrays else None
        return cls(name, in_type, int(arrays["size"]), minimum)

    def describe(self) -> str:
        low = int(self.minimum.sum())
        how = f"max (min on {low} of {len(self.minimum)} channels)" if low else "max"
        return f"{how} of {self.size}x{self.size} blocks: {self.in_type} -> {self.out_type}"


class MaxPoolBinding(Binding):
    """A :class:`~fewmul.gateware.MaxPool` on the ``pe``-wide beats of its layer's
    activations."""
    role = "pool"
    # its ready is low when a block's last beat meets a full output register; on the ULX3S,
    # passed on to the matrix-vector unit's queue, that limited a conv net to 144.9 MHz
    buffered_input = True

    def unit(self, folding) -> MaxPoolUnit:

        op = self.op
        c, h, w = op.in_type.shape
        return MaxPoolUnit(unsigned(op.in_type.bits), channels=c, height=h, width=w,
                           size=op.size, pe=folding.pe, minimum=op.minimum.tolist())

    def cycles(self, folding):
        # one input beat per cycle
        return self.op.in_type.size // folding.pe

    def latency(self, folding):
        # an output beat one cycle after the input beat that completes its block
        return 1

    def buffer_bits(self) -> int:
        """Partial maxima of one row of blocks."""
        c, _, w = self.op.in_type.shape
        return w // self.op.size * c * self.op.in_type.bits if self.op.size > 1 else 0

    def estimate(self, folding):
        bits = folding.pe * self.op.in_type.bits
        return Estimate(LUT_PER_POOL_BIT * bits + LUT_POOL_CONTROL,
                        self.buffer_bits() + 2 * bits + 32, 0)

    def stream(self, folding):
        out = self.op.out_type
        return StreamLayout(out.size // folding.pe, folding.pe, out.bits, False)

    def build(self, folding):
        unit = self.unit(folding)
        assert (unit.latency, unit.buffer_bits) == (self.latency(folding), self.buffer_bits())
        return unit

    def report(self, folding, unit):
        return {"pool": self.op.size}


MaxPool.binding_class = MaxPoolBinding
