"""A stream register: one place, loaded whenever it is empty or being taken."""

from amaranth.hdl import Module, Shape
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["StreamRegister"]


class StreamRegister(wiring.Component):
    """Registers ``o.valid`` and ``o.payload`` of a stream.

    ``i.ready`` is high while the register is empty or being taken (``~o.valid | o.ready``),
    so it combines ``o.ready`` with a register; a pipeline whose enable is ``i.ready`` moves in
    the same cycles as the register and loses nothing when the output stalls. Unlike a skid
    buffer, it holds one item: it passes one item per cycle only while ``o.ready`` is high.

    Timing: an item transferred on ``i`` is offered on ``o`` ``latency = 1`` cycle later.

    Parameters
    ----------
    payload_shape : shape-like
        Shape of the payloads.

    Members
    -------
    i : ``In(stream.Signature(payload_shape))``
        Items.
    o : ``Out(stream.Signature(payload_shape))``
        The items, from registers.
    """

    latency = 1

    def __init__(self, payload_shape):
        if not isinstance(payload_shape, data.Layout):
            Shape.cast(payload_shape)
        super().__init__({
            "i": In(stream.Signature(payload_shape)),
            "o": Out(stream.Signature(payload_shape)),
        })

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.i.ready.eq(~self.o.valid | self.o.ready)
        with m.If(self.i.ready):
            m.d.sync += self.o.valid.eq(self.i.valid)
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += self.o.payload.eq(self.i.payload)
        return m
