"""Max pooling over a stream of image pixels."""

from collections.abc import Sequence

from amaranth.hdl import Array, C, Module, Mux, Shape, ShapeLike, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from fewmul.arith.ranges import divisors

from .compare import greater
from .window import check_count

__all__ = ["MaxPool"]


def _counter(m: Module, name: str, count: int, step):
    """A counter over ``0 .. count - 1`` that moves on each cycle ``step`` is high and wraps;
    returns the counter and a register high at its last value (a register, so that the
    unit's ``i.ready``, which depends on it, starts from registers: it reaches back into the
    matrix-vector unit before it)."""
    value = Signal(range(count), name=name)
    last = Signal(name=f"{name}_last", init=count == 1)
    with m.If(step):
        m.d.sync += [value.eq(Mux(last, 0, value + 1)),
                     last.eq(Mux(last, count == 1, value == count - 2))]
    return value, last


class MaxPool(wiring.Component):
    """Maxima of an image's ``size`` x ``size`` blocks of pixels, channel by channel.

    An image streams pixel by pixel, rows top to bottom and each row left to right, each pixel
    as ``channels / pe`` beats, beat ``g`` holding channels ``g * pe .. g * pe + pe - 1``;
    images follow each other with no gap. The output is the ``(height / size)`` x ``(width /
    size)`` image of the maxima over the blocks, in the same layout. Elements compare as
    values of ``element_shape`` (unsigned for activations); for 1-bit unsigned elements the
    maximum is an OR, a binary activation bit 1 standing for +1. On the channels flagged in
    ``minimum`` the unit takes the minimum instead (an AND of bits): their elements are
    complemented on the way in and on the way out (the complement reverses the order), so
    the same comparators serve.

    Structure: counters follow the channel group, the column within a block, the block and
    the row within a block; the image's height is not needed. The partial maxima of one row of
    blocks, ``width / size * channels / pe`` words of ``pe`` elements, are kept in a
    :class:`~amaranth.lib.memory.Memory` rather than registers: a beat touches one word, at an
    address the counters give, so one read and one write port do and no multiplexer over the
    words is needed, and for wide images the words go to block RAM. The word of a beat is read
    one beat ahead (so that it is ready when the beat arrives), merged with the beat (or
    replaced, by the first beat of a block) and written back; with ``channels == pe``
    consecutive beats of a block use the same word, so then the read port is transparent for
    the write port. With ``size == 1`` there is no memory.

    Flow control: the output beat is held in a register; ``i.ready`` is low only when the beat
    offered completes a block while that register is full and not being taken (``i.ready =
    ~last | ~o.valid | o.ready``).

    Timing: one input beat per cycle when not stalled; the output beat of a block and channel
    group is offered ``latency = 1`` cycle after the transfer of the beat completing it (that
    of the block's bottom-right pixel).

    Parameters
    ----------
    element_shape : shape-like
        Shape of each element.
    channels : int
        Elements per pixel.
    height, width : int
        Size of the images, in pixels; both multiples of ``size``.
    size : int
        Size of the square blocks.
    pe : int
        Elements per beat; must divide ``channels``.
    minimum : sequence of bool, optional
        Per channel, whether the block minimum is taken; default none.

    Attributes
    ----------
    out_height, out_width : int
        ``height // size`` and ``width // size``.
    groups : int
        Beats per pixel, ``channels // pe``.
    latency : int
        1, see above.
    buffer_bits : int
        Bits of the partial maxima memory, ``width // size * channels`` elements (0 when
        ``size == 1``).

    Members
    -------
    i : ``In(stream.Signature(ArrayLayout(element_shape, pe)))``
        Input pixels, ``channels / pe`` beats each.
    o : ``Out(stream.Signature(ArrayLayout(element_shape, pe)))``
        Output pixels, in the same layout.
    """

    latency = 1

    def __init__(self, element_shape: ShapeLike, *, channels: int, height: int, width: int,
                 size: int, pe: int, minimum: Sequence[bool] | None = None):
        shape = Shape.cast(element_shape)
        self.channels = check_count("Channel count", channels)
        self.height   = check_count("Height", height)
        self.width    = check_count("Width", width)
        self.size     = check_count("Pool size", size)
        self.pe       = check_count("PE count", pe)
        if channels % pe:
            raise ValueError(f"PE count must divide the channel count {channels}, not pe={pe}; "
                             f"valid values are {divisors(channels)}")
        if height % size or width % size:
            raise ValueError(f"Pool size must divide the image size {height}x{width}, not "
                             f"{size}")
        self.groups = channels // pe
        self.minimum = [False] * channels if minimum is None else [bool(v) for v in minimum]
        if len(self.minimum) != channels:
            raise ValueError(f"Minimum flags must be one per channel ({channels}), not "
                             f"{len(self.minimum)}")
        self.out_height, self.out_width = height // size, width // size
        self.buffer_bits = self.out_width * channels * shape.width if size > 1 else 0
        self._element_shape = shape
        super().__init__({
            "i": In(stream.Signature(data.ArrayLayout(shape, pe))),
            "o": Out(stream.Signature(data.ArrayLayout(shape, pe))),
        })

    def elaborate(self, platform):
        m = Module()
        free = ~self.o.valid | self.o.ready      # the output register may load
        step = self.i.valid & self.i.ready

        group,  group_last  = _counter(m, "group", self.groups, step)
        column, column_last = _counter(m, "column", self.size, step & group_last)  # in a block
        block,  block_last  = _counter(m, "block", self.out_width,
                                       step & group_last & column_last)
        row,    row_last    = _counter(m, "row", self.size,                       # in a block
                                       step & group_last & column_last & block_last)
        first = Signal()                         # the beat starts a block: nothing to merge
        last  = Signal()                         # the beat completes a block
        m.d.comb += [
            first.eq((row == 0) & (column == 0)),
            last.eq(row_last & column_last),
            self.i.ready.eq(~last | free),
        ]

        beat = Signal.like(self.i.payload)
        complement = self._complement(m, step, group)
        m.d.comb += beat.eq(self.i.payload.as_value() ^ complement)
        merged = Signal.like(beat)
        if self.size == 1:
            m.d.comb += merged.eq(beat)
        else:
            partial = beat.shape()(self._partial_maxima(
                m, step, merged, group_last, column_last, block_last))
            with m.If(first):
                m.d.comb += merged.eq(beat)
            with m.Else():
                m.d.comb += [merged[p].eq(self._maximum(beat[p], partial[p]))
                             for p in range(self.pe)]

        with m.If(free):
            m.d.sync += self.o.valid.eq(step & last)
        with m.If(step & last):
            m.d.sync += self.o.payload.eq(merged.as_value() ^ complement)
        return m

    def _complement(self, m, step, group):
        """The bits to complement in the current beat (those of its ``minimum`` channels):
        a constant for one beat per pixel, else a register loaded with the next beat's."""
        width = self._element_shape.width
        words = [sum(((1 << width) - 1) << (p * width)
                     for p in range(self.pe) if self.minimum[g * self.pe + p])
                 for g in range(self.groups)]
        if not any(words):
            return C(0, self.pe * width)
        if self.groups == 1:
            return C(words[0], self.pe * width)
        current = Signal(self.pe * width, name="complement", init=words[0])
        following = Array(C(w, self.pe * width) for w in words[1:] + words[:1])
        with m.If(step):
            m.d.sync += current.eq(following[group])
        return current

    def _maximum(self, a, b):
        if self._element_shape.width == 1 and not self._element_shape.signed:
            return a | b
        return Mux(greater(a, b), a, b)

    def _partial_maxima(self, m, step, merged, group_last, column_last, block_last):
        """The memory of partial maxima: returns the word of the current beat, and writes
        ``merged`` back in its place when the beat is transferred."""
        groups = self.groups
        depth = self.out_width * groups
        m.submodules.partial = memory = Memory(shape=len(merged.as_value()), depth=depth,
                                               init=[])
        write = memory.write_port()
        read = memory.read_port(transparent_for=(write,) if groups == 1 else ())
        # The word of block `b`, group `g` is at `b * groups + g`: the address runs over the
        # block's words once per column of the block, then on to the next block.
        address = Signal(range(depth))
        following = Signal.like(address)
        with m.If(~group_last):
            m.d.comb += following.eq(address + 1)
        with m.Elif(~column_last):
            m.d.comb += following.eq(address - (groups - 1))      # the block's first word
        with m.Elif(~block_last):
            m.d.comb += following.eq(address + 1)
        # else 0: the row's first word
        m.d.comb += [
            read.en.eq(step),
            read.addr.eq(following),
            write.en.eq(step),
            write.addr.eq(address),
            write.data.eq(merged),
        ]
        with m.If(step):
            m.d.sync += address.eq(following)
        return read.data
