"""Sliding windows over a stream of image pixels, for convolutions."""

from amaranth.hdl import Cat, Const, Module, Mux, Shape, ShapeLike, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

__all__ = ["SlidingWindow"]


def check_count(name: str, value, *, minimum: int = 1) -> int:
    """Check a size parameter: an integer of at least ``minimum`` (1: positive, 0:
    non-negative); returns it."""
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        kind = "a positive" if minimum == 1 else "a non-negative"
        raise TypeError(f"{name} must be {kind} integer, not {value!r}")
    return value


def _select(condition, value, constant):
    """``Mux(condition, value, constant)`` as AND and OR gates. A multiplexer with a constant
    input before a register's enable becomes a synchronous reset, which on the ECP5 needs the
    enable folded into it (a gate more on the window registers' enable path); gates do not."""
    mask = condition.replicate(len(value))
    return (value & mask) | (constant & ~mask)


class _GridAxis:
    """One axis (rows or columns) of the padded image that the window walks.

    The position ``pos`` counts ``0 .. length - 1`` on each step and then wraps. From it:

    * ``first``, ``last``: the first and the last position of the axis;
    * ``real``: a position of the image itself, not of the padding before or after it;
    * ``hit``: a window ends here, i.e. ``pos = kernel - 1 + k * stride`` for some ``k`` below
      the number of windows along the axis. ``phase`` counts ``(pos - kernel + 1) mod stride``
      alongside ``pos``, so no division is needed; no position past the last window has phase
      0, so only the lower bound is compared.
    """

    def __init__(self, name: str, *, size: int, padding: int, kernel: int, stride: int):
        self.size, self.padding, self.kernel, self.stride = size, padding, kernel, stride
        self.length = size + 2 * padding
        self.windows = (self.length - kernel) // stride + 1
        #: The positions at which windows end.
        self.hits = [kernel - 1 + k * stride for k in range(self.windows)]
        phase = (1 - kernel) % stride
        first, last, real, hit = self._flags(0, phase)
        self.pos   = Signal(range(self.length), name=name)
        self.phase = Signal(range(stride), init=phase, name=f"{name}_phase")
        # The flags are registers, loaded with those of the next position: the unit's
        # `i.ready` depends on them and reaches back into the queue before it.
        self.first = Signal(name=f"{name}_first", init=first)
        self.last  = Signal(name=f"{name}_last", init=last)
        self.real  = Signal(name=f"{name}_real", init=real)
        self.hit   = Signal(name=f"{name}_hit", init=hit)

    def _flags(self, pos, phase):
        """``(first, last, real, hit)`` of a position and its phase (integers or values)."""
        return (pos == 0, pos == self.length - 1,
                (pos >= self.padding) & (pos < self.padding + self.size),
                (phase == 0) & (pos >= self.kernel - 1))

    def elaborate(self, m: Module, step):
        """Add the counter to ``m``; it moves one position on each cycle ``step`` is high.

        Returns the ``(first, last, real, hit)`` flags of the next position (values), which
        the flags take when the counter moves."""
        pos = Signal.like(self.pos, name=f"{self.pos.name}_next")
        phase = Signal.like(self.phase, name=f"{self.phase.name}_next")
        with m.If(self.last):
            m.d.comb += [pos.eq(0), phase.eq(self.phase.init)]
        with m.Else():
            m.d.comb += [pos.eq(self.pos + 1),
                         phase.eq(Mux(self.phase == self.stride - 1, 0, self.phase + 1))]
        following = self._flags(pos, phase)
        with m.If(step):
            m.d.sync += [self.pos.eq(pos), self.phase.eq(phase)]
            m.d.sync += [flag.eq(value) for flag, value in
                         zip((self.first, self.last, self.real, self.hit), following)]
        return following


class SlidingWindow(wiring.Component):
    """Turns a stream of pixels into a stream of ``kernel`` x ``kernel`` windows.

    An image streams pixel by pixel, rows top to bottom and each row left to right, one pixel
    of ``channels`` elements per beat (H, W, C order); images follow each other with no gap.
    The unit pads the image with ``padding`` pixels of ``pad_value`` elements on every side
    and outputs, for each window position ``(oh, ow)`` in row-major order, one beat holding the
    window whose element ``(kh * kernel + kw) * channels + c`` is channel ``c`` of the padded
    image's pixel ``(oh * stride + kh, ow * stride + kw)``. The padding is produced inside
    the unit: it is not on the input stream.

    Structure: counters walk the padded grid, one position per cycle; at each position a
    column of ``kernel`` pixels enters a ``kernel`` x ``kernel`` register window from the
    right, and the window is offered on ``o`` (the window registers are the payload) when a
    window ends at that position. The column is the position's pixel (the input pixel, or
    ``pad_value`` in the padding) under the ``kernel - 1`` pixels above it, which a line buffer
    holds: one :class:`~amaranth.lib.memory.Memory` of ``width`` words (the image's columns;
    the padding columns are not stored), each word holding ``kernel - 1`` pixels of one
    column, so the ``kernel - 1`` line buffers share one synchronous read port and one write
    port and map to block RAM. The word of a column is read one position ahead and written
    back, shifted by one pixel, as the column is passed. Padding rows go through the line
    buffer like image rows, so the rows above a window are always those of the same image.

    Flow control: the grid advances when the window registers are free (``o.valid`` low or
    ``o.ready`` high) and, at a position of the image itself, when an input pixel is valid:
    ``i.ready`` is high at such positions when the window registers are free. Padding
    positions need no input, but the grid waits at its first position until the image's first
    pixel is offered (``i.valid``, which it observes there without taking the pixel): no
    window of an image, not even one of padding alone, is offered before the image has begun.
    A first pixel offered while the unit waits there is therefore taken ``padding * Wp +
    padding`` cycles later (``Wp`` the padded width), after the top padding, if ``o`` does not
    stall.

    Timing, when neither side stalls: one padded grid position per cycle, so
    ``cycles_per_image = (height + 2 * padding) * (width + 2 * padding)``, and the last window
    of an image is transferred ``latency`` cycles after its first pixel: if the image's first
    pixel is transferred in cycle ``t`` (counting clock edges), its last window is in cycle
    ``t + latency``. ``latency`` is ``(r * Wp + c) - (padding * Wp + padding) + 1``, the grid
    positions from the first pixel ``(padding, padding)`` to the last window's bottom-right
    pixel ``(r, c)``, plus one for the output register. It is 0 or negative only if that
    window holds padding alone, lying before the first pixel.

    Parameters
    ----------
    element_shape : shape-like
        Shape of each element.
    channels : int
        Elements per pixel.
    height, width : int
        Size of the images, in pixels.
    kernel : int
        Size of the square window; at most the padded height and width.
    stride : int
        Step between windows, in both directions; windows not starting at a multiple of it
        are skipped.
    padding : int
        Pixels of padding on each side.
    pad_value : int
        Value of every element of a padding pixel.

    Attributes
    ----------
    out_height, out_width : int
        Windows down and across: ``(height + 2 * padding - kernel) // stride + 1``, and the
        same for the width.
    windows : int
        Windows per image, ``out_height * out_width``.
    cycles_per_image : int
        Cycles per image in the steady state when neither side stalls.
    latency : int
        Cycles from the transfer of an image's first pixel to that of its last window when
        neither side stalls (see above).
    line_buffer_bits : int
        Bits held in the line buffer memory, ``(kernel - 1) * width * channels`` elements.

    Members
    -------
    i : ``In(stream.Signature(ArrayLayout(element_shape, channels)))``
        Pixels.
    o : ``Out(stream.Signature(ArrayLayout(element_shape, kernel * kernel * channels)))``
        Windows.
    """

    def __init__(self, element_shape: ShapeLike, *, channels: int, height: int, width: int,
                 kernel: int, stride: int = 1, padding: int = 0, pad_value: int = 0):
        shape = Shape.cast(element_shape)
        self.channels = check_count("Channel count", channels)
        self.height   = check_count("Height", height)
        self.width    = check_count("Width", width)
        self.kernel   = check_count("Kernel", kernel)
        self.stride   = check_count("Stride", stride)
        self.padding  = check_count("Padding", padding, minimum=0)
        padded = (height + 2 * padding, width + 2 * padding)
        if kernel > min(padded):
            raise ValueError(f"Kernel must be at most the padded image size {padded[0]}x"
                             f"{padded[1]}, not {kernel}")
        lo, hi = (-(1 << (shape.width - 1)), 1 << (shape.width - 1)) if shape.signed else \
                 (0, 1 << shape.width)
        if not isinstance(pad_value, int) or not lo <= pad_value < hi:
            raise ValueError(f"Pad value must be an integer that fits {shape!r}, not "
                             f"{pad_value!r}")
        self.pad_value = pad_value
        self._element_shape = shape
        self._rows = dict(size=height, padding=padding, kernel=kernel, stride=stride)
        self._cols = dict(size=width, padding=padding, kernel=kernel, stride=stride)
        rows, cols = _GridAxis("row", **self._rows), _GridAxis("col", **self._cols)
        self.out_height, self.out_width = rows.windows, cols.windows
        self.windows = self.out_height * self.out_width
        self.cycles_per_image = rows.length * cols.length
        last_window = rows.hits[-1] * cols.length + cols.hits[-1]
        self.latency = last_window - (padding * cols.length + padding) + 1
        self.line_buffer_bits = (kernel - 1) * width * channels * shape.width
        super().__init__({
            "i": In(stream.Signature(data.ArrayLayout(element_shape, channels))),
            "o": Out(stream.Signature(data.ArrayLayout(element_shape,
                                                       kernel * kernel * channels))),
        })

    def elaborate(self, platform):
        m = Module()
        k = self.kernel
        pixel_bits = self.channels * self._element_shape.width
        rows, cols = _GridAxis("row", **self._rows), _GridAxis("col", **self._cols)

        free = ~self.o.valid | self.o.ready      # the window registers may change
        # Flags of the whole grid, registers loaded with the next position's (like the axes'
        # own): `step` is then one gate from registers, and it enables every window register.
        # `real`: this position takes an input pixel; `held`: the grid waits here for
        # `i.valid` (a position of the image, or the grid's first one: an image starts once
        # its first pixel is offered, and the pixel is taken once reached).
        real = Signal(init=rows.real.init & cols.real.init)
        held = Signal(init=(rows.real.init & cols.real.init) |
                           (rows.first.init & cols.first.init))
        step = Signal()                          # the grid moves on to the next position
        m.d.comb += [
            self.i.ready.eq(real & free),
            step.eq(free & (~held | self.i.valid)),
        ]
        col_first, _, col_real, _ = cols.elaborate(m, step)
        row_first, _, row_real, _ = rows.elaborate(m, step & cols.last)
        # The row of the next position: the next row after the row's last column.
        row_first = Mux(cols.last, row_first, rows.first)
        row_real = Mux(cols.last, row_real, rows.real)
        with m.If(step):
            m.d.sync += [real.eq(row_real & col_real),
                         held.eq((row_real & col_real) | (row_first & col_first))]

        pad_pixel = Cat(Const(self.pad_value, self._element_shape)
                        for _ in range(self.channels))
        pixel = _select(real, self.i.payload.as_value(), pad_pixel)

        # The column entering the window, top row (kh = 0) in the low bits.
        column = Signal(k * pixel_bits)
        if k == 1:
            m.d.comb += column.eq(pixel)
        else:
            m.d.comb += column.eq(_select(cols.real,
                                          Cat(self._line_buffer(m, cols, step, pixel), pixel),
                                          Cat(pad_pixel for _ in range(k))))

        # The window: `window[kw]` is column `kw`, the newest on the right (kw = k - 1).
        window = [Signal(k * pixel_bits, name=f"window_col{kw}") for kw in range(k)]
        with m.If(step):
            m.d.sync += [left.eq(right) for left, right in zip(window, window[1:])]
            m.d.sync += window[-1].eq(column)
        with m.If(free):
            m.d.sync += self.o.valid.eq(step & rows.hit & cols.hit)
        m.d.comb += self.o.payload.eq(Cat(window[kw].word_select(kh, pixel_bits)
                                          for kh in range(k) for kw in range(k)))
        return m

    def _line_buffer(self, m, cols, step, pixel):
        """The ``kernel - 1`` pixels above the current position, oldest row in the low bits;
        meaningful at image columns only."""
        k, width = self.kernel, self.width
        pixel_bits = len(pixel)
        m.submodules.lines = lines = Memory(shape=unsigned((k - 1) * pixel_bits), depth=width,
                                            init=[])
        write = lines.write_port()
        # The word is read one position ahead of its use. It is never read in the cycle it is
        # written, so the port needs no transparency: consecutive image columns differ when
        # width > 1, and width == 1 with kernel > 1 implies padding columns between them.
        read = lines.read_port()
        address = Signal(range(width))           # the image column at or after this position
        following = Mux(address == width - 1, 0, address + 1)
        m.d.comb += [
            read.en.eq(step),
            read.addr.eq(Mux(cols.real, following, address)),
            write.en.eq(step & cols.real),
            write.addr.eq(address),
            write.data.eq(Cat(read.data[pixel_bits:], pixel)),   # the oldest row leaves
        ]
        with m.If(step & cols.real):
            m.d.sync += address.eq(following)
        return read.data
