"""Linear-feedback shift register that yields several random bits per cycle."""

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["Lfsr"]


class Lfsr(wiring.Component):
    """Fibonacci LFSR advanced ``bits`` steps per enabled cycle.

    One step computes ``b = XOR of state[t - 1] for t in taps`` and shifts it in at bit 0:
    ``state <- (state << 1 | b)`` truncated. ``bits`` shows the next ``bits`` outputs (the
    first in bit 0) combinationally; they are consumed, and the state moves on, in a cycle
    with ``advance`` set. The ``bits`` steps are unrolled into an XOR network.

    Parameters
    ----------
    width : int
        State bits.
    taps : tuple of int
        1-based tap positions, each in ``1..width``.
    seed : int
        Non-zero reset state.
    bits : int
        Output bits per cycle.

    Members
    -------
    advance : ``In(1)``
    bits : ``Out(bits)``
    """

    def __init__(self, *, width: int, taps, seed: int, bits: int):
        if not isinstance(width, int) or width <= 1:
            raise TypeError(f"Width must be an integer greater than 1, not {width!r}")
        taps = tuple(taps)
        if not taps or any(not isinstance(t, int) or not 1 <= t <= width for t in taps):
            raise ValueError(f"Taps must be integers in 1..{width}, not {taps!r}")
        if not isinstance(seed, int) or not 0 < seed < (1 << width):
            raise ValueError(f"Seed must be a non-zero {width}-bit integer, not {seed!r}")
        if not isinstance(bits, int) or bits <= 0:
            raise TypeError(f"Bits per cycle must be a positive integer, not {bits!r}")
        self.width, self.taps, self.seed, self.n_bits = width, taps, seed, bits
        super().__init__({"advance": In(1), "bits": Out(bits)})

    def elaborate(self, platform):
        m = Module()
        state = Signal(self.width, init=self.seed)
        s = list(state)
        outs = []
        for _ in range(self.n_bits):
            b = s[self.taps[0] - 1]
            for t in self.taps[1:]:
                b = b ^ s[t - 1]
            outs.append(b)
            s = [b] + s[:-1]
        m.d.comb += self.bits.eq(Cat(*outs))
        with m.If(self.advance):
            m.d.sync += state.eq(Cat(*s))
        return m
