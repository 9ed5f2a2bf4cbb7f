"""Index of the largest score."""

from amaranth.hdl import Const, Module, Mux, Shape, ShapeLike, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["Argmax"]


class Argmax(wiring.Component):
    """Labels a vector of scores with the index of its largest one.

    Ties go to the lowest index, like :func:`numpy.argmax`. The comparison is a balanced
    tournament tree in which the higher-indexed half only wins when strictly greater. Its result
    is registered: the output is valid ``latency = 1`` cycle after the input transfer, and a new
    input is accepted in the cycle the previous output is taken (``i.ready = ~o.valid |
    o.ready``).

    Parameters
    ----------
    n : int
        Number of scores.
    score_shape : shape-like
        Shape of each score.

    Members
    -------
    i : ``In(stream.Signature(ArrayLayout(score_shape, n)))``
        Scores.
    o : ``Out(stream.Signature(StructLayout({"label": unsigned(label_width), "scores": ...})))``
        Label, and the scores unchanged (``ArrayLayout(score_shape, n)``).

    Attributes
    ----------
    label_width : int
        Bits of the label, ``max(1, (n - 1).bit_length())``.
    """

    def __init__(self, n: int, score_shape: ShapeLike):
        if not isinstance(n, int) or n <= 0:
            raise TypeError(f"Number of scores must be a positive integer, not {n!r}")
        Shape.cast(score_shape)
        self.n = n
        self.label_width = max(1, (n - 1).bit_length())
        self.latency = 1
        scores = data.ArrayLayout(score_shape, n)
        super().__init__({
            "i": In(stream.Signature(scores)),
            "o": Out(stream.Signature(data.StructLayout({
                "label":  unsigned(self.label_width),
                "scores": scores,
            }))),
        })

    def elaborate(self, platform):
        m = Module()
        scores = self.i.payload

        def tree(lo, hi):  # -> (index, score) of the winner among scores[lo:hi]
            if hi - lo == 1:
                return Const(lo, self.label_width), scores[lo]
            mid = (lo + hi) // 2
            (l_index, l_score), (r_index, r_score) = tree(lo, mid), tree(mid, hi)
            right = r_score > l_score
            return Mux(right, r_index, l_index), Mux(right, r_score, l_score)

        index, _ = tree(0, self.n)
        m.d.comb += self.i.ready.eq(~self.o.valid | self.o.ready)
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [
                self.o.payload.label.eq(index),
                self.o.payload.scores.eq(scores),
            ]
        with m.If(self.i.ready):
            m.d.sync += self.o.valid.eq(self.i.valid)
        return m
