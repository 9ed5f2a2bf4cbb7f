"""Benchmark mode: test images in block RAM, streamed through the network at full rate.

:class:`BenchUnit` holds ``N`` images (the bytes of their image frames, without the sync byte)
and their labels in read-only memories read through two registers
(:class:`~fewmul.gateware.registered_rom.RegisteredRom`: on the ECP5, block RAM with its output
register, so the store is not what limits the clock). On ``start`` it feeds the images' bytes, ``feed_bytes`` a cycle, into the host link's image register (the path the serial bytes
take: with one byte a cycle the network's wide input needs no multiplexer; with more, the
register shifts by a word or by a serial byte), counts the cycles from the network taking the first
image to it giving the last result, counts the results whose label equals the stored one,
folds every result payload into a checksum (:func:`fewmul.boards.protocol.result_checksum`),
then sends the report frame (:data:`~fewmul.boards.protocol.BENCH_REPORT`) on ``tx``. The
host link (:class:`~fewmul.boards.link.HostLink`) starts it on the
:data:`~fewmul.boards.protocol.BENCH_COMMAND` byte.

An image takes ``ceil(in_bytes / feed_bytes)`` cycles to feed, after the network took the one
before, so the steady state is :func:`bench_cycles_per_image` cycles an image: the network's
own ``cycles_per_inference`` when that is at least two more. :func:`feed_bytes` chooses the
fewest bytes a cycle (a power of two) that keep up with the network. An image's words in the
store start with its padding (zero bytes), which the register shifts out past its low end.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from amaranth.hdl import Cat, Const, Module, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from fewmul.gateware.registered_rom import RegisteredRom

from .protocol import (BENCH_COUNT_BITS, BENCH_CYCLE_BITS, BENCH_REPORT, CHECKSUM_BITS,
                       LinkFormat)

__all__ = ["BenchUnit", "feed_bytes", "feed_layout", "bench_cycles_per_image", "store_blocks",
           "bench_fit"]


def feed_layout(width: int) -> data.StructLayout:
    """Feed stream payload: ``width`` bytes of an image, and whether they are its last."""
    return data.StructLayout({"data": 8 * width, "last": 1})


def feed_bytes(in_bytes: int, cycles_per_inference: int, max_width: int | None = None) -> int:
    """Image bytes fed a cycle: the fewest, a power of two up to ``in_bytes`` (and
    ``max_width``), with which feeding an image (two cycles more than its words) takes at most
    ``cycles_per_inference``."""
    top = min(in_bytes, max_width or in_bytes)
    width = 1
    while width < top and -(-in_bytes // width) + 2 > cycles_per_inference:
        width *= 2
    return min(width, top)


def bench_cycles_per_image(fmt: LinkFormat, cycles_per_inference: int,
                           max_width: int | None = None) -> int:
    """Steady-state cycles an image in benchmark mode: the network's, or feeding its words
    (:func:`feed_bytes` a cycle) after the network took the image before (two cycles more: the
    image register shifts a cycle after a word, and the network sees it valid a cycle
    later)."""
    width = feed_bytes(fmt.in_bytes, cycles_per_inference, max_width)
    return max(cycles_per_inference, -(-fmt.in_bytes // width) + 2)


def store_blocks(fmt: LinkFormat, images: int, geometries: Sequence[tuple[int, int]],
                 cycles_per_inference: int | None = None, max_width: int | None = None) -> int:
    """Block RAMs of a device with block ``geometries`` (``(depth, width)``) that ``images``
    images and their labels take (``fmt``: a :class:`LinkFormat`, or any object with its
    ``in_bytes`` and ``label_bits``), fed :func:`feed_bytes` a cycle for a network of
    ``cycles_per_inference`` (None: a byte)."""
    from fewmul.ir.op import block_rams
    if images <= 0:
        return 0
    width = 1 if cycles_per_inference is None else \
        feed_bytes(fmt.in_bytes, cycles_per_inference, max_width)
    return (block_rams(images * -(-fmt.in_bytes // width), 8 * width, geometries)
            + block_rams(images, fmt.label_bits, geometries))


def bench_fit(fmt: LinkFormat, images: int | None, free_blocks: float,
              geometries: Sequence[tuple[int, int]], *, available: int,
              fraction: float = 0.5, board: str = "the board",
              cycles_per_inference: int | None = None, max_width: int | None = None) -> int:
    """The images of the store: ``images`` if given (refused with one line when their blocks
    exceed ``free_blocks``), else as many of the ``available`` test images as fit in
    ``fraction`` of ``free_blocks`` (0 when none do).

    Raises
    ------
    ValueError
        ``images`` is negative, more than ``available`` or does not fit.
    """
    def fits(n: int, blocks: float) -> bool:
        return store_blocks(fmt, n, geometries, cycles_per_inference, max_width) <= blocks

    def most(blocks: float) -> int:
        low, high = 0, available
        while low < high:                      # the largest n <= available that fits
            mid = (low + high + 1) // 2
            low, high = (mid, high) if fits(mid, blocks) else (low, mid - 1)
        return low

    if images is None:
        return most(fraction * free_blocks)
    if images < 0:
        raise ValueError(f"Bench images must be 0 or more, not {images}")
    if images > available:
        raise ValueError(f"--bench-images {images} is more than the {available} test images "
                         f"of the data set")
    if not fits(images, free_blocks):
        raise ValueError(f"--bench-images {images} does not fit {board}: the image store "
                         f"({fmt.in_bytes} bytes an image) needs "
                         f"{store_blocks(fmt, images, geometries, cycles_per_inference, max_width)}"
                         f" "
                         f"block RAMs, but about "
                         f"{free_blocks:g} are free beside the network's weights; at most "
                         f"{most(free_blocks)} images fit")
    return images


class BenchUnit(wiring.Component):
    """An image store and the counters of a benchmark run.

    Parameters
    ----------
    fmt : LinkFormat
        The link's layout: the bytes of an image, the result payload's label field.
    images : sequence of sequence of int
        ``N`` images of ``fmt.input_count`` values, as the golden model takes them.
    labels : sequence of int
        Their true labels.
    width : int
        Image bytes fed a cycle (:func:`feed_bytes`), at most ``fmt.in_bytes``.

    Attributes
    ----------
    count : int
        ``N``.
    width : int

    Members
    -------
    start : ``In(1)``
        Starts a run (ignored while one is running).
    running : ``Out(1)``
        From ``start`` until the report's last byte is taken.
    feed : ``Out(stream.Signature(feed_layout(width)))``
        The images' words in order (an image's padding, then its bytes, the first byte of a
        word in its low bits), ``last`` on each image's last word.
    taken : ``In(1)``
        The network took an image this cycle.
    result : ``In(stream.Signature(unsigned(fmt.result_bits), always_ready=True))``
        The network's results (the link takes them at once while running).
    tx : ``Out(stream.Signature(8))``
        The report frame's bytes.
    """

    def __init__(self, fmt: LinkFormat, images, labels, width: int = 1):
        images = [[int(v) for v in image] for image in images]
        labels = [int(v) for v in labels]
        if not images or len(images) != len(labels):
            raise ValueError(f"Bench needs at least one image and a label for each, not "
                             f"{len(images)} images and {len(labels)} labels")
        if len(images) >= 1 << BENCH_COUNT_BITS:
            raise ValueError(f"Bench images must be fewer than {1 << BENCH_COUNT_BITS}, "
                             f"not {len(images)}")
        top = (1 << fmt.label_bits) - 1
        if any(not 0 <= v <= top for v in labels):
            raise ValueError(f"Labels must be between 0 and {top}")
        if not isinstance(width, int) or not 1 <= width <= fmt.in_bytes:
            raise ValueError(f"Width must be 1 to {fmt.in_bytes} bytes, not {width!r}")
        self.fmt = fmt
        self.count = len(images)
        self.width = width
        self.words = -(-fmt.in_bytes // width)          # words an image
        pad = bytes(self.words * width - fmt.in_bytes)
        self._words = []
        for image in images:
            padded = pad + fmt.encode_image(image)[1:]
            self._words += [int.from_bytes(padded[k * width:(k + 1) * width], "little")
                            for k in range(self.words)]
        self._labels = labels
        super().__init__({
            "start": In(1), "running": Out(1),
            "feed": Out(stream.Signature(feed_layout(width))), "taken": In(1),
            "result": In(stream.Signature(unsigned(fmt.result_bits), always_ready=True)),
            "tx": Out(stream.Signature(8)),
        })

    def elaborate(self, platform):
        m = Module()
        fmt, n = self.fmt, self.count
        words = self.words
        total = n * words
        # Both memories read through two registers (on the ECP5 the DP16KD's output register:
        # its array alone is 5.6 ns from clock to data), with the feed's enable; the store
        # through a third after choosing among runs of its banks (on the LFC's ULX3S build,
        # the 23 banks' multiplexer into the payload register was the slowest path).
        m.submodules.store = store = RegisteredRom(8 * self.width, total, self._words,
                                                   bank_stage=True)
        m.submodules.labels = labels = RegisteredRom(fmt.label_bits, n, self._labels)

        # Feed: words read `store.latency` cycles ahead; the read, its valid and last flags and
        # the payload register all move with `advance`, so a stalled feed holds every word in
        # flight.
        addr = Signal(range(total + 1))
        in_image = Signal(range(words))                 # the word of the image at `addr`
        feeding = Signal()
        valid = [Signal(name=f"valid_{k + 1}") for k in range(store.latency)]
        last = [Signal(name=f"last_{k + 1}") for k in range(store.latency)]
        advance = ~self.feed.valid | self.feed.ready
        m.d.comb += [store.addr.eq(addr), store.en.eq(advance)]
        with m.If(advance):
            # the store's registers, then the payload's, with the flags alongside
            m.d.sync += [valid[0].eq(feeding), last[0].eq(in_image == words - 1),
                         *(v.eq(u) for u, v in zip(valid, valid[1:])),
                         *(v.eq(u) for u, v in zip(last, last[1:])),
                         self.feed.valid.eq(valid[-1]), self.feed.payload.data.eq(store.data),
                         self.feed.payload.last.eq(last[-1])]
            with m.If(feeding):
                m.d.sync += [addr.eq(addr + 1), in_image.eq(in_image + 1)]
                with m.If(in_image == words - 1):
                    m.d.sync += in_image.eq(0)
                with m.If(addr == total - 1):
                    m.d.sync += feeding.eq(0)

        # Counters. `results` counts the results taken; the label of result k is read at
        # address k while the result's label is registered, and compared two cycles later, when
        # the stored label is out of the labels' memory.
        cycles = Signal(BENCH_CYCLE_BITS)
        correct = Signal(BENCH_COUNT_BITS)
        checksum = Signal(CHECKSUM_BITS)
        counting, started = Signal(), Signal()
        results = Signal(range(n + 1))
        got_label, got_label_2 = Signal(fmt.label_bits), Signal(fmt.label_bits)
        got, got_2 = Signal(), Signal()
        m.d.comb += labels.addr.eq(results)
        payload = self.result.payload
        chunks = [payload[i:i + CHECKSUM_BITS] for i in range(0, fmt.result_bits, CHECKSUM_BITS)]
        fold = Signal(CHECKSUM_BITS)
        m.d.comb += fold.eq(_xor(chunks))
        with m.If(counting):
            m.d.sync += cycles.eq(cycles + 1)
        # the first transfer into the network starts the count a cycle later, from a register
        # (the network's `i.ready` is far away on a large design); that cycle is counted by
        # clearing the count to 1, not by loading it here (the count's 32-bit carry chain
        # after a load from `taken` was the LFC's 119.4 MHz critical path)
        taken = Signal()
        m.d.sync += taken.eq(self.taken)
        with m.If(taken & ~started & self.running):
            m.d.sync += [counting.eq(1), started.eq(1)]
        m.d.sync += got.eq(0)
        with m.If(self.result.valid & self.running):
            m.d.sync += [checksum.eq(Cat(checksum[-1], checksum[:-1]) ^ fold),
                         results.eq(results + 1), got.eq(1),
                         got_label.eq(payload[fmt.label_offset:fmt.label_offset + fmt.label_bits])]
            with m.If(results == n - 1):
                m.d.sync += counting.eq(0)
        m.d.sync += [got_2.eq(got), got_label_2.eq(got_label)]
        with m.If(got_2 & (got_label_2 == labels.data)):
            m.d.sync += correct.eq(correct + 1)

        # Run and report: the sync byte and the counters shift out as the report's bytes. The
        # counters are cleared the cycle after the start, by a register (`clear`), and the run
        # ends on a register (`finished`): the state register's enable then depends on a few
        # registers, not on the counters' compares, and the state drives no counter's enable
        # (on the LFC's ULX3S build that enable was the slowest path).
        head = Signal(8)
        report = Cat(head, cycles, correct, checksum)
        left = Signal(range(len(report) // 8 + 1))
        clear, finished, shift = Signal(), Signal(), Signal()
        m.d.comb += self.tx.payload.eq(head)
        m.d.sync += [clear.eq(0),
                     finished.eq(self.running & ~clear & (results == n) & ~got & ~got_2)]
        with m.If(clear):
            m.d.sync += [addr.eq(0), in_image.eq(0), feeding.eq(1), cycles.eq(1),
                         correct.eq(0), checksum.eq(0), results.eq(0), started.eq(0)]
        with m.If(shift):
            m.d.sync += [report.eq(report >> 8), left.eq(left - 1), shift.eq(0)]
        with m.FSM():
            with m.State("idle"):
                with m.If(self.start):
                    m.d.sync += [clear.eq(1), self.running.eq(1)]
                    m.next = "run"
            with m.State("run"):
                with m.If(finished):
                    m.d.sync += [head.eq(BENCH_REPORT), self.tx.valid.eq(1),
                                 left.eq(len(report) // 8)]
                    m.next = "report"
            with m.State("report"):
                # A byte taken, the report shifts the cycle after, on a register (`shift`,
                # above the state machine): the counters' enables then come from registers,
                # not from `tx.ready` and the state (that path into the cycle count limited
                # the LFC's ULX3S build); `tx.valid` is low in that cycle.
                with m.If(self.tx.valid & self.tx.ready):
                    m.d.sync += [self.tx.valid.eq(0), shift.eq(1)]
                with m.If(shift):
                    with m.If(left == 1):
                        m.d.sync += self.running.eq(0)
                        m.next = "idle"
                    with m.Else():
                        m.d.sync += self.tx.valid.eq(1)
        return m


def _xor(values):
    """The XOR of ``values`` as a balanced tree."""
    values = list(values)
    while len(values) > 1:
        values = [values[i] ^ values[i + 1] if i + 1 < len(values) else values[i]
                  for i in range(0, len(values), 2)]
    return values[0]
