"""A first-in first-out queue on streams."""

from amaranth.hdl import Module, Shape, ShapeLike
from amaranth.lib import fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from .skid import SkidBuffer

__all__ = ["StreamFIFO"]


class StreamFIFO(wiring.Component):
    """``depth`` payloads in a :class:`~amaranth.lib.fifo.SyncFIFOBuffered` (its output is a
    register; the others in a memory, block RAM when large), then a
    :class:`~.skid.SkidBuffer`, so that ``o.ready`` ends at registers: the queue's read logic
    (its level, its pointers) does not wait on the consumer's ``ready``.

    It lets a producer run ahead of a consumer that takes its input in bursts: a convolution's
    sliding window takes pixels only between the windows it hands to its matrix-vector unit,
    while the layer before produces them at its own pace.

    Timing: a payload written into an empty queue is offered ``latency`` cycles later: 2 for
    ``depth = 1`` (a register and the skid buffer's), else 3 (the memory's read, the output
    register, the skid buffer's).

    Parameters
    ----------
    payload_shape : shape-like
        Shape of the payloads.
    depth : int
        Payloads held in the queue, at least 1 (the skid buffer holds up to two more).

    Attributes
    ----------
    latency : int
        See above.

    Members
    -------
    i : ``In(stream.Signature(payload_shape))``
    o : ``Out(stream.Signature(payload_shape))``
    """

    @staticmethod
    def latency_of(depth: int) -> int:
        """The :attr:`latency` of a queue of ``depth`` payloads."""
        return (1 if depth == 1 else 2) + SkidBuffer.latency

    def __init__(self, payload_shape: ShapeLike, depth: int):
        if not isinstance(depth, int) or isinstance(depth, bool) or depth < 1:
            raise TypeError(f"Depth must be a positive integer, not {depth!r}")
        self.depth = depth
        self.latency = self.latency_of(depth)
        self._payload_shape = payload_shape
        super().__init__({
            "i": In(stream.Signature(payload_shape)),
            "o": Out(stream.Signature(payload_shape)),
        })

    def elaborate(self, platform):
        m = Module()
        width = Shape.cast(self._payload_shape).width
        m.submodules.queue = queue = fifo.SyncFIFOBuffered(width=width, depth=self.depth)
        m.submodules.skid = skid = SkidBuffer(self._payload_shape)
        m.d.comb += [
            queue.w_data.eq(self.i.payload),
            queue.w_en.eq(self.i.valid),
            self.i.ready.eq(queue.w_rdy),
            skid.i.payload.eq(queue.r_data),
            skid.i.valid.eq(queue.r_rdy),
            queue.r_en.eq(skid.i.ready),
        ]
        wiring.connect(m, skid.o, wiring.flipped(self.o))
        return m
