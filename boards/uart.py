"""8N1 UART receiver and transmitter with byte streams, and the serial rates a board can use.

Both count ``divisor`` clock cycles per bit, ``clock_hz / baud``. A whole divisor counts the
same cycles every bit; a fractional one (a :class:`~fractions.Fraction` such as ``25/3``, which
gives 3 Mbaud on a 25 MHz clock) alternates between its floor and ceiling so that the bit edges
never drift by more than a cycle from the exact rate (a first-order accumulator, no
multiplier). The receiver samples the middle of each bit after a synchronizer, timing each byte
from its start bit; the transmitter drives the line from a register, so neither adds
combinational paths to the pins.

:func:`check_baud` checks a rate at build time at both ends of the line: the board's divisor
and the USB serial bridge's (:data:`BRIDGES`: the FTDI chips, whose rates are ``base / (n +
k/8)``), and refuses a rate where the two ends differ by more than :data:`BAUD_TOLERANCE`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out

__all__ = ["check_divisor", "baud_divisor", "check_baud", "BaudError", "Bridge", "BRIDGES",
           "BAUD_TOLERANCE", "MAX_DENOMINATOR", "UARTReceiver", "UARTTransmitter"]

#: Largest difference between the rates of the two ends of the line that a rate may have
#: (relative to the rate asked for): 8N1 tolerates about 5 % between the ends before a
#: receiver samples the stop bit outside it; this keeps half of that for the receivers'
#: sampling-point quantization (a cycle in ``divisor``) and the oscillators.
BAUD_TOLERANCE = 0.02
#: Largest denominator of a fractional divisor: the accumulator that spreads the fraction over
#: the bits counts to it.
MAX_DENOMINATOR = 16


class BaudError(ValueError):
    """A serial rate that the board or its USB serial bridge cannot make closely enough."""


@dataclass(frozen=True)
class Bridge:
    """A USB serial bridge chip and the rates it makes: ``base * 8 / m`` for an integer ``m``
    (``base / (n + k/8)``), ``m`` either 8, 12 (the special divisors 1 and 1.5) or at least
    16; a driver asks for the ``m`` nearest the rate (Linux ``ftdi_sio``, libftdi).

    Attributes
    ----------
    name : str
    base_hz : int
        The fastest rate, ``m = 8``.
    max_eighths : int
        Largest ``m`` (a 14-bit divisor with 3 fraction bits).
    """
    name: str
    base_hz: int
    max_eighths: int = 8 * 16384 - 1

    def rate(self, baud: float) -> float | None:
        """The rate the chip makes when a host asks for ``baud``; None when the nearest divisor
        is one the chip lacks (between 1 and 2, except 1.5) or out of range."""
        m = round(8 * self.base_hz / baud)
        if m in (8, 12) or 16 <= m <= self.max_eighths:
            return 8 * self.base_hz / m
        return None

    def rates(self, low: float, high: float) -> list[int]:
        """The chip's rates between ``low`` and ``high`` (rounded to whole baud), fastest
        first."""
        ms = [8, 12, *range(16, self.max_eighths + 1)]
        return [round(8 * self.base_hz / m) for m in ms if low <= 8 * self.base_hz / m <= high]


#: The boards' bridges. The iCEBreaker's FT2232H (high-speed USB) runs its UART from 12 MHz; the
#: ULX3S's FT231X (full-speed USB) from 3 MHz.
BRIDGES = {"FT2232H": Bridge("FT2232H", 12_000_000), "FT231X": Bridge("FT231X", 3_000_000)}


def check_divisor(divisor) -> int | Fraction:
    """Check a clocks-per-bit count, whole or a fraction of denominator at most
    :data:`MAX_DENOMINATOR`; the receiver needs at least 4 to find a bit's middle."""
    if isinstance(divisor, Fraction) and divisor.denominator == 1:
        divisor = int(divisor)
    ok = (isinstance(divisor, int) and not isinstance(divisor, bool)) or (
        isinstance(divisor, Fraction) and divisor.denominator <= MAX_DENOMINATOR)
    if not ok or divisor < 4:
        raise ValueError(f"Divisor must be an integer or a fraction of denominator at most "
                         f"{MAX_DENOMINATOR}, of at least 4 clocks per bit, not {divisor!r}")
    return divisor


def baud_divisor(clock_hz: float, baud: int) -> int | Fraction:
    """Clocks per bit for ``baud`` at ``clock_hz``: ``clock_hz / baud``, whole when it is,
    else the nearest fraction of denominator at most :data:`MAX_DENOMINATOR`; rejects a rate
    that this is off by more than :data:`BAUD_TOLERANCE`.

    Raises
    ------
    BaudError
        When the clock cannot produce the baud rate closely enough for 8N1 framing.
    """
    if not isinstance(baud, int) or isinstance(baud, bool) or baud <= 0:
        raise BaudError(f"Baud rate must be a positive integer, not {baud!r}")
    exact = Fraction(round(clock_hz), baud)
    divisor = exact.limit_denominator(MAX_DENOMINATOR)
    if divisor < 4:
        raise BaudError(f"Baud rate {baud} is too fast for a {clock_hz / 1e6:g} MHz clock "
                        f"(at most {int(clock_hz // 4)}: 4 clocks per bit)")
    error = abs(clock_hz / divisor - baud) / baud
    if error > BAUD_TOLERANCE:
        raise BaudError(f"Baud rate {baud} is {100 * error:.1f} % off at {clock_hz / 1e6:g} MHz "
                        f"(divisor {divisor}); choose a rate within "
                        f"{100 * BAUD_TOLERANCE:g} %")
    return check_divisor(divisor.numerator if divisor.denominator == 1 else divisor)


def _mismatch(clock_hz: float, baud: int, bridge: Bridge | None) -> tuple[float, str] | None:
    """The relative difference between the two ends at ``baud`` and a description of the two
    rates, or None when one end cannot make it at all."""
    exact = Fraction(round(clock_hz), baud)
    divisor = exact.limit_denominator(MAX_DENOMINATOR)
    if divisor < 4:
        return None
    board_rate = clock_hz / divisor
    text = f"the board makes {board_rate:,.0f} ({clock_hz / 1e6:g} MHz / {divisor})"
    if bridge is None:
        return abs(board_rate - baud) / baud, text
    bridge_rate = bridge.rate(baud)
    if bridge_rate is None:
        return None
    return (max(abs(board_rate - bridge_rate), abs(board_rate - baud), abs(bridge_rate - baud))
            / baud, f"{text}, its {bridge.name} {bridge_rate:,.0f}")


def good_rates(clock_hz: float, bridge: Bridge | None, near: int,
               tolerance: float = BAUD_TOLERANCE) -> tuple[int | None, int | None]:
    """The fastest good rate at most ``near`` and the slowest above it (None where there is
    none): rates the bridge makes (or, without one, the board's ``clock_hz / d``) whose ends
    agree within ``tolerance``."""
    top = clock_hz / 4
    if bridge is not None:
        candidates = bridge.rates(300, top)
    else:
        candidates = sorted({round(clock_hz / d) for d in range(4, 1 << 16)
                             if clock_hz / d >= 300}, reverse=True)
    def good(c: int) -> bool:
        found = _mismatch(clock_hz, c, bridge)
        return found is not None and found[0] <= tolerance

    below = next((c for c in sorted((c for c in candidates if c <= near), reverse=True)
                  if good(c)), None)
    above = next((c for c in sorted(c for c in candidates if c > near) if good(c)), None)
    return below, above


def check_baud(clock_hz: float, baud: int, bridge: Bridge | str | None = None,
               tolerance: float = BAUD_TOLERANCE) -> int | Fraction:
    """The board's divisor for ``baud``, after checking both ends of the line.

    The board's rate is ``clock_hz / divisor`` (:func:`baud_divisor`), the bridge's what it
    makes when the host asks for ``baud`` (:meth:`Bridge.rate`); each and the difference
    between them must be within ``tolerance`` of ``baud``.

    Raises
    ------
    BaudError
        One line naming both rates and the nearest good rates.
    """
    if isinstance(bridge, str):
        bridge = BRIDGES[bridge]
    if not isinstance(baud, int) or isinstance(baud, bool) or baud <= 0:
        raise BaudError(f"Baud rate must be a positive integer, not {baud!r}")
    found = _mismatch(clock_hz, baud, bridge)
    if found is None or found[0] > tolerance:
        below, above = good_rates(clock_hz, bridge, baud, tolerance)
        nearest = " or ".join(f"{r}" for r in (below, above) if r is not None)
        if found is None:
            why = (f"too fast for the board's {clock_hz / 1e6:g} MHz clock (4 clocks per bit)"
                   if clock_hz / baud < 4 else f"not a rate the {bridge.name} makes")
        else:
            why = f"{found[1]}: {100 * found[0]:.1f} % apart, over {100 * tolerance:g} %"
        raise BaudError(f"baud rate {baud} cannot be used: {why}; nearest good rates: "
                        f"{nearest or 'none'}")
    return baud_divisor(clock_hz, baud)


class _BitTimer:
    """The cycle counter of the bits: :meth:`start_bit` starts a bit of ``divisor`` cycles (the
    floor or the ceiling of a fractional one, chosen by a first-order accumulator, ``phase``),
    :meth:`wait` a wait of a whole number of cycles, ``done`` is high in the last cycle and
    :meth:`count` counts down. Statements go to ``m.d.sync`` in the caller's context."""

    def __init__(self, m: Module, divisor, name: str):
        self.m = m
        d = Fraction(divisor)
        self.whole, self.num, self.den = math.floor(d), d.numerator % d.denominator, d.denominator
        self.timer = Signal(range(self.whole + 1), name=f"{name}_timer")
        self.phase = Signal(range(self.den), name=f"{name}_phase") if self.num else None
        self.done = self.timer == 0

    def wait(self, cycles: int, *, restart_phase: bool = False) -> None:
        self.m.d.sync += self.timer.eq(cycles - 1)
        if restart_phase and self.phase is not None:
            self.m.d.sync += self.phase.eq(0)

    def start_bit(self) -> None:
        m = self.m
        if self.phase is None:
            m.d.sync += self.timer.eq(self.whole - 1)
            return
        with m.If(self.phase >= self.den - self.num):
            m.d.sync += [self.timer.eq(self.whole),
                         self.phase.eq(self.phase + self.num - self.den)]
        with m.Else():
            m.d.sync += [self.timer.eq(self.whole - 1), self.phase.eq(self.phase + self.num)]

    def count(self) -> None:
        self.m.d.sync += self.timer.eq(self.timer - 1)


class UARTReceiver(wiring.Component):
    """Receives 8N1 bytes from ``rx``.

    A byte whose stop bit is low (a framing error, or a break) is dropped.

    Parameters
    ----------
    divisor : int or Fraction
        Clock cycles per bit, at least 4 (see :func:`check_divisor`).

    Members
    -------
    rx : ``In(1)``
        The serial line (idle high); synchronized inside.
    o : ``Out(stream.Signature(8, always_ready=True))``
        One transfer per received byte, least significant bit first on the line.
    """

    def __init__(self, divisor):
        self.divisor = check_divisor(divisor)
        super().__init__({"rx": In(1, init=1), "o": Out(stream.Signature(8, always_ready=True))})

    def elaborate(self, platform):
        m = Module()
        rx = Signal(init=1)
        m.submodules.sync = FFSynchronizer(self.rx, rx, init=1)
        bit = _BitTimer(m, self.divisor, "bit")
        bits = Signal(range(9))
        shift = Signal(8)
        m.d.sync += self.o.valid.eq(0)
        with m.FSM():
            with m.State("idle"):
                with m.If(~rx):
                    # the middle of the start bit; each byte's bits are timed from it
                    bit.wait(math.floor(Fraction(self.divisor) / 2), restart_phase=True)
                    m.next = "start"
            with m.State("start"):
                with m.If(~bit.done):
                    bit.count()
                with m.Elif(rx):             # a glitch, not a start bit
                    m.next = "idle"
                with m.Else():
                    bit.start_bit()
                    m.d.sync += bits.eq(0)
                    m.next = "data"
            with m.State("data"):
                with m.If(~bit.done):
                    bit.count()
                with m.Else():
                    bit.start_bit()
                    m.d.sync += [shift.eq(Cat(shift[1:], rx)), bits.eq(bits + 1)]
                    with m.If(bits == 7):
                        m.next = "stop"
            with m.State("stop"):
                with m.If(~bit.done):
                    bit.count()
                with m.Else():
                    with m.If(rx):
                        m.d.sync += [self.o.payload.eq(shift), self.o.valid.eq(1)]
                    m.next = "idle"
        return m


class UARTTransmitter(wiring.Component):
    """Sends 8N1 bytes on ``tx``.

    Parameters
    ----------
    divisor : int or Fraction
        Clock cycles per bit, at least 4 (see :func:`check_divisor`); a fractional one's
        accumulator runs on across bytes, so back-to-back bytes keep the exact rate.

    Members
    -------
    i : ``In(stream.Signature(8))``
        Bytes to send; ``ready`` while the transmitter is idle and in the last cycle of a stop
        bit, so that bytes sent back to back follow each other without a gap.
    tx : ``Out(1)``
        The serial line, idle high, driven from a register.
    """

    def __init__(self, divisor):
        self.divisor = check_divisor(divisor)
        super().__init__({"i": In(stream.Signature(8)), "tx": Out(1, init=1)})

    def elaborate(self, platform):
        m = Module()
        bit = _BitTimer(m, self.divisor, "bit")
        frame = Signal(10, init=0x3FF)      # stop bit, 8 data bits, start bit; LSB goes first
        left = Signal(range(11))
        # ready while idle and in the stop bit's last cycle: back-to-back bytes leave no gap
        m.d.comb += self.i.ready.eq((left == 0) | ((left == 1) & bit.done))
        m.d.comb += self.tx.eq(frame[0])
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [frame.eq((1 << 9) | (self.i.payload << 1)), left.eq(10)]
            bit.start_bit()
        with m.Elif(left == 0):
            pass
        with m.Elif(~bit.done):
            bit.count()
        with m.Else():
            m.d.sync += [frame.eq((frame >> 1) | (1 << 9)), left.eq(left - 1)]
            bit.start_bit()
        return m
