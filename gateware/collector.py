"""Gathers ``pe``-wide beats into whole vectors."""

from amaranth.hdl import Cat, Module, Mux, Shape, ShapeLike, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .mvu import check_pe

__all__ = ["Collector"]


class Collector(wiring.Component):
    """Gathers ``count / pe`` beats of ``pe`` elements into one vector of ``count`` elements.

    Element ``p`` of beat ``g`` becomes element ``g * pe + p`` of the vector. The vector is held
    in a register; while it waits for ``o.ready``, ``i.ready`` is low, except that the first beat
    of the next vector is accepted in the cycle the full one is taken (``i.ready = ~o.valid |
    o.ready``).

    Timing: the vector is valid ``latency = 1`` cycle after its last beat is transferred.

    Parameters
    ----------
    element_shape : shape-like
        Shape of each element.
    pe : int
        Elements per input beat; must divide ``count``.
    count : int
        Elements per output vector.

    Members
    -------
    i : ``In(stream.Signature(ArrayLayout(element_shape, pe)))``
        Beats.
    o : ``Out(stream.Signature(ArrayLayout(element_shape, count)))``
        Vectors.
    """

    latency = 1

    def __init__(self, element_shape: ShapeLike, pe: int, count: int):
        Shape.cast(element_shape)
        if not isinstance(count, int) or count <= 0:
            raise TypeError(f"Count must be a positive integer, not {count!r}")
        self.groups = check_pe(count, pe)
        self.pe = pe
        self.count = count
        super().__init__({
            "i": In(stream.Signature(data.ArrayLayout(element_shape, pe))),
            "o": Out(stream.Signature(data.ArrayLayout(element_shape, count))),
        })

    def elaborate(self, platform):
        m = Module()
        group_last = Signal(init=self.groups == 1)  # the next beat completes the vector
        group = Signal(range(self.groups))
        take = self.o.valid & self.o.ready
        put  = self.i.valid & self.i.ready

        m.d.comb += self.i.ready.eq(~self.o.valid | self.o.ready)
        with m.If(put):
            # A shift register: every beat enters at the top, so after `groups` beats beat `g`
            # sits at elements `g * pe ..`. Every register loads on `put` alone, with no
            # decoding of the beat's index.
            vector = self.o.payload.as_value()
            beat = self.i.payload.as_value()
            m.d.sync += vector.eq(Cat(vector[len(beat):], beat))
            m.d.sync += [
                group.eq(Mux(group_last, 0, group + 1)),
                group_last.eq(Mux(group_last, self.groups == 1, group == self.groups - 2)),
            ]
        m.d.sync += self.o.valid.eq((put & group_last) | (self.o.valid & ~take))
        return m
