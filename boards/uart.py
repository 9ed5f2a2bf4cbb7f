"""8N1 UART receiver and transmitter with byte streams.

Both count ``divisor`` clock cycles per bit (``divisor = clock_hz // baud``);
the receiver samples the middle of each bit after a synchronizer, the
transmitter drives the line from a register, so neither adds combinational
paths to the pins.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out

__all__ = ["check_divisor", "baud_divisor", "UARTReceiver", "UARTTransmitter"]


def check_divisor(divisor: int) -> int:
    """Check a clocks-per-bit count; the receiver needs at least 4 to find a bit's middle."""
    if not isinstance(divisor, int) or isinstance(divisor, bool) or divisor < 4:
        raise ValueError(f"Divisor must be an integer of at least 4 clocks per bit, "
                         f"not {divisor!r}")
    return divisor


def baud_divisor(clock_hz: float, baud: int) -> int:
    """Clocks per bit for ``baud`` at ``clock_hz``; rejects rates off by more than 2 %.

    Raises
    ------
    ValueError
        When the clock cannot produce the baud rate closely enough for 8N1 framing.
    """
    if not isinstance(baud, int) or baud <= 0:
        raise ValueError(f"Baud rate must be a positive integer, not {baud!r}")
    divisor = round(clock_hz / baud)
    if divisor < 4:
        raise ValueError(f"Baud rate {baud} is too fast for a {clock_hz / 1e6:g} MHz clock "
                         f"(at most {int(clock_hz // 4)})")
    error = abs(clock_hz / divisor - baud) / baud
    if error > 0.02:
        raise ValueError(f"Baud rate {baud} is {100 * error:.1f} % off at {clock_hz / 1e6:g} MHz "
                         f"(divisor {divisor}); choose a rate within 2 %")
    return divisor


class UARTReceiver(wiring.Component):
    """Receives 8N1 bytes from ``rx``.

    A byte whose stop bit is low (a framing error, or a break) is dropped.

    Parameters
    ----------
    divisor : int
        Clock cycles per bit, at least 4.

    Members
    -------
    rx : ``In(1)``
        The serial line (idle high); synchronized inside.
    o : ``Out(stream.Signature(8, always_ready=True))``
        One transfer per received byte, least significant bit first on the line.
    """

    def __init__(self, divisor: int):
        self.divisor = check_divisor(divisor)
        super().__init__({"rx": In(1, init=1), "o": Out(stream.Signature(8, always_ready=True))})

    def elaborate(self, platform):
        m = Module()
        rx = Signal(init=1)
        m.submodules.sync = FFSynchronizer(self.rx, rx, init=1)
        timer = Signal(range(self.divisor * 3 // 2 + 1))
        bits = Signal(range(9))
        shift = Signal(8)
        m.d.sync += self.o.valid.eq(0)
        with m.FSM():
            with m.State("idle"):
                with m.If(~rx):
                    m.d.sync += timer.eq(self.divisor // 2 - 1)
                    m.next = "start"
            with m.State("start"):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Elif(rx):             # a glitch, not a start bit
                    m.next = "idle"
                with m.Else():
                    m.d.sync += [timer.eq(self.divisor - 1), bits.eq(0)]
                    m.next = "data"
            with m.State("data"):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Else():
                    m.d.sync += [timer.eq(self.divisor - 1), shift.eq(Cat(shift[1:], rx)),
                                 bits.eq(bits + 1)]
                    with m.If(bits == 7):
                        m.next = "stop"
            with m.State("stop"):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Else():
                    with m.If(rx):
                        m.d.sync += [self.o.payload.eq(shift), self.o.valid.eq(1)]
                    m.next = "idle"
        return m


class UARTTransmitter(wiring.Component):
    """Sends 8N1 bytes on ``tx``.

    Parameters
    ----------
    divisor : int
        Clock cycles per bit, at least 4.

    Members
    -------
    i : ``In(stream.Signature(8))``
        Bytes to send; ``ready`` while the transmitter is idle.
    tx : ``Out(1)``
        The serial line, idle high, driven from a register.
    """

    def __init__(self, divisor: int):
        self.divisor = check_divisor(divisor)
        super().__init__({"i": In(stream.Signature(8)), "tx": Out(1, init=1)})

    def elaborate(self, platform):
        m = Module()
        timer = Signal(range(self.divisor))
        frame = Signal(10, init=0x3FF)      # stop bit, 8 data bits, start bit; LSB goes first
        left = Signal(range(11))
        m.d.comb += self.i.ready.eq(left == 0)
        m.d.comb += self.tx.eq(frame[0])
        with m.If(left == 0):
            with m.If(self.i.valid):
                m.d.sync += [frame.eq((1 << 9) | (self.i.payload << 1)), left.eq(10),
                             timer.eq(self.divisor - 1)]
        with m.Elif(timer != 0):
            m.d.sync += timer.eq(timer - 1)
        with m.Else():
            m.d.sync += [frame.eq((frame >> 1) | (1 << 9)), left.eq(left - 1),
                         timer.eq(self.divisor - 1)]
        return m
