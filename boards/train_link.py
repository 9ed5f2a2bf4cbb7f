"""The UART link of a board that trains itself, and the board top that puts it on the pins.

:class:`TrainLink` puts an :class:`~fewmul.gateware.training.OnChipTrainer` behind the UART
and the frame receiver of the inference link (:mod:`fewmul.boards.uart`,
:mod:`fewmul.boards.frames`): training samples and inference requests from ``rx`` become the
trainer's input stream, weight-row reads its read-out requests, and its predictions and rows
go out on ``tx`` as frames (:mod:`fewmul.boards.train_protocol`).
:class:`FrameSender` sends a frame of any length from one register, with the check byte of
the weight frames (:func:`~fewmul.boards.protocol.weight_frame_check`) when asked.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .link import DEFAULT_BAUD, UartTop
from .frames import FrameReceiver
from .protocol import RESULT_SYNC
from .train_protocol import INFER_SYNC, READ_SYNC, ROW_SYNC, TRAIN_SYNC, TrainLinkFormat
from .uart import UARTReceiver, UARTTransmitter, check_divisor

__all__ = ["FrameSender", "TrainLink", "TrainBoardTop"]


class FrameSender(wiring.Component):
    """Frames of up to ``max_bytes`` bytes, taken whole from ``load``, onto a byte stream.

    A frame is ``length`` bytes of ``data`` from its low end (its sync byte first); with
    ``check`` set, a check byte follows: the XOR of the frame's bytes after the first, as
    :func:`~fewmul.boards.protocol.weight_frame_check` computes it. A frame is taken from
    ``load`` into a register while that is free, and from there into the frame register once
    the last byte of the one before has gone, so a unit giving frames is held no longer than
    one frame.

    Parameters
    ----------
    max_bytes : int
        The longest frame, check byte not counted.

    Members
    -------
    load : ``In(stream.Signature(StructLayout({"data": 8 * max_bytes, "length": range(max_bytes + 1), "check": 1})))``
    tx : ``Out(stream.Signature(8))``
    """

    def __init__(self, max_bytes: int):
        if not isinstance(max_bytes, int) or isinstance(max_bytes, bool) or max_bytes < 1:
            raise ValueError(f"Frame length must be a positive integer, not {max_bytes!r}")
        self.max_bytes = max_bytes
        layout = data.StructLayout({"data": 8 * max_bytes, "length": range(max_bytes + 1),
                                    "check": 1})
        super().__init__({"load": In(stream.Signature(layout)), "tx": Out(stream.Signature(8))})

    def elaborate(self, platform):
        m = Module()
        frame = Signal(8 * self.max_bytes)
        left = Signal(range(self.max_bytes + 1))   # frame bytes still to send
        sending, tail, with_check = Signal(), Signal(), Signal()
        check = Signal(8)
        # The byte on `tx` is a register of its own: the frame moves on only while it is
        # empty, so the wide frame register's enable comes from registers, not from the
        # transmitter's `ready` (a path across the chip on a large design).
        byte, full = Signal(8), Signal()
        # Likewise a frame offered on `load` is taken into a register of its own first, and
        # moves into the frame register once the frame before has gone.
        pending, waiting = Signal.like(self.load.payload), Signal()
        # The frame register (up to a few hundred bits) loads or shifts in the cycle after
        # that is decided, on one register each (`take`, `advance`): its enable is then two
        # flip-flops, not a decode of the sender's state routed to every bit. A byte takes
        # many cycles on the line, so the cycle this costs per byte is never seen.
        take, advance = Signal(), Signal()
        m.d.comb += [self.load.ready.eq(~waiting), self.tx.valid.eq(full),
                     self.tx.payload.eq(byte)]
        with m.If(self.load.valid & self.load.ready):
            m.d.sync += [pending.eq(self.load.payload), waiting.eq(1)]
        with m.If(self.tx.valid & self.tx.ready):
            m.d.sync += full.eq(0)
        # Each is a one-cycle pulse: in its cycle the conditions still hold (they change at
        # its edge), and a second pulse would load or shift the frame twice.
        m.d.sync += [take.eq(waiting & ~sending & ~full & ~take),
                     advance.eq(sending & ~full & ~advance)]
        with m.If(take):
            m.d.sync += waiting.eq(0)
            payload = pending
            # the check starts as the sync byte, which the first byte sent cancels
            m.d.sync += [frame.eq(payload.data), left.eq(payload.length),
                         with_check.eq(payload.check), check.eq(payload.data[:8]),
                         sending.eq(payload.length != 0), tail.eq(0)]
        with m.If(advance):
            m.d.sync += full.eq(1)
            with m.If(tail):
                m.d.sync += [byte.eq(check), tail.eq(0), sending.eq(0)]
            with m.Else():
                m.d.sync += [byte.eq(frame[:8]), frame.eq(frame >> 8),
                             check.eq(check ^ frame[:8]), left.eq(left - 1)]
                with m.If(left == 1):
                    with m.If(with_check):
                        m.d.sync += tail.eq(1)
                    with m.Else():
                        m.d.sync += sending.eq(0)
        return m


class TrainLink(wiring.Component):
    """An :class:`~fewmul.gateware.training.OnChipTrainer` behind a UART.

    A :class:`~fewmul.boards.frames.FrameReceiver` finds the frames; one shift register takes
    their bytes from the top (a byte the cycle after the frame receiver gives it, so every
    bit's enable is a register): a training sample's label and pixels, an inference request's
    pixels (the same place, so the trainer's payload is a fixed slice of the register), or a
    read's layer and row. Its last byte makes the trainer's ``i`` or ``rd_req`` valid, until
    the trainer takes it; meanwhile a sync byte is ignored, so requests reach the trainer in
    the order they came. Predictions and rows go out through one :class:`FrameSender` (the
    trainer gives one at a time).

    Parameters
    ----------
    trainer : OnChipTrainer
    divisor : int or Fraction
        Clock cycles per bit, at least 4 (see :mod:`fewmul.boards.uart`).

    Attributes
    ----------
    format : TrainLinkFormat

    Members
    -------
    rx : ``In(1)``
    tx : ``Out(1)``
    """

    def __init__(self, trainer, divisor):
        self.trainer = trainer
        self.divisor = check_divisor(divisor)
        self.format = TrainLinkFormat.of(trainer, self.divisor)
        super().__init__({"rx": In(1, init=1), "tx": Out(1, init=1)})

    def elaborate(self, platform):
        m = Module()
        fmt = self.format
        m.submodules.uart_rx = urx = UARTReceiver(self.divisor)
        m.submodules.uart_tx = utx = UARTTransmitter(self.divisor)
        m.submodules.trainer = net = self.trainer
        m.submodules.sender = sender = FrameSender(1 + fmt.row_bytes)
        m.d.comb += [urx.rx.eq(self.rx), self.tx.eq(utx.tx)]
        wiring.connect(m, sender.tx, utx.i)

        # -- frames in ------------------------------------------------------------------
        size = max(1 + fmt.in_bytes, 3)
        buf = Signal(8 * size)
        low = 8 * (size - fmt.in_bytes)           # where the pixels end up, whatever the frame
        sample = net.i.payload
        m.d.comb += [
            sample.pixels.eq(buf[low:low + fmt.input_count * fmt.input_bits]),
            sample.label.eq(buf[low - 8:low - 8 + len(sample.label)]),
            net.rd_req.payload.layer.eq(buf[8 * (size - 3):8 * (size - 2)]),
            net.rd_req.payload.row.eq(buf[8 * (size - 2):]),
        ]
        m.submodules.frames = frames = FrameReceiver(
            {TRAIN_SYNC: 1 + fmt.in_bytes, INFER_SYNC: fmt.in_bytes, READ_SYNC: 3}, self.divisor)
        wiring.connect(m, urx.o, frames.i)
        reading = frames.kind_is(READ_SYNC)
        m.d.comb += sample.train.eq(frames.kind_is(TRAIN_SYNC))
        byte, shift, last = Signal(8), Signal(), Signal()
        # the next frame waits while a request waits for the trainer or its last byte is on
        # the way, so requests reach the trainer in the order they came
        m.d.comb += frames.accept.eq(~(net.i.valid | net.rd_req.valid | shift
                                       | frames.o.valid))
        with m.If(net.i.valid & net.i.ready):
            m.d.sync += net.i.valid.eq(0)
        with m.If(net.rd_req.valid & net.rd_req.ready):
            m.d.sync += net.rd_req.valid.eq(0)
        m.d.sync += shift.eq(0)
        with m.If(shift):
            m.d.sync += buf.eq(Cat(buf[8:], byte))
            with m.If(last):
                with m.If(reading):
                    m.d.sync += net.rd_req.valid.eq(1)
                with m.Else():
                    m.d.sync += net.i.valid.eq(1)
        with m.If(frames.o.valid):
            m.d.sync += [byte.eq(frames.o.payload.data), shift.eq(1),
                         last.eq(frames.o.payload.last)]

        # -- frames out: a prediction, or a row and its check byte -----------------------
        load = sender.load
        with m.If(net.rd.valid):
            m.d.comb += [load.payload.data.eq(Cat(Const(ROW_SYNC, 8),
                                                  net.rd.payload.weights.as_value())),
                         load.payload.length.eq(1 + fmt.row_bytes), load.payload.check.eq(1)]
        with m.Else():
            m.d.comb += [load.payload.data.eq(Cat(Const(RESULT_SYNC, 8),
                                                  net.o.payload.prediction)),
                         load.payload.length.eq(2), load.payload.check.eq(0)]
        m.d.comb += [load.valid.eq(net.o.valid | net.rd.valid),
                     net.o.ready.eq(load.ready), net.rd.ready.eq(load.ready)]
        return m


class TrainBoardTop(UartTop):
    """:class:`TrainLink` on a board's first UART, clocked by the board's default clock.

    Parameters
    ----------
    trainer : OnChipTrainer
    baud, bridge, clock_hz
        As for :class:`~fewmul.boards.link.UartTop`.
    """

    def __init__(self, trainer, baud: int = DEFAULT_BAUD, bridge: str | None = None, *,
                 clock_hz: float | None = None):
        self.trainer = trainer
        super().__init__(baud, bridge, clock_hz)

    def _format(self, divisor) -> TrainLinkFormat:
        return TrainLinkFormat.of(self.trainer, divisor)

    def _link(self, divisor) -> TrainLink:
        return TrainLink(self.trainer, divisor)
