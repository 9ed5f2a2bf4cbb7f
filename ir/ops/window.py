"""``SlidingWindow``: the windows of a convolution, each a vector for the next
:class:`~.matvec.MatVec` (im2col, streamed)."""

from __future__ import annotations

import numpy as np
from amaranth.hdl import unsigned

from fewmul.gateware.window import SlidingWindow as SlidingWindowUnit

from ..op import Binding, Estimate, Op, StreamLayout, register
from ..types import TensorType
from .matvec import memory_estimate

__all__ = ["SlidingWindow", "window_size", "LUT_PER_WINDOW_BIT", "LUT_WINDOW_CONTROL"]

#: Area model: the window register's input multiplexer (a line buffer word, a new pixel or the
#: pad value), per bit of the window, and the counters of the padded grid.
LUT_PER_WINDOW_BIT = 0.5
LUT_WINDOW_CONTROL = 60


def window_size(size: int, kernel: int, stride: int, padding: int) -> int:
    """Windows along one axis of ``size`` pixels (0 if the kernel does not fit)."""
    span = size + 2 * padding - kernel
    return span // stride + 1 if span >= 0 else 0


@register
class SlidingWindow(Op):
    """The ``kernel x kernel`` windows of a ``(C, H, W)`` input at ``stride``, with ``padding``
    pixels on every side.

    Output ``(K * K * C, OH, OW)``: the window at ``(oh, ow)`` is the padded input at rows
    ``oh * stride + kh``, columns ``ow * stride + kw``, flattened in ``(kh, kw, c)`` order, the
    order of a convolution's weight columns. Padding pixels hold 0 in every element: 0 for
    unsigned levels, -1 for bipolar bits.
    """
    kind = "window"

    def __init__(self, name: str, in_type: TensorType, kernel: int, stride: int = 1,
                 padding: int = 0):
        super().__init__(name, in_type)
        for what, value, least in (("Kernel", kernel, 1), ("Stride", stride, 1),
                                   ("Padding", padding, 0)):
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < least:
                raise ValueError(f"{name}: {what} must be an integer >= {least}, not {value!r}")
        if in_type.kind not in ("bipolar", "unsigned"):
            raise ValueError(f"{name}: inputs must be bipolar or unsigned, not {in_type.kind!r}")
        self.kernel, self.stride, self.padding = int(kernel), int(stride), int(padding)
        _, h, w = in_type.shape
        if not window_size(h, self.kernel, self.stride, self.padding) or \
                not window_size(w, self.kernel, self.stride, self.padding):
            raise ValueError(f"{name}: a {kernel}x{kernel} kernel does not fit a {h}x{w} input "
                             f"padded by {padding}")

    @property
    def out_type(self) -> TensorType:
        c, h, w = self.in_type.shape
        k, s, p = self.kernel, self.stride, self.padding
        return TensorType((k * k * c, window_size(h, k, s, p), window_size(w, k, s, p)),
                          self.in_type.kind, self.in_type.bits)

    def forward(self, x):
        c, h, w = self.in_type.shape
        k, s, p = self.kernel, self.stride, self.padding
        _, oh, ow = self.out_type.shape
        images = np.asarray(x).reshape(len(x), h, w, c)
        images = np.pad(images, ((0, 0), (p, p), (p, p), (0, 0)))
        # (n, OH', OW', C, K, K) -> the windows at the strided positions, in (kh, kw, c) order
        views = np.lib.stride_tricks.sliding_window_view(images, (k, k), axis=(1, 2))
        views = views[:, ::s, ::s][:, :oh, :ow]
        return views.transpose(0, 1, 2, 4, 5, 3).reshape(len(x), -1)

    def arrays(self):
        return {"kernel": np.array(self.kernel), "stride": np.array(self.stride),
                "padding": np.array(self.padding)}

    @classmethod
    def from_arrays(cls, name, in_type, arrays):
        return cls(name, in_type, int(arrays["kernel"]), int(arrays["stride"]),
                   int(arrays["padding"]))

    def describe(self) -> str:
        k = self.kernel
        pad = f", padding {self.padding}" if self.padding else ""
        return f"{k}x{k} windows, stride {self.stride}{pad}: {self.in_type} -> {self.out_type}"


class SlidingWindowBinding(Binding):
    """A :class:`~fewmul.gateware.SlidingWindow`: line buffers in block RAM and a window
    register; it takes one pixel of ``C`` elements per beat and gives one window per beat. It
    belongs to the layer of the :class:`~.matvec.MatVec` it feeds.

    The unit walks the padded grid one position per cycle, but not past a window its
    matrix-vector unit has not taken yet: a window that waits ``p`` cycles for it costs
    ``max(p, gap + 1)`` cycles, ``gap`` the positions without a window before it
    (:meth:`paced_cycles`)."""
    role = "window"
    takes_vector = True
    feeds_layer = True

    def unit(self) -> SlidingWindowUnit:
        op = self.op
        c, h, w = op.in_type.shape
        return SlidingWindowUnit(unsigned(op.in_type.bits), channels=c, height=h, width=w,
                                 kernel=op.kernel, stride=op.stride, padding=op.padding)

    def _grid(self) -> tuple[int, int, list[int]]:
        """``(padded width, grid positions, window positions)``, positions counted in raster
        order over the padded image, a window at the position of its bottom-right pixel."""
        op = self.op
        _, h, w = op.in_type.shape
        k, s, p = op.kernel, op.stride, op.padding
        _, oh, ow = op.out_type.shape
        wp = w + 2 * p
        hits = [(k - 1 + i * s) * wp + k - 1 + j * s for i in range(oh) for j in range(ow)]
        return wp, (h + 2 * p) * wp, hits

    def cycles(self, folding):
        return self._grid()[1]

    def paced_cycles(self, folding, beat_cycles):
        _, grid, hits = self._grid()
        gaps = [b - a - 1 for a, b in zip([hits[-1] - grid] + hits, hits)]
        return sum(max(beat_cycles, gap + 1) for gap in gaps)

    def latency(self, folding):
        # from the image's first pixel, at (padding, padding), to its last window
        wp, _, hits = self._grid()
        p = self.op.padding
        return hits[-1] - (p * wp + p) + 1

    def input_queue(self):
        """The pixels it takes before its first window, ``(K - 1)`` rows and ``K`` pixels: the
        layer before then makes the start of the next image while the window unit finishes
        the last one. Measured in the Amaranth simulator, cycles per inference: the 8x8
        digits CNN, 169 without a queue for 156 predicted; a 16x16 CNV-like net, 3072 with a
        row queued for 2816 predicted, and 2816 with this depth."""
        op = self.op
        return max(2, (op.kernel - 1) * op.in_type.shape[2] + op.kernel)

    def line_buffer_bits(self) -> int:
        op = self.op
        c, _, w = op.in_type.shape
        return (op.kernel - 1) * w * c * op.in_type.bits

    def estimate(self, folding):
        """The window register and its multiplexer, the line buffer (a word of ``K - 1``
        pixels per column) and the queue of pixels before it (:meth:`input_queue`)."""
        op = self.op
        c, _, w = op.in_type.shape
        pixel = c * op.in_type.bits
        window_bits = op.out_type.channels * op.in_type.bits
        line = memory_estimate(w, (op.kernel - 1) * pixel)
        queue = memory_estimate(self.input_queue(), pixel)
        return Estimate(LUT_PER_WINDOW_BIT * window_bits + LUT_WINDOW_CONTROL,
                        2 * window_bits + 32, 0) + line + queue

    def stream(self, folding):
        out = self.op.out_type
        return StreamLayout(out.pixels, out.channels, out.bits, False)

    def build(self, folding):
        unit = self.unit()
        assert (unit.cycles_per_image, unit.latency, unit.line_buffer_bits) == \
            (self.cycles(folding), self.latency(folding), self.line_buffer_bits())
        return unit

    def report(self, folding, unit):
        op = self.op
        return {"kernel": op.kernel, "stride": op.stride, "padding": op.padding,
                "window_cycles": unit.cycles_per_image, "line_buffer_bits": unit.line_buffer_bits}


SlidingWindow.binding_class = SlidingWindowBinding
