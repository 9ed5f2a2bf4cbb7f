"""Index of the largest score."""

from amaranth.hdl import Const, Module, Mux, Shape, ShapeLike, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .compare import greater

__all__ = ["Argmax"]


class Argmax(wiring.Component):
    """Labels a vector of scores with the index of its largest one.

    Ties go to the lowest index, like :func:`numpy.argmax`. The comparison is a tournament of
    ``rounds = max(1, ceil(log2 n))`` rounds on ``ceil(n / 2)`` registers: winner ``k`` of a
    round is the better of winners ``2k`` and ``2k + 1`` of the previous one (the first round
    reads the scores, held in the output register), the higher-indexed one winning only when
    strictly greater. A round takes two cycles: the comparisons go into registers, then the
    winners are selected, so neither a comparator nor a multiplexer follows the other in a
    cycle. The registers are reused by every round (a pipelined tournament would carry all
    ``n`` scores through each of its stages).

    Timing: the output is valid ``latency = 2 * rounds + 1`` cycles after the input transfer;
    a new input is accepted once the tournament is over and its output empty or being taken
    (``i.ready = ~busy & (~o.valid | o.ready)``), so at most one vector every
    ``cycles_per_vector = latency`` cycles.

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
    rounds, latency, cycles_per_vector : int
        See above.
    """

    def __init__(self, n: int, score_shape: ShapeLike):
        if not isinstance(n, int) or n <= 0:
            raise TypeError(f"Number of scores must be a positive integer, not {n!r}")
        Shape.cast(score_shape)
        self.n = n
        self.label_width = max(1, (n - 1).bit_length())
        self.rounds = max(1, (n - 1).bit_length())
        self.latency = self.cycles_per_vector = 2 * self.rounds + 1
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
        scores = self.o.payload.scores   # the input, held from its transfer on
        score_shape = scores.shape().elem_shape
        rounds = self.rounds
        # winners[k] = (index, score) of the winner of a range of indices, ranges in order
        winners = [(Signal(self.label_width, name=f"index_{k}"),
                    Signal(score_shape, name=f"score_{k}")) for k in range(-(-self.n // 2))]
        left = Signal(range(2 * rounds + 1))  # cycles of the tournament still to go
        idle = Signal(init=1)                 # left == 0, as a register: `i.ready` is one gate
        first = Signal()                      # the next selection is the first round's
        accept = self.i.valid & self.i.ready

        def compare(pairs, name):
            """Registered ``score(2k + 1) > score(2k)`` for every pair of ``pairs``."""
            flags = []
            for k in range(len(pairs) // 2):
                flag = Signal(name=f"{name}_{k}")
                m.d.sync += flag.eq(greater(pairs[2 * k + 1][1], pairs[2 * k][1]))
                flags.append(flag)
            return flags

        def play(pairs, flags):
            """Winner ``k`` of one round over ``pairs`` (a list of (index, score))."""
            for k in range(len(winners)):
                if 2 * k + 1 < len(pairs):
                    (l_index, l_score), (r_index, r_score) = pairs[2 * k], pairs[2 * k + 1]
                    yield Mux(flags[k], r_index, l_index), Mux(flags[k], r_score, l_score)
                elif 2 * k < len(pairs):
                    yield pairs[2 * k]
                else:
                    yield winners[k]

        inputs = [(Const(j, self.label_width), scores[j]) for j in range(self.n)]
        first_round = list(play(inputs, compare(inputs, "higher_first")))
        later_round = list(play(winners, compare(winners, "higher")))
        m.d.comb += [
            self.i.ready.eq(idle & (~self.o.valid | self.o.ready)),
            self.o.payload.label.eq(winners[0][0]),
        ]

        def load(results):
            return [reg.eq(value) for winner, result in zip(winners, results)
                    for reg, value in zip(winner, result)]

        with m.If(accept):
            m.d.sync += [self.o.payload.scores.eq(self.i.payload), left.eq(2 * rounds),
                         first.eq(1), idle.eq(0)]
        with m.Elif(~idle):
            m.d.sync += [left.eq(left - 1), idle.eq(left == 1)]
            with m.If(left[0]):   # the last cycle registered the comparisons: select
                m.d.sync += first.eq(0)
                with m.If(first):
                    m.d.sync += load(first_round)
                with m.Else():
                    m.d.sync += load(later_round)
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.If(left == 1):
            m.d.sync += self.o.valid.eq(1)
        return m
