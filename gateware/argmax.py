"""Index of the largest score."""

from amaranth.hdl import Const, Module, Mux, Shape, ShapeLike, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["Argmax"]


class Argmax(wiring.Component):
    """Labels a vector of scores with the index of its largest one.

    Ties go to the lowest index, like :func:`numpy.argmax`. The comparison is a tournament
    of ``ceil(log2 n)`` rounds, each pairing neighbouring winners, in which the
    higher-indexed one only wins when strictly greater. Every round ends in a register, so the
    longest path is one comparison and one multiplexer: the output is valid ``latency =
    max(1, ceil(log2 n))`` cycles after the input transfer. The rounds form a pipeline that
    takes a new vector every cycle and advances only when its output is empty or taken
    (``i.ready = ~o.valid | o.ready``), so a stall loses nothing.

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
        self.latency = max(1, (n - 1).bit_length())
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
        advance = Signal()  # every round moves: the output is empty or being taken
        m.d.comb += [
            advance.eq(~self.o.valid | self.o.ready),
            self.i.ready.eq(advance),
        ]

        def stage(value, name):
            reg = Signal.like(value, name=name)
            with m.If(advance):
                m.d.sync += reg.eq(value)
            return reg

        # Each entry is (index, score) of the winner of a contiguous range of indices, in order.
        winners = [(Const(j, self.label_width), self.i.payload[j]) for j in range(self.n)]
        scores, valid = self.i.payload, self.i.valid
        for round_ in range(self.latency - 1):
            paired = []
            for left, right in zip(winners[0::2], winners[1::2]):
                higher = right[1] > left[1]
                paired.append((Mux(higher, right[0], left[0]), Mux(higher, right[1], left[1])))
            winners = [
                (stage(index, f"index_{round_}_{k}"), stage(score, f"score_{round_}_{k}"))
                for k, (index, score) in enumerate(paired + winners[2 * len(paired):])]
            scores = stage(scores, f"scores_{round_}")
            valid = stage(valid, f"valid_{round_}")
        if len(winners) == 2:  # the last round ends in the output register
            (l_index, l_score), (r_index, r_score) = winners
            label = Mux(r_score > l_score, r_index, l_index)
        else:
            label = winners[0][0]
        with m.If(advance):
            m.d.sync += [
                self.o.valid.eq(valid),
                self.o.payload.label.eq(label),
                self.o.payload.scores.eq(scores),
            ]
        return m
