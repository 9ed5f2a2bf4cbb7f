"""Backward units: the squared-hinge output error and its back-propagation."""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from ..mvu import signed_shape

__all__ = ["HingeError", "DeltaBackprop"]


class HingeError(wiring.Component):
    """Error of one output score under the squared hinge loss, in fixed point.

    With target ``t = +1`` for the true class and ``-1`` otherwise and the margin
    ``2**margin_shift`` in units of the score, ``delta = t * max(0, 2**margin_shift - t * score)``
    (proportional to minus the gradient of the loss). Combinational, compare and subtract only.

    Parameters
    ----------
    score_bound : int
        ``|score| <= score_bound``.
    margin_shift : int
        The margin is ``2**margin_shift``.

    Members
    -------
    score : ``In(signed)``
    target : ``In(1)``
        1 for the true class.
    delta : ``Out(delta_shape)``
        ``|delta| <= 2**margin_shift + score_bound``.
    """

    def __init__(self, score_bound: int, margin_shift: int):
        if not isinstance(score_bound, int) or score_bound <= 0:
            raise TypeError(f"Score bound must be a positive integer, not {score_bound!r}")
        if not isinstance(margin_shift, int) or margin_shift < 0:
            raise TypeError(f"Margin shift must be a non-negative integer, not {margin_shift!r}")
        self.margin = 1 << margin_shift
        self.delta_bound = self.margin + score_bound
        self.delta_shape = signed_shape(-self.delta_bound, self.delta_bound)
        super().__init__({
            "score": In(signed_shape(-score_bound, score_bound)),
            "target": In(1),
            "delta": Out(self.delta_shape),
        })

    def elaborate(self, platform):
        m = Module()
        pos = Signal(self.delta_shape)     # max(0, margin - score), true class
        neg = Signal(self.delta_shape)     # -max(0, margin + score), other classes
        m.d.comb += [
            pos.eq(Mux(self.score < self.margin, self.margin - self.score, 0)),
            neg.eq(Mux(self.score > -self.margin, -self.margin - self.score, 0)),
            self.delta.eq(Mux(self.target, pos, neg)),
        ]
        return m


class DeltaBackprop(wiring.Component):
    """Accumulates ``W^T delta`` row by row for binary weights: add or subtract, no multiplier.

    In a cycle with ``en`` set, row ``i``'s weight signs and error ``delta_i`` are presented and
    every accumulator ``j`` adds ``+delta_i`` (sign bit ``j`` set) or ``-delta_i``. ``clear``
    zeroes the accumulators (and wins over ``en``). The straight-through gate is applied by
    the reader.

    Parameters
    ----------
    units : int
        Number of accumulators (inputs of the weight rows).
    delta_bound : int
        ``|delta| <= delta_bound``.
    rows : int
        Rows accumulated between two clears; the accumulators hold ``rows * delta_bound``.

    Members
    -------
    clear, en : ``In(1)``
    signs : ``In(units)``
    delta : ``In(signed)``
    acc : ``Out(ArrayLayout(acc_shape, units))``
    """

    def __init__(self, units: int, *, delta_bound: int, rows: int):
        for name, value in (("Units", units), ("Delta bound", delta_bound), ("Rows", rows)):
            if not isinstance(value, int) or value <= 0:
                raise TypeError(f"{name} must be a positive integer, not {value!r}")
        self.units = units
        self.delta_shape = signed_shape(-delta_bound, delta_bound)
        self.acc_bound = rows * delta_bound
        self.acc_shape = signed_shape(-self.acc_bound, self.acc_bound)
        super().__init__({
            "clear": In(1),
            "en": In(1),
            "signs": In(units),
            "delta": In(self.delta_shape),
            "acc": Out(data.ArrayLayout(self.acc_shape, units)),
        })

    def elaborate(self, platform):
        m = Module()
        acc = Signal(data.ArrayLayout(self.acc_shape, self.units))
        m.d.comb += self.acc.eq(acc)
        with m.If(self.clear):
            m.d.sync += acc.eq(0)
        with m.Elif(self.en):
            for j in range(self.units):
                m.d.sync += acc[j].eq(Mux(self.signs[j], acc[j] + self.delta,
                                          acc[j] - self.delta))
        return m
