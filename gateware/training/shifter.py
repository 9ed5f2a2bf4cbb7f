"""Barrel shifter: a right shift by a run-time amount, rounded to nearest."""

from amaranth.hdl import Cat, Const, Module, Mux, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["BarrelShifter"]


class BarrelShifter(wiring.Component):
    """``result = round(value / 2**amount)``, ties rounded up, for an unsigned ``value``.

    A logarithmic shifter: stage ``b`` shifts by ``2**b`` when bit ``b`` of ``amount`` is set,
    a multiplexer per bit and stage. One extra bit below the binary point is carried through
    the stages and added back at the end, which rounds to nearest. Combinational.

    Parameters
    ----------
    width : int
        Bits of ``value`` and ``result``.
    max_shift : int
        Largest ``amount``; larger shifts give 0 (or 1 when rounding up).

    Members
    -------
    value : ``In(unsigned(width))``
    amount : ``In(range(max_shift + 1))``
    result : ``Out(unsigned(width))``
    """

    def __init__(self, width: int, max_shift: int):
        if not isinstance(width, int) or isinstance(width, bool) or width <= 0:
            raise TypeError(f"Width must be a positive integer, not {width!r}")
        if not isinstance(max_shift, int) or isinstance(max_shift, bool) or max_shift < 0:
            raise TypeError(f"Maximum shift must be a non-negative integer, not {max_shift!r}")
        self.width = width
        self.max_shift = max_shift
        super().__init__({
            "value": In(unsigned(width)),
            "amount": In(range(max_shift + 1)),
            "result": Out(unsigned(width)),
        })

    def elaborate(self, platform):
        m = Module()
        v = Cat(Const(0, 1), self.value)            # value << 1: one rounding bit
        for b, bit in enumerate(self.amount):
            v = Mux(bit, v >> (1 << b), v)
        m.d.comb += self.result.eq((v >> 1) + v[0])
        return m
