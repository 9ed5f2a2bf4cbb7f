"""Frames from the bytes of a serial line: the receiving end shared by the board links.

Every frame the host sends a board is a sync byte, which names the frame's kind, then a fixed
number of bytes for that kind (:mod:`fewmul.boards.protocol`,
:mod:`fewmul.boards.train_protocol`). :class:`FrameReceiver` finds the frames in a
:class:`~fewmul.boards.uart.UARTReceiver`'s bytes and passes their bytes on, the last one
flagged; the inference link (:class:`~fewmul.boards.link.HostLink`) and the training link
(:class:`~fewmul.boards.train_link.TrainLink`) put them into their registers.
"""

from __future__ import annotations

import math

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .protocol import IDLE_TIMEOUT_BITS
from .uart import check_divisor

__all__ = ["FrameReceiver", "frame_byte_layout"]


def frame_byte_layout() -> data.StructLayout:
    """A byte of a frame (after its sync byte) and whether it is the frame's last."""
    return data.StructLayout({"data": 8, "last": 1})


class FrameReceiver(wiring.Component):
    """Frames of several kinds, each a sync byte and a fixed number of bytes, from a byte stream.

    A sync byte received while ``accept`` is high and no frame is being received starts a
    frame of its kind; any other byte between frames is ignored. The frame's bytes after the
    sync byte come out on ``o``, the last one flagged. A frame cut short is dropped when the
    line stays idle for :data:`~fewmul.boards.protocol.IDLE_TIMEOUT_BITS` bit times inside it
    (its bytes so far have come out, none of them flagged last).

    Every decision starts from registers: the byte is taken a cycle after the receiver gives
    it, with its compares to the sync bytes and ``accept`` of the cycle it was given, so the
    byte's transfer on ``o`` comes a cycle after it is received on ``i``. ``o`` is valid for
    one cycle and cannot be held: a unit whose wide register it feeds registers it again, so
    that the register's enable is a flip-flop.

    Parameters
    ----------
    lengths : dict of int to int
        Sync byte -> the bytes of the frame after it (at least one).
    divisor : int or Fraction
        Clock cycles per bit of the line, for the timeout (see :mod:`fewmul.boards.uart`).

    Attributes
    ----------
    lengths : dict of int to int
    syncs : list of int
        The sync bytes in the order of ``kind``'s bits.

    Members
    -------
    i : ``In(stream.Signature(8, always_ready=True))``
        The line's bytes (a :class:`~fewmul.boards.uart.UARTReceiver`'s ``o``).
    accept : ``In(1)``
        A frame may start: a sync byte given on ``i`` while it is low starts nothing.
    o : ``Out(stream.Signature(frame_byte_layout(), always_ready=True))``
        The frames' bytes after their sync bytes, ``last`` set on each frame's last byte.
    kind : ``Out(len(lengths))``
        One bit per sync byte (in ``syncs`` order): that of the frame received last, set from
        its sync byte until the next frame's.
    receiving : ``Out(1)``
        A frame is being received: its sync byte was taken, not yet its last byte.
    """

    def __init__(self, lengths: dict, divisor):
        if not isinstance(lengths, dict) or not lengths:
            raise ValueError(f"Frame lengths must be a non-empty dict of sync byte to length, "
                             f"not {lengths!r}")
        for sync, length in lengths.items():
            if not isinstance(sync, int) or isinstance(sync, bool) or not 0 <= sync < 256:
                raise ValueError(f"Sync byte must be an integer 0-255, not {sync!r}")
            if not isinstance(length, int) or isinstance(length, bool) or length < 1:
                raise ValueError(f"Frame length must be a positive integer, not {length!r}")
        self.lengths = dict(lengths)
        self.syncs = list(self.lengths)
        self.divisor = check_divisor(divisor)
        super().__init__({
            "i": In(stream.Signature(8, always_ready=True)),
            "accept": In(1),
            "o": Out(stream.Signature(frame_byte_layout(), always_ready=True)),
            "kind": Out(len(self.lengths)),
            "receiving": Out(1),
        })

    def kind_is(self, sync: int):
        """The bit of ``kind`` that is set while the frame last received began with ``sync``."""
        if sync not in self.lengths:
            raise ValueError(f"Sync byte must be one of {[hex(s) for s in self.syncs]}, "
                             f"not {sync!r}")
        return self.kind[self.syncs.index(sync)]

    def elaborate(self, platform):
        m = Module()
        # the byte a cycle after the receiver's, with its compares to the sync bytes and
        # `accept` of the cycle the receiver gave it
        valid, byte, accepted = Signal(), Signal(8), Signal()
        is_sync = Signal(len(self.syncs))
        m.d.sync += [valid.eq(self.i.valid), byte.eq(self.i.payload), accepted.eq(self.accept),
                     is_sync.eq(Cat(*[self.i.payload == sync for sync in self.syncs]))]
        # flags kept with the counters: `hunting == (no frame)`, `at_end == (left == 0)` while
        # a frame is received, `expired == (idle == timeout)`
        longest = max(self.lengths.values())
        left = Signal(range(longest))                   # bytes of the frame after the next one
        hunting, at_end, expired = Signal(init=1), Signal(), Signal()
        timeout = math.ceil(IDLE_TIMEOUT_BITS * self.divisor)
        idle = Signal(range(timeout + 1))
        m.d.comb += [self.o.valid.eq(valid & ~hunting), self.o.payload.data.eq(byte),
                     self.o.payload.last.eq(at_end), self.receiving.eq(~hunting)]

        def restart():
            return [hunting.eq(1), at_end.eq(0)]

        with m.If(valid):
            m.d.sync += [idle.eq(0), expired.eq(0)]
            with m.If(hunting):
                with m.If(accepted):
                    for index, (sync, length) in enumerate(self.lengths.items()):
                        with m.If(is_sync[index]):
                            m.d.sync += [hunting.eq(0), left.eq(length - 1),
                                         at_end.eq(length == 1), self.kind.eq(1 << index)]
            with m.Elif(at_end):
                m.d.sync += restart()
            with m.Else():
                m.d.sync += [left.eq(left - 1), at_end.eq(left == 1)]
        with m.Elif(~hunting):
            m.d.sync += [idle.eq(idle + 1), expired.eq(idle == timeout - 1)]
            with m.If(expired):
                m.d.sync += restart() + [idle.eq(0), expired.eq(0)]
        return m
