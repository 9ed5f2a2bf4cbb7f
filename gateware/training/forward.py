"""Forward unit: one neuron's sum over a row of binary or ternary weights, by popcounts."""

from amaranth.hdl import Cat, Module, Signal, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from fewmul.arith.dot import DotProduct

from ..popcount import pipelined_popcount
from ..widths import signed_shape

__all__ = ["RowDot"]


class RowDot(wiring.Component):
    """``sum = sum_j w_j * x_j`` for a row of weights ``w_j`` given as masks.

    The sum is the popcount form of :class:`~fewmul.arith.dot.DotProduct`, the same arithmetic
    as the inference datapath's matrix-vector unit. Binary weights (``w_j = +1`` where bit ``j``
    of ``masks[0]`` is set, else ``-1``): for bipolar inputs (bit 1 means +1)
    ``2 popcount(XNOR(x, masks[0])) - N``; for ``k``-bit unsigned inputs, bit-plane by bit-plane,
    ``sum_i 2^i (2 popcount(x_i AND masks[0]) - popcount(x_i))``. Ternary weights (``+1`` where
    ``masks[0]`` is set, ``-1`` where ``masks[1]`` is set, else 0): a positive and a negative
    popcount per plane. The popcounts go through ``stages`` registers
    (:func:`~fewmul.gateware.popcount.pipelined_popcount`): ``sum`` is that many cycles after its
    ``masks`` and ``x``; the final weighted sum is combinational.

    Parameters
    ----------
    n_inputs : int
        ``N``.
    input_kind : str
        ``"bipolar"`` or ``"unsigned"``.
    input_bits : int
        ``k`` (1 for bipolar inputs).
    weight_kind : str
        ``"binary"`` (one mask) or ``"ternary"`` (two masks).
    stages : int
        Registers in each popcount tree (0: combinational).

    Attributes
    ----------
    dot : DotProduct
        The popcount form of the sum.
    bound : int
        ``|sum| <= bound``.

    Members
    -------
    masks : ``In(ArrayLayout(unsigned(n_inputs), dot.masks))``
    x : ``In(ArrayLayout(unsigned(input_bits), n_inputs))``
    sum : ``Out(sum_shape)``
    """

    def __init__(self, n_inputs: int, *, input_kind: str, input_bits: int,
                 weight_kind: str = "binary", stages: int = 0):
        if not isinstance(stages, int) or stages < 0:
            raise TypeError(f"Stages must be a non-negative integer, not {stages!r}")
        self.stages = stages
        self.dot = DotProduct(input_kind, input_bits, weight_kind)
        self.bound = self.dot.sum_bound(n_inputs)
        self.n_inputs, self.input_kind, self.input_bits = n_inputs, input_kind, input_bits
        self.weight_kind = weight_kind
        self.sum_shape = signed_shape(-self.bound, self.bound)
        super().__init__({
            "masks": In(data.ArrayLayout(unsigned(n_inputs), self.dot.masks)),
            "x": In(data.ArrayLayout(unsigned(input_bits), n_inputs)),
            "sum": Out(self.sum_shape),
        })

    def elaborate(self, platform):
        m = Module()
        n, dot = self.n_inputs, self.dot
        masks = [self.masks[i] for i in range(dot.masks)]

        def count(term, plane, i):
            bits = Signal(n, name=f"{term.name}_{i}")
            m.d.comb += bits.eq(term.bits(plane, masks))
            return pipelined_popcount(m, bits, stages=self.stages, enable=1,
                                      name=f"{term.name}_count_{i}")

        # The positive and the negative popcounts are weighted by their planes and added
        # apart, and subtracted once; the true sum fits `sum_shape`.
        positive, negative = 0, 0
        for i in range(dot.planes):
            plane = Signal(n, name=f"plane_{i}")
            m.d.comb += plane.eq(Cat(self.x[j][i] for j in range(n)))
            positive = positive + (count(dot.positive, plane, i) << i)
            if dot.negative is not None:
                negative = negative + (count(dot.negative, plane, i) << i)
        total = dot.init(n) + (positive << dot.positive_shift) - negative
        m.d.comb += self.sum.eq(total)
        return m
