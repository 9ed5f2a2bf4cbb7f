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
    ``credit`` is a register, and ``o.ready`` reaches only the output register,
    the read pointer and the counters: no enable of the writer's pipeline depends on it.

    The output is a register (the head); the other ``capacity - 1`` payloads wait in a small
    memory (distributed RAM on an FPGA), read asynchronously into the head.

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
        depth = self.capacity - 1           # payloads waiting behind the output register
        free = Signal(range(self.capacity + 1), init=self.capacity)  # credits left
        free_next = Signal.like(free)
        credit = Signal(init=1)   # free != 0, as a register of its own
        pop = self.o.valid & self.o.ready
        head_free = ~self.o.valid | self.o.ready
        m.d.comb += [free_next.eq(free - self.reserve + pop), self.credit.eq(credit)]
        m.d.sync += [free.eq(free_next), credit.eq(free_next != 0)]

        if depth == 0:
            with m.If(head_free):
                m.d.sync += [self.o.valid.eq(self.i.valid), self.o.payload.eq(self.i.payload)]
            return m

        width = Shape.cast(self.i.payload.shape()).width
        m.submodules.storage = memory = Memory(shape=width, depth=depth, init=[])
        write = memory.write_port()
        read = memory.read_port(domain="comb")
        wptr = Signal(range(depth))
        rptr = Signal(range(depth))
        stored = Signal(range(depth + 1))   # payloads in the memory
        waiting = stored != 0

        def step(ptr):
            return ptr.eq(ptr + 1) if depth & (depth - 1) == 0 else \
                ptr.eq(Mux(ptr == depth - 1, 0, ptr + 1))

        take = head_free & waiting          # the head is refilled from the memory
        put = self.i.valid & (waiting | ~head_free)  # the new item waits in the memory
        m.d.comb += [
            read.addr.eq(rptr),
            write.addr.eq(wptr),
            write.data.eq(Value.cast(self.i.payload)),
            write.en.eq(put),
        ]
        with m.If(head_free):
            m.d.sync += [
                self.o.valid.eq(waiting | self.i.valid),
                self.o.payload.eq(Mux(waiting, read.data, Value.cast(self.i.payload))),
            ]
        with m.If(take):
            m.d.sync += step(rptr)
        with m.If(put):
            m.d.sync += step(wptr)
        m.d.sync += stored.eq(stored + put - take)
        return m
