"""A queue whose writer reserves room in advance, so that the writer never has to stall."""

from amaranth.hdl import Module, Mux, Shape, ShapeLike, Signal, Value
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

__all__ = ["CreditQueue"]


class CreditQueue(wiring.Component):
    """A first-in first-out queue of ``capacity`` payloads, filled by credits.

    The writer is a pipeline that must not stall: it asks for a credit (``reserve``) when it
    starts an item, which it may do while ``credit`` is high, and writes the item
    (``i.valid``) any number of cycles later. A credit is returned when an item leaves on
    ``o``, so the queue always has room for what was reserved and ``i`` has no ``ready``.
    ``credit`` is a register, and ``o.ready`` reaches only the read pointer and the counters:
    no enable of the writer's pipeline depends on it.

    The items wait in a small memory (distributed RAM or registers on an FPGA): an item is
    written straight into its place, and ``o.payload`` reads the oldest one asynchronously;
    ``o.valid`` is a register.

    Timing: an item written into an empty queue is offered on ``o`` ``latency = 1`` cycle
    later. A writer that reserves an item every ``p`` cycles and writes it ``d`` cycles after
    its reservation, into a queue whose output is always taken, never waits for a credit if
    ``capacity >= ceil((d + 1) / p) + 1``.

    Parameters
    ----------
    payload_shape : shape-like
        Shape of the payloads.
    capacity : int
        Payloads the queue holds, counting the one in the output register.

    Attributes
    ----------
    capacity : int

    Members
    -------
    reserve : ``In(1)``
        Takes a credit (only while ``credit`` is high).
    credit : ``Out(1)``
        At least one credit is left.
    i : ``In(stream.Signature(payload_shape, always_ready=True))``
        Items, each written once, after its reservation.
    o : ``Out(stream.Signature(payload_shape))``
        The items, in the order written.
    """

    latency = 1

    def __init__(self, payload_shape: ShapeLike, capacity: int):
        if not isinstance(payload_shape, data.Layout):
            Shape.cast(payload_shape)
        if not isinstance(capacity, int) or isinstance(capacity, bool) or capacity <= 0:
            raise TypeError(f"Queue capacity must be a positive integer, not {capacity!r}")
        self.capacity = capacity
        super().__init__({
            "reserve": In(1),
            "credit": Out(1),
            "i": In(stream.Signature(payload_shape, always_ready=True)),
            "o": Out(stream.Signature(payload_shape)),
        })

    def elaborate(self, platform):
        m = Module()
        free = Signal(range(self.capacity + 1), init=self.capacity)  # credits left
        free_next = Signal.like(free)
        credit = Signal(init=1)   # free != 0, as a register of its own
        pop = self.o.valid & self.o.ready
        m.d.comb += [free_next.eq(free - self.reserve + pop), self.credit.eq(credit)]
        m.d.sync += [free.eq(free_next), credit.eq(free_next != 0)]

        # A circular buffer: an item is written straight into its place (no multiplexer in
        # front of the writer's last register), and the output reads the oldest one.
        width = Shape.cast(self.i.payload.shape()).width
        m.submodules.storage = memory = Memory(shape=width, depth=self.capacity, init=[])
        write = memory.write_port()
        read = memory.read_port(domain="comb")
        wptr = Signal(range(self.capacity))
        rptr = Signal(range(self.capacity))
        stored = Signal(range(self.capacity + 1))   # items in the queue
        stored_next = Signal.like(stored)

        def step(ptr):
            if self.capacity & (self.capacity - 1) == 0:
                return ptr.eq(ptr + 1)
            return ptr.eq(Mux(ptr == self.capacity - 1, 0, ptr + 1))

        m.d.comb += [
            write.addr.eq(wptr),
            write.data.eq(Value.cast(self.i.payload)),
            write.en.eq(self.i.valid),
            read.addr.eq(rptr),
            self.o.payload.eq(read.data),
            stored_next.eq(stored + self.i.valid - pop),
        ]
        with m.If(self.i.valid):
            m.d.sync += step(wptr)
        with m.If(pop):
            m.d.sync += step(rptr)
        m.d.sync += [stored.eq(stored_next), self.o.valid.eq(stored_next != 0)]
        return m
