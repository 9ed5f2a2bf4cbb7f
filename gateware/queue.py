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

    An item is written into a register of its own (so the writer's result feeds one register,
    as it would an output register) and moves into a small memory (distributed RAM or
    registers on an FPGA) when the next one arrives; ``o.payload`` is the oldest item, read
    asynchronously, and ``o.valid`` is a register.

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

        # The newest item is written into a register of its own (`last`, one load per bit of
        # the writer's result, as an output register would be) and moves on into a circular
        # buffer of the older ones when the next item arrives; `o` reads the oldest.
        width = Shape.cast(self.i.payload.shape()).width
        last = Signal(width)
        last_valid = Signal()
        with m.If(self.i.valid):
            m.d.sync += last.eq(Value.cast(self.i.payload))
        depth = self.capacity - 1   # older items
        if depth == 0:
            m.d.comb += self.o.payload.eq(last)
            m.d.sync += self.o.valid.eq(self.i.valid | (self.o.valid & ~self.o.ready))
            return m

        m.submodules.storage = memory = Memory(shape=width, depth=depth, init=[])
        write = memory.write_port()
        read = memory.read_port(domain="comb")
        wptr = Signal(range(depth))
        rptr = Signal(range(depth))
        stored = Signal(range(depth + 1))   # items in the memory
        waiting = Signal()                  # stored != 0, as a register
        stored_next = Signal.like(stored)
        last_valid_next = Signal()

        def step(ptr):
            if depth & (depth - 1) == 0:
                return ptr.eq(ptr + 1)
            return ptr.eq(Mux(ptr == depth - 1, 0, ptr + 1))

        pop_last = pop & ~waiting           # the item taken is the one in `last`
        move = self.i.valid & last_valid & ~pop_last   # `last` goes into the memory
        m.d.comb += [
            write.addr.eq(wptr),
            write.data.eq(last),
            write.en.eq(move),
            read.addr.eq(rptr),
            self.o.payload.eq(Mux(waiting, read.data, last)),
            stored_next.eq(stored + move - (pop & waiting)),
            last_valid_next.eq(self.i.valid | (last_valid & ~pop_last)),
        ]
        with m.If(move):
            m.d.sync += step(wptr)
        with m.If(pop & waiting):
            m.d.sync += step(rptr)
        m.d.sync += [
            stored.eq(stored_next),
            waiting.eq(stored_next != 0),
            last_valid.eq(last_valid_next),
            self.o.valid.eq((stored_next != 0) | last_valid_next),
        ]
        return m
