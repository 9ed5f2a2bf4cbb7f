"""A skid buffer: cuts the combinational ``ready`` path of a stream."""

from amaranth.hdl import Module, Mux, Shape, ShapeLike, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["SkidBuffer"]


class SkidBuffer(wiring.Component):
    """Passes a stream through with ``i.ready`` driven by a register.

    A stream's ``ready`` normally travels back combinationally through every unit that passes
    it on; in a long dataflow pipeline that path, and the clock enables it drives, limits the
    clock frequency. This buffer ends the backward path: ``i.ready`` is low only while its one
    spare register holds a payload that ``o`` did not take.

    The forward path is combinational (``o.valid = i.valid`` and ``o.payload = i.payload``
    while the spare register is empty), so the buffer adds no latency and, with ``o.ready``
    high, never stalls ``i``. When ``o`` stalls a transfer that ``i`` made, the payload goes to
    the spare register and ``i.ready`` falls for the cycles until it is taken.

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
        m.d.comb += [
            self.i.ready.eq(~full),
            self.o.valid.eq(full | self.i.valid),
            self.o.payload.eq(Mux(full, spare, self.i.payload)),
        ]
        with m.If(full):
            with m.If(self.o.ready):
                m.d.sync += full.eq(0)
        with m.Elif(self.i.valid & ~self.o.ready):
            m.d.sync += [full.eq(1), spare.eq(self.i.payload)]
        return m
