"""Backward units: the squared-hinge output error and its back-propagation."""

from amaranth.hdl import Module, Mux, Signal, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from ..mvu import signed_shape

__all__ = ["HingeError", "DeltaBackprop"]


class HingeError(wiring.Component):
    """Error of one output score under the squared hinge loss, in fixed point.

    With target ``t = +1`` for the true class and ``-1`` otherwise and the margin
    ``2**margin_shift`` in units of the score, ``delta = t * max(0, 2**margin_shift - t * score)``
    (proportional to minus the gradient of the loss), also given as ``negative`` and
    ``magnitude`` (``|delta|``, computed beside ``delta`` rather than from it, for the weight
    update). Combinational, compare and subtract only.

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
    negative : ``Out(1)``
        ``delta < 0`` or ``delta = 0`` (any sign of a zero error gives a zero update).
    magnitude : ``Out(unsigned)``
        ``|delta|``.
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
            "negative": Out(1),
            "magnitude": Out(range(self.delta_bound + 1)),
        })

    def elaborate(self, platform):
        m = Module()
        pos = Signal(self.delta_shape)     # max(0, margin - score), true class
        neg = Signal(self.delta_shape)     # -max(0, margin + score), other classes
        neg_magnitude = Signal(self.magnitude.shape())
        above = self.score > -self.margin
        m.d.comb += [
            pos.eq(Mux(self.score < self.margin, self.margin - self.score, 0)),
            neg.eq(Mux(above, -self.margin - self.score, 0)),
            neg_magnitude.eq(Mux(above, self.margin + self.score, 0)),
            self.delta.eq(Mux(self.target, pos, neg)),
            self.negative.eq(~self.target),
            self.magnitude.eq(Mux(self.target, pos, neg_magnitude)),
        ]
        return m


class DeltaBackprop(wiring.Component):
    """Accumulates ``T(W)^T delta`` row by row: add, subtract or keep, no multiplier.

    In a cycle with ``en`` set, row ``i``'s effective weights (as masks) and error ``delta_i``
    are presented and every accumulator ``j`` adds ``T(w_ij) delta_i``: binary weights
    (``masks[0]``, bit ``j`` set for +1) add ``+delta_i`` or ``-delta_i``; ternary ones
    (``masks[0]`` for +1, ``masks[1]`` for -1) add, subtract or keep. ``clear`` zeroes the
    accumulators (and wins). In a cycle with ``shift`` set the accumulators move down by one
    (``acc[j] <- acc[j + 1]``, a zero enters at the top), so that a reader sweeping the units
    in order finds unit ``j`` in ``head`` after ``j`` shifts: no ``units``-way multiplexer.
    The straight-through gate and the rounding shift are applied by the reader.

    Parameters
    ----------
    units : int
        Number of accumulators (inputs of the weight rows).
    delta_bound : int
        ``|delta| <= delta_bound``.
    rows : int
        Rows accumulated between two clears; the accumulators hold ``rows * delta_bound``.
    weight_kind : str
        ``"binary"`` or ``"ternary"``.

    Members
    -------
    clear, en, shift : ``In(1)``
    masks : ``In(ArrayLayout(unsigned(units), 1 or 2))``
    delta : ``In(signed)``
    acc : ``Out(ArrayLayout(acc_shape, units))``
    head : ``Out(acc_shape)``
        ``acc[0]``.
    """

    def __init__(self, units: int, *, delta_bound: int, rows: int,
                 weight_kind: str = "binary"):
        for name, value in (("Units", units), ("Delta bound", delta_bound), ("Rows", rows)):
            if not isinstance(value, int) or value <= 0:
                raise TypeError(f"{name} must be a positive integer, not {value!r}")
        if weight_kind not in ("binary", "ternary"):
            raise ValueError(f"Weight kind must be 'binary' or 'ternary', not {weight_kind!r}")
        self.units, self.weight_kind = units, weight_kind
        self.n_masks = 2 if weight_kind == "ternary" else 1
        self.delta_shape = signed_shape(-delta_bound, delta_bound)
        self.acc_bound = rows * delta_bound
        self.acc_shape = signed_shape(-self.acc_bound, self.acc_bound)
        super().__init__({
            "clear": In(1),
            "en": In(1),
            "shift": In(1),
            "masks": In(data.ArrayLayout(unsigned(units), self.n_masks)),
            "delta": In(self.delta_shape),
            "acc": Out(data.ArrayLayout(self.acc_shape, units)),
            "head": Out(self.acc_shape),
        })

    def elaborate(self, platform):
        m = Module()
        acc = Signal(data.ArrayLayout(self.acc_shape, self.units))
        m.d.comb += [self.acc.eq(acc), self.head.eq(acc[0])]
        plus = self.masks[0]
        with m.If(self.clear):
            m.d.sync += acc.eq(0)
        with m.Elif(self.shift):
            m.d.sync += acc.eq(acc.as_value()[self.acc_shape.width:])
        with m.Elif(self.en):
            for j in range(self.units):
                added = Mux(plus[j], acc[j] + self.delta, acc[j] - self.delta)
                if self.weight_kind == "ternary":
                    added = Mux(plus[j] | self.masks[1][j], added, acc[j])
                m.d.sync += acc[j].eq(added)
        return m
