"""Row sweep: reads the rows of a memory one per cycle through a synchronous read port."""

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["RowSweep"]


class RowSweep(wiring.Component):
    """Issues addresses ``0 .. depth - 1`` on consecutive cycles after a ``start`` pulse.

    A synchronous read port returns row ``r`` one cycle after its address, so ``valid`` and
    ``index`` follow ``addr`` one cycle later; ``last`` marks the valid cycle of the last row.
    ``busy`` is set from the cycle after ``start`` to the ``last`` cycle.

    Members
    -------
    start : ``In(1)``
    addr : ``Out(range(depth))``
    valid, last, busy : ``Out(1)``
    index : ``Out(range(depth))``
    """

    def __init__(self, depth: int):
        if not isinstance(depth, int) or depth <= 0:
            raise TypeError(f"Depth must be a positive integer, not {depth!r}")
        self.depth = depth
        super().__init__({
            "start": In(1),
            "addr": Out(range(depth)),
            "valid": Out(1),
            "last": Out(1),
            "busy": Out(1),
            "index": Out(range(depth)),
        })

    def elaborate(self, platform):
        m = Module()
        addr = Signal(range(self.depth))
        issuing = Signal()
        m.d.comb += [
            self.addr.eq(addr),
            self.last.eq(self.valid & (self.index == self.depth - 1)),
            self.busy.eq(issuing | self.valid),
        ]
        m.d.sync += [self.valid.eq(issuing | self.start), self.index.eq(addr)]
        with m.If(issuing | self.start):
            with m.If(addr == self.depth - 1):
                m.d.sync += [addr.eq(0), issuing.eq(0)]
            with m.Else():
                m.d.sync += [addr.eq(addr + 1), issuing.eq(1)]
        return m
