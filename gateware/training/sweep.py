"""Row sweep: reads the rows of a memory one per cycle and follows them down a pipeline."""

from amaranth.hdl import Module, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["RowSweep"]


class RowSweep(wiring.Component):
    """Issues addresses ``0 .. depth - 1`` on consecutive cycles after a ``start`` pulse, and
    follows each row through ``stages`` pipeline stages.

    ``start`` and ``write`` are registered: the address of the first row is issued in the cycle
    after the ``start`` pulse (so a start decoded from a controller's state reaches one
    register, not every row's counters and flags). ``rows[s]`` describes the
    row that is ``s`` cycles past its address (stage ``s``): ``valid``, its ``index``, ``last``
    for the sweep's last row, and ``write``, the ``write`` input sampled at ``start`` (a row
    that will be updated, carried with it so that a sweep started later cannot change it).
    A synchronous read port returns row ``r`` one cycle after its address: in stage 1.
    ``valid``, ``index`` and ``last`` are those of stage 1; ``busy`` is set from the cycle after
    ``start`` until the last row has left the last stage.

    Parameters
    ----------
    depth : int
        Rows in the sweep.
    stages : int
        Deepest stage followed (at least 1).

    Members
    -------
    start, write : ``In(1)``
    addr : ``Out(range(depth))``
    rows : ``Out(ArrayLayout(StructLayout({"valid": 1, "last": 1, "write": 1, "index": range(depth)}), stages + 1))``
    valid, last, busy : ``Out(1)``
    index : ``Out(range(depth))``
    """

    def __init__(self, depth: int, stages: int = 1):
        if not isinstance(depth, int) or depth <= 0:
            raise TypeError(f"Depth must be a positive integer, not {depth!r}")
        if not isinstance(stages, int) or stages <= 0:
            raise TypeError(f"Stages must be a positive integer, not {stages!r}")
        self.depth, self.stages = depth, stages
        self.row_layout = data.StructLayout({"valid": 1, "last": 1, "write": 1,
                                             "index": range(depth)})
        super().__init__({
            "start": In(1),
            "write": In(1),
            "addr": Out(range(depth)),
            "rows": Out(data.ArrayLayout(self.row_layout, stages + 1)),
            "valid": Out(1),
            "last": Out(1),
            "busy": Out(1),
            "index": Out(range(depth)),
        })

    def elaborate(self, platform):
        m = Module()
        addr = Signal(range(self.depth))
        started, issuing = Signal(), Signal()
        write = Signal()
        issued = Signal(self.row_layout)            # stage 0: the row whose address is out
        m.d.comb += [
            issued.valid.eq(issuing | started),
            issued.index.eq(addr),
            issued.last.eq(addr == self.depth - 1),
            issued.write.eq(write),
        ]
        m.d.sync += started.eq(self.start)
        with m.If(self.start):
            m.d.sync += write.eq(self.write)
        with m.If(issued.valid):
            with m.If(issued.last):
                m.d.sync += [addr.eq(0), issuing.eq(0)]
            with m.Else():
                m.d.sync += [addr.eq(addr + 1), issuing.eq(1)]

        stages, busy = [issued], issued.valid
        for s in range(1, self.stages + 1):
            row = Signal(self.row_layout, name=f"stage{s}")
            m.d.sync += row.eq(stages[-1])
            stages.append(row)
            busy = busy | row.valid
        for s, row in enumerate(stages):
            m.d.comb += [self.rows[s].eq(row), self.rows[s].last.eq(row.valid & row.last)]
        m.d.comb += [
            self.addr.eq(addr),
            self.valid.eq(stages[1].valid),
            self.index.eq(stages[1].index),
            self.last.eq(self.rows[1].last),
            self.busy.eq(busy),
        ]
        return m
