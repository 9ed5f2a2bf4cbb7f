"""Forward unit: one neuron's sum over a row of binary weights, by popcounts."""

from amaranth.hdl import Cat, Module, Signal, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from ..mvu import signed_shape, sum_bound
from ..popcount import popcount

__all__ = ["RowDot"]


class RowDot(wiring.Component):
    """``sum = sum_j sign_j * x_j`` with ``sign_j = +1`` where bit ``j`` of ``signs`` is set.

    For bipolar inputs (bit 1 means +1) the sum is ``2 popcount(XNOR(x, signs)) - N``; for
    ``k``-bit unsigned inputs it goes bit-plane by bit-plane,
    ``sum_i 2^i (2 popcount(x_i AND signs) - popcount(x_i))``. Combinational.

    Parameters
    ----------
    n_inputs : int
        ``N``.
    input_kind : str
        ``"bipolar"`` or ``"unsigned"``.
    input_bits : int
        ``k`` (1 for bipolar inputs).

    Members
    -------
    signs : ``In(n_inputs)``
    x : ``In(ArrayLayout(unsigned(input_bits), n_inputs))``
    sum : ``Out(sum_shape)``
    """

    def __init__(self, n_inputs: int, *, input_kind: str, input_bits: int):
        self.bound = sum_bound(n_inputs, input_kind, input_bits)
        self.n_inputs, self.input_kind, self.input_bits = n_inputs, input_kind, input_bits
        self.sum_shape = signed_shape(-self.bound, self.bound)
        super().__init__({
            "signs": In(n_inputs),
            "x": In(data.ArrayLayout(unsigned(input_bits), n_inputs)),
            "sum": Out(self.sum_shape),
        })

    def elaborate(self, platform):
        m = Module()
        n = self.n_inputs

        def wire(value, name):
            sig = Signal(len(value), name=name)
            m.d.comb += sig.eq(value)
            return sig

        # Differences wrap modulo their width; the true sum fits `sum_shape`.
        if self.input_kind == "bipolar":
            match = wire(~(self.x.as_value() ^ self.signs), "match")
            m.d.comb += self.sum.eq((popcount(match) << 1) - n)
        else:
            planes = [wire(Cat(self.x[j][i] for j in range(n)), f"plane_{i}")
                      for i in range(self.input_bits)]
            total = sum(popcount(plane) << i for i, plane in enumerate(planes))
            agree = sum(popcount(wire(plane & self.signs, f"and_{i}")) << i
                        for i, plane in enumerate(planes))
            m.d.comb += self.sum.eq((agree << 1) - total)
        return m
