"""Quantized back-propagation: stochastic power-of-two rounding of an unsigned input."""

from amaranth.hdl import Module, Mux
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["QbpRounder"]


class QbpRounder(wiring.Component):
    """Exponent ``e`` of the power of two an unsigned input ``q > 0`` is rounded to.

    ``e = floor(log2 q)`` (a priority encoder), plus one when
    ``random mod 2**e < q mod 2**e``; with ``random`` uniform that has probability
    ``q / 2**e - 1``, so ``E[2**e] = q``. Combinational; ``zero`` flags ``q = 0``.

    Parameters
    ----------
    input_bits : int
        Bits ``k`` of ``q``; ``random`` has ``k - 1`` bits (at least 1).

    Members
    -------
    q : ``In(input_bits)``
    random : ``In(max(input_bits - 1, 1))``
    exponent : ``Out(range(input_bits + 1))``
    zero : ``Out(1)``
    """

    def __init__(self, input_bits: int):
        if not isinstance(input_bits, int) or not 1 <= input_bits <= 8:
            raise TypeError(f"Input bits must be an integer between 1 and 8, not {input_bits!r}")
        self.input_bits = input_bits
        super().__init__({
            "q": In(input_bits),
            "random": In(max(input_bits - 1, 1)),
            "exponent": Out(range(input_bits + 1)),
            "zero": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        k = self.input_bits
        floor = 0
        for b in range(1, k):                       # the highest set bit wins
            floor = Mux(self.q[b], b, floor)
        # (1 << floor) - 1 as a mask, by cases (no variable shift needed).
        mask = 0
        for b in range(1, k):
            mask = Mux(floor == b, (1 << b) - 1, mask)
        up = (self.random & mask) < (self.q & mask)
        m.d.comb += [
            self.exponent.eq(floor + up),
            self.zero.eq(self.q == 0),
        ]
        return m
