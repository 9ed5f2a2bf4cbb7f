"""The UART host link around a network, and the board top that puts it on the pins.

:class:`HostLink` turns image frames from ``rx`` (found by the
:class:`~fewmul.boards.frames.FrameReceiver` the training link shares) into the network's input
stream and its results into frames on ``tx`` (see :mod:`fewmul.boards.protocol`).
It only uses the network's public ports ``i`` (a stream of
``ArrayLayout(unsigned(input_bits), N)``) and ``o`` (a stream of a struct with
``label`` and ``scores``) and its ``input_beats`` (transfers on ``i`` per image: the
pixels of a convolutional network's image, or the beats of a first layer's input memory; 1
when absent), so any unit with those ports can
sit inside. A network whose weight memories are written at run time (the iCE40UP5K's SPRAM,
:class:`~fewmul.gateware.spram.SpramMemory`) gets them from weight frames
(:class:`WeightLoader`).
"""

from __future__ import annotations

import math

from amaranth.hdl import Cat, Const, Elaboratable, Module, Mux, Signal
from amaranth.lib import io, stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from fewmul.gateware.skid import SkidBuffer

from dataclasses import replace

from .frames import FrameReceiver
from .protocol import (BENCH_COMMAND, IDLE_TIMEOUT_BITS, IMAGE_SYNC, RESULT_SYNC, STREAM_WINDOW,
                       WEIGHT_ACK, WEIGHT_HEADER_BYTES, WEIGHT_SYNC, LinkFormat)
from .uart import UARTReceiver, UARTTransmitter, check_baud, check_divisor

__all__ = ["link_format", "WeightLoader", "HostLink", "UartTop", "BoardTop", "DEFAULT_BAUD"]

#: Baud rate of a board without a default of its own
#: (:attr:`~fewmul.boards.targets.Board.default_baud`).
DEFAULT_BAUD = 115200


def link_format(network: wiring.Component, divisor=None) -> LinkFormat:
    """The frame layout for ``network``'s ports.

    An image is ``network.input_beats`` transfers (1 when the network has no such attribute)
    of the input array, so the frame carries ``input_beats`` times its elements. With the
    link's ``divisor`` (clocks per bit) and the network's ``cycles_per_inference``, the window
    is :data:`~fewmul.boards.protocol.STREAM_WINDOW` where the board keeps up with the line
    (:meth:`~fewmul.boards.protocol.LinkFormat.keeps_up`).

    Raises
    ------
    TypeError
        If ``network`` lacks an input stream of an array or a result stream with
        ``label`` and ``scores``, or its ``input_beats`` is not a positive integer.
    """
    try:
        in_layout = network.i.payload.shape()
        out_layout = network.o.payload.shape()
        label, scores = out_layout["label"], out_layout["scores"]
    except (AttributeError, KeyError, TypeError):
        raise TypeError(f"Network must have an input stream 'i' of an array and a result "
                        f"stream 'o' with 'label' and 'scores', not {network!r}") from None
    beats = getattr(network, "input_beats", 1)
    if not isinstance(beats, int) or isinstance(beats, bool) or beats < 1:
        raise TypeError(f"Input beats must be a positive integer, not {beats!r}")
    fmt = LinkFormat(
        input_count=in_layout.length * beats, input_beats=beats,
        input_bits=in_layout.elem_shape.width,
        classes=scores.shape.length, label_offset=label.offset, label_bits=label.width,
        scores_offset=scores.offset, score_bits=scores.shape.elem_shape.width,
        result_bits=out_layout.size)
    cycles = getattr(network, "cycles_per_inference", None)
    if divisor is not None and cycles is not None and fmt.keeps_up(divisor, cycles):
        fmt = replace(fmt, window=STREAM_WINDOW)
    return fmt


class WeightLoader(wiring.Component):
    """Weight frames (:data:`~fewmul.boards.protocol.WEIGHT_SYNC`) from the receiver's bytes
    into the write ports of memories written at run time.

    A frame starts on its sync byte while ``idle`` (no other frame is being received) and
    writes each word in the cycle after its last byte; the acknowledgement (its two bytes on
    ``tx``) follows the frame's last byte. A frame cut short is dropped after
    :data:`~fewmul.boards.protocol.IDLE_TIMEOUT_BITS` bit times of silence; a frame for a layer
    without a memory writes nothing. Each memory's write data is a fixed slice of one word
    register (the bytes shift in from its top), so no multiplexer sits on the data.

    Parameters
    ----------
    memories : dict of int to SpramMemory
        Layer -> its memory (with ``w_en``, ``w_addr``, ``w_data`` and a ``width``).
    divisor : int or Fraction
        Clock cycles per bit of the line, for the timeout.

    Members
    -------
    byte : ``In(stream.Signature(8, always_ready=True))``
        The receiver's bytes.
    idle : ``In(1)``
        No other frame is being received: a sync byte starts a weight frame.
    active : ``Out(1)``
        A weight frame is being received (its bytes are no other frame's).
    tx : ``Out(stream.Signature(8))``
        The acknowledgements' bytes.
    """

    def __init__(self, memories: dict, divisor):
        if not memories:
            raise ValueError("A weight loader needs at least one memory")
        if any(not isinstance(layer, int) or not 0 <= layer < 256 for layer in memories):
            raise ValueError(f"Weight memory layers must be integers 0-255, not "
                             f"{sorted(memories)!r}")
        self.memories = dict(sorted(memories.items()))
        self.divisor = check_divisor(divisor)
        super().__init__({"byte": In(stream.Signature(8, always_ready=True)), "idle": In(1),
                          "active": Out(1), "tx": Out(stream.Signature(8))})

    def elaborate(self, platform):
        m = Module()
        word_bytes = {layer: (mem.width + 7) // 8 for layer, mem in self.memories.items()}
        top = max(word_bytes.values())
        header = Signal(8 * (WEIGHT_HEADER_BYTES - 1))
        got = Signal(range(WEIGHT_HEADER_BYTES))    # header bytes received
        in_words = Signal()                          # the header is complete
        layer = Signal(8)
        addr = Signal(16)
        left = Signal(16)                            # words after the current one
        word = Signal(8 * top)
        byte_left = Signal(range(top))               # bytes of the current word after this one
        check = Signal(8)
        write = Signal()
        acking = Signal(range(3))                    # acknowledgement bytes left to send
        timeout = math.ceil(IDLE_TIMEOUT_BITS * self.divisor)
        idle = Signal(range(timeout + 1))
        byte, payload = self.byte.valid, self.byte.payload

        def first_byte_left(value):                  # a layer's word bytes less one
            out = Const(0, len(byte_left))
            for index, count in word_bytes.items():
                out = Mux(value == index, count - 1, out)
            return out

        m.d.sync += write.eq(0)
        with m.If(write):
            m.d.sync += addr.eq(addr + 1)
        with m.If(byte):
            m.d.sync += idle.eq(0)
            with m.If(~self.active):
                with m.If((payload == WEIGHT_SYNC) & self.idle):
                    m.d.sync += [self.active.eq(1), got.eq(0), in_words.eq(0), check.eq(0)]
            with m.Elif(~in_words):
                fields = Cat(header, payload)    # layer, address, last, when this one is last
                m.d.sync += [check.eq(check ^ payload), header.eq(fields[8:]),
                             got.eq(got + 1)]
                with m.If(got == WEIGHT_HEADER_BYTES - 1):
                    m.d.sync += [in_words.eq(1), layer.eq(fields[:8]), addr.eq(fields[8:24]),
                                 left.eq(fields[24:40]),
                                 byte_left.eq(first_byte_left(fields[:8]))]
            with m.Else():
                m.d.sync += [check.eq(check ^ payload), word.eq(Cat(word[8:], payload)),
                             byte_left.eq(byte_left - 1)]
                with m.If(byte_left == 0):
                    m.d.sync += [write.eq(1), byte_left.eq(first_byte_left(layer)),
                                 left.eq(left - 1)]
                    with m.If(left == 0):
                        m.d.sync += [self.active.eq(0), acking.eq(2)]
        with m.Elif(self.active):
            m.d.sync += idle.eq(idle + 1)
            with m.If(idle == timeout):
                m.d.sync += [self.active.eq(0), idle.eq(0)]

        for index, mem in self.memories.items():
            low = 8 * (top - word_bytes[index])     # where the word's bytes end up
            m.d.comb += [mem.w_en.eq(write & (layer == index)), mem.w_addr.eq(addr),
                         mem.w_data.eq(word[low:low + mem.width])]

        m.d.comb += [self.tx.valid.eq(acking != 0),
                     self.tx.payload.eq(Mux(acking == 2, WEIGHT_ACK, check))]
        with m.If(self.tx.valid & self.tx.ready):
            m.d.sync += acking.eq(acking - 1)
        return m


class HostLink(wiring.Component):
    """A network behind a UART: image frames in on ``rx``, result frames out on ``tx``.

    A :class:`~fewmul.boards.frames.FrameReceiver` (``frames``, the training link's too) finds
    the image frames in the line's bytes. The image shift register is the network's input
    register (one image buffered while the previous one computes); the result is latched into the
    frame shift register as soon as the transmitter is free, so the network's
    output is never held by the serial line longer than one result frame.

    A network that takes an image in ``input_beats`` transfers (a convolutional network, pixel
    by pixel; a first layer with an input memory, in its beats) gets them from the low end of the image register, which shifts down by one
    transfer's width after each: no multiplexer selects the pixel, and the register takes
    the next image's bytes only after the last transfer. Those bytes wait in a FIFO of one
    frame (``frame_fifo``, a small memory): feeding an image takes as long as the network's
    first layer takes to read it, which may be longer than a byte on the line, and the host
    sends the next frame right after one. A :class:`~fewmul.gateware.skid.SkidBuffer`
    (``input_skid``) sits between the register and the network, so the register's shift
    enables come from registers, not from the network's ``ready``. With one transfer per image
    the link is as it was without beats: the image register drives the network's input
    directly.

    Parameters
    ----------
    network : wiring.Component
        Unit with ports ``i`` and ``o`` as :class:`fewmul.gateware.Network` has.
    divisor : int or Fraction
        Clock cycles per bit, at least 4 (a fraction of denominator at most 16: see
        :mod:`fewmul.boards.uart`).
    bench : BenchUnit or None
        Benchmark mode (:mod:`fewmul.boards.bench`): the
        :data:`~fewmul.boards.protocol.BENCH_COMMAND` byte between frames starts it; its images'
        bytes go into the image register as serial bytes do, the network's results go to it
        (not to the line) and its report goes out on ``tx``. Networks that take an image in one
        transfer only.
    weights : dict of int to SpramMemory, or None
        The network's weight memories written at run time, by layer: a :class:`WeightLoader`
        writes them from weight frames that start between images.

    Attributes
    ----------
    format : LinkFormat
        Frame sizes and result layout.

    Members
    -------
    rx : ``In(1)``
        Serial line from the host (idle high).
    tx : ``Out(1)``
        Serial line to the host (idle high).
    """

    def __init__(self, network: wiring.Component, divisor, bench=None, weights=None):
        self.network = network
        self.divisor = check_divisor(divisor)
        self.format = link_format(network, self.divisor)
        if bench is not None and self.format.input_beats != 1:
            raise ValueError("Benchmark mode takes networks that take an image in one "
                             "transfer, not a convolutional network's pixels or the beats of a "
                             "first layer's input memory")
        self.bench = bench
        self.weights = dict(weights) if weights else {}
        super().__init__({"rx": In(1, init=1), "tx": Out(1, init=1)})

    def _whole_images(self, m: Module, urx: UARTReceiver, net: wiring.Component, busy,
                      loader=None) -> None:
        """The image register, shifted a byte at a time, is the network's input payload;
        ``loader`` (a :class:`WeightLoader`) takes the frames that start between images with
        its sync byte."""
        fmt = self.format
        image = Signal(8 * fmt.in_bytes)
        m.submodules.frames = frames = FrameReceiver({IMAGE_SYNC: fmt.in_bytes}, self.divisor)
        wiring.connect(m, urx.o, frames.i)
        m.d.comb += net.i.payload.eq(image[:fmt.input_count * fmt.input_bits])
        with m.If(net.i.valid & net.i.ready):
            m.d.sync += net.i.valid.eq(0)
        # A byte of the image is shifted in the cycle after the frame receiver gives it: the
        # enable of every image bit is then a register (`shift`), not the receiver's logic. A
        # bench feeding several bytes a cycle shifts a word of them (`wide`).
        width = self.bench.width if self.bench is not None else 1
        byte = Signal(8 * width)
        shift, wide = Signal(), Signal()
        # the bench command, a cycle after its byte: a register starts the bench's many
        # registers, not the receiver's compares
        start = Signal()
        m.d.sync += start.eq(0)
        last_byte = Signal()
        m.d.sync += shift.eq(0)
        with m.If(shift):
            if width == 1:
                m.d.sync += image.eq(Cat(image[8:], byte))
            else:
                with m.If(wide):
                    m.d.sync += image.eq(Cat(image[8 * width:], byte))
                with m.Else():
                    m.d.sync += image.eq(Cat(image[8:], byte[:8]))
            with m.If(last_byte):
                m.d.sync += net.i.valid.eq(1)
        loading = Const(0)
        if loader is not None:   # a weight frame's bytes are no image's
            loading = loader.active
            m.d.comb += [loader.byte.valid.eq(urx.o.valid), loader.byte.payload.eq(urx.o.payload),
                         loader.idle.eq(~frames.receiving & ~busy)]
        m.d.comb += frames.accept.eq(~net.i.valid & ~busy & ~loading)
        with m.If(frames.o.valid):
            m.d.sync += [byte.eq(frames.o.payload.data), shift.eq(1), wide.eq(0),
                         last_byte.eq(frames.o.payload.last)]
        if self.bench is not None:
            with m.If(urx.o.valid & ~frames.receiving & (urx.o.payload == BENCH_COMMAND)
                      & ~net.i.valid & ~loading):
                m.d.sync += start.eq(1)
            m.d.comb += self.bench.start.eq(start)
            # the bench's bytes take the serial bytes' path, while the register is free
            feed = self.bench.feed
            m.d.comb += [feed.ready.eq(~net.i.valid & ~(shift & last_byte)),
                         self.bench.taken.eq(net.i.valid & net.i.ready)]
            with m.If(feed.valid & feed.ready):
                m.d.sync += [byte.eq(feed.payload.data), shift.eq(1), wide.eq(1),
                             last_byte.eq(feed.payload.last)]

    def _pixels(self, m: Module, urx: UARTReceiver, net: wiring.Component,
                loader=None) -> None:
        """Frame bytes through a FIFO into the image register, whose low end is the payload of
        ``input_beats`` transfers, the register shifting down by one transfer after each;
        ``loader`` as for :meth:`_whole_images`."""
        fmt = self.format
        beats = fmt.input_beats
        beat_bits = fmt.input_count // beats * fmt.input_bits
        # the register's shift enables (`into.valid & into.ready`, `fifo.r_rdy & ~into.valid`)
        # are registers: the skid buffer's `i.ready` and the FIFO's `r_rdy` are
        m.submodules.input_skid = skid = SkidBuffer(net.i.payload.shape())
        wiring.connect(m, skid.o, net.i)
        into = skid.i
        # a frame's bytes, the last one flagged (bit 8)
        m.submodules.frame_fifo = fifo = SyncFIFOBuffered(width=9, depth=fmt.in_bytes)

        # Frames -> bytes. A frame is taken only when the FIFO is empty, so it has room for all
        # of it; a frame cut short leaves bytes that the next frame's bytes shift out of the
        # image register, since only a last byte makes an image. The frame receiver starts
        # from registers only (its compares limited a conv net's ULX3S build): the FIFO's
        # emptiness is that of the cycle the UART receiver gave the sync byte.
        m.submodules.frames = frames = FrameReceiver({IMAGE_SYNC: fmt.in_bytes}, self.divisor)
        wiring.connect(m, urx.o, frames.i)
        loading = Const(0)
        if loader is not None:   # a weight frame's bytes are no image's
            loading = loader.active
            m.d.comb += [loader.byte.valid.eq(urx.o.valid), loader.byte.payload.eq(urx.o.payload),
                         loader.idle.eq(~frames.receiving)]
        m.d.comb += [frames.accept.eq((fifo.level == 0) & ~loading),
                     fifo.w_data.eq(Cat(frames.o.payload.data, frames.o.payload.last)),
                     fifo.w_en.eq(frames.o.valid)]

        # Bytes -> image register -> transfers.
        image = Signal(8 * fmt.in_bytes)
        pending = Signal(range(beats))                  # transfers after the current one
        m.d.comb += [into.payload.eq(image[:beat_bits]), fifo.r_en.eq(~into.valid)]
        with m.If(fifo.r_rdy & ~into.valid):
            m.d.sync += image.eq(Cat(image[8:], fifo.r_data[:8]))
            with m.If(fifo.r_data[8]):
                m.d.sync += [into.valid.eq(1), pending.eq(beats - 1)]
        with m.If(into.valid & into.ready):
            m.d.sync += [image.eq(image[beat_bits:]), pending.eq(pending - 1)]
            with m.If(pending == 0):
                m.d.sync += into.valid.eq(0)

    def elaborate(self, platform):
        m = Module()
        fmt = self.format
        m.submodules.uart_rx = urx = UARTReceiver(self.divisor)
        m.submodules.uart_tx = utx = UARTTransmitter(self.divisor)
        m.submodules.network = net = self.network
        m.d.comb += [urx.rx.eq(self.rx), self.tx.eq(utx.tx)]
        bench = self.bench
        if bench is not None:
            m.submodules.bench = bench
        busy = bench.running if bench is not None else Const(0)
        loader = None
        if self.weights:
            m.submodules.weight_loader = loader = WeightLoader(self.weights, self.divisor)

        # Image frames -> input stream.
        if fmt.input_beats == 1:
            self._whole_images(m, urx, net, busy, loader)
        else:
            self._pixels(m, urx, net, loader)

        # Results -> frames.
        frame = Signal(8 * (1 + fmt.out_bytes))
        left = Signal(range(fmt.out_bytes + 2))
        # `left != 0` as a register: the network's `o.ready` enables its whole result register.
        sending = Signal()
        if bench is None:
            m.d.comb += net.o.ready.eq(~sending)
        else:
            # while the bench runs, results go to it at once and its report to the line
            m.d.comb += [net.o.ready.eq(~sending | busy),
                         bench.result.valid.eq(net.o.valid & busy),
                         bench.result.payload.eq(net.o.payload.as_value())]
        # the line: result frames first, then the bench's report, then the loader's
        # acknowledgements, through a skid buffer whose `i.ready` is a register: the enable of
        # the wide frame register does not come from the transmitter's bit timer (the slowest
        # path of the SFC's iCEBreaker build without it)
        m.submodules.tx_skid = line = SkidBuffer(8)
        wiring.connect(m, line.o, utx.i)
        payload, valid, free = frame[:8], sending, ~sending
        for source in [unit.tx for unit in (bench, loader) if unit is not None]:
            m.d.comb += source.ready.eq(line.i.ready & free)
            payload, valid = Mux(valid, payload, source.payload), valid | source.valid
            free = free & ~source.valid
        m.d.comb += [line.i.payload.eq(payload), line.i.valid.eq(valid)]
        with m.If(net.o.valid & net.o.ready & ~busy):
            m.d.sync += [frame.eq(Cat(Const(RESULT_SYNC, 8), net.o.payload.as_value())),
                         left.eq(fmt.out_bytes + 1), sending.eq(1)]
        with m.If(sending & line.i.ready):
            m.d.sync += [frame.eq(frame >> 8), left.eq(left - 1)]
            with m.If(left == 1):
                m.d.sync += sending.eq(0)
        return m


class UartTop(Elaboratable):
    """A link on a board's first UART, clocked by the board's default clock: what
    :class:`BoardTop` and :class:`~fewmul.boards.train_link.TrainBoardTop` share.

    A subclass gives its link (:meth:`_link`, a component with ports ``rx`` and ``tx``) and
    that link's frame layout (:meth:`_format`) for a divisor.

    Parameters
    ----------
    baud : int
        Serial rate; the divisor comes from the platform's default clock.
    bridge : str or None
        The board's USB serial bridge (:data:`fewmul.boards.uart.BRIDGES`), whose rate is
        checked against the board's by :func:`~fewmul.boards.uart.check_baud`.
    clock_hz : float or None
        The platform's default clock, when known before elaboration: :attr:`format` then has
        the window for the link's divisor.

    Attributes
    ----------
    format
        The link's frame layout.
    """

    def __init__(self, baud: int, bridge: str | None, clock_hz: float | None):
        self.baud = baud
        self.bridge = bridge
        divisor = None if clock_hz is None else check_baud(clock_hz, baud, bridge)
        self.format = self._format(divisor)

    def _format(self, divisor):
        raise NotImplementedError

    def _link(self, divisor) -> wiring.Component:
        raise NotImplementedError

    def elaborate(self, platform):
        m = Module()
        divisor = check_baud(platform.default_clk_frequency, self.baud, self.bridge)
        m.submodules.link = link = self._link(divisor)
        uart = platform.request("uart", 0, dir="-")
        m.submodules.rx_buffer = rx = io.Buffer("i", uart.rx)
        m.submodules.tx_buffer = tx = io.Buffer("o", uart.tx)
        m.d.comb += [link.rx.eq(rx.i), tx.o.eq(link.tx)]
        return m


class BoardTop(UartTop):
    """:class:`HostLink` on a board's first UART, clocked by the board's default clock.

    Parameters
    ----------
    network : wiring.Component
        As for :class:`HostLink`.
    baud, bridge, clock_hz
        As for :class:`UartTop` (:attr:`format` with ``clock_hz``: see :func:`link_format`).
    bench : BenchUnit or None
        Benchmark mode, as for :class:`HostLink`.
    weights : dict of int to SpramMemory, or None
        Weight memories written at run time, as for :class:`HostLink`.
    """

    def __init__(self, network: wiring.Component, baud: int = DEFAULT_BAUD,
                 bridge: str | None = None, *, clock_hz: float | None = None, bench=None,
                 weights=None):
        self.network = network
        self.bench = bench
        self.weights = weights
        super().__init__(baud, bridge, clock_hz)

    def _format(self, divisor) -> LinkFormat:
        return link_format(self.network, divisor)

    def _link(self, divisor) -> HostLink:
        return HostLink(self.network, divisor, self.bench, self.weights)
