"""A skid buffer (register slice): cuts the combinational paths of a stream."""

from amaranth.hdl import Module, Mux, Shape, ShapeLike, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["SkidBuffer"]


class SkidBuffer(wiring.Component):
    """Passes a stream through registers, with ``i.ready`` driven by a register too.

    A stream's ``ready`` normally travels back combinationally through every unit that passes
    it on; in a long dataflow pipeline that path, and the clock enables it drives, limits the
    clock frequency. This buffer (a register slice) ends both paths: ``o.valid`` and
    ``o.payload`` come from an output register, and ``i.ready`` is low only while a second,
    spare register holds a payload that arrived while the output was stalled.

    Timing: a payload is offered on ``o`` ``latency = 1`` cycle after its transfer on ``i``;
    with ``o.ready`` high the buffer takes a payload every cycle.

    Parameters
    ----------
    payload_shape : shape-like
        Shape of the payloads.

    Members
    -------
    i : ``In(stream.Signature(payload_shape))``
        Incoming stream.
    o : ``Out(stream.Signature(payload_shape))``
        The same payloads, in the same order.
    """

    latency = 1

    def __init__(self, payload_shape: ShapeLike):
        if not isinstance(payload_shape, data.Layout):
            Shape.cast(payload_shape)
        super().__init__({
            "i": In(stream.Signature(payload_shape)),
            "o": Out(stream.Signature(payload_shape)),
        })

    def elaborate(self, platform):
        m = Module()
        full  = Signal()  # the spare register holds a payload
        spare = Signal.like(self.i.payload)
        m.d.comb += self.i.ready.eq(~full)
        with m.If(~self.o.valid | self.o.ready):  # the output register is free or being taken
            m.d.sync += [
                self.o.valid.eq(full | self.i.valid),
                self.o.payload.eq(Mux(full, spare, self.i.payload)),
                full.eq(0),
            ]
        with m.Elif(self.i.valid & ~full):
            m.d.sync += [full.eq(1), spare.eq(self.i.payload)]
        return m
