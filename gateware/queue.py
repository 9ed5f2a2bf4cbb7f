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

    The oldest item is in an output register (``o.payload`` and ``o.valid`` are registers, so
    the reader's logic starts from registers); the others wait in a small circular buffer
    (distributed RAM or registers on an FPGA). An item written while the output register is
    free or being taken, and nothing older waits, goes straight into it.

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
    credit_kept : ``Out(1)``
        A credit is left at the next clock edge whatever ``o`` does: the value ``credit``
        takes then if no item leaves in this cycle, which is at most the value it takes. It
        does not depend on ``o.ready``, so a writer may register a signal derived from it far
        away (a payload can be accepted when its last credit is sure).
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
            "credit_kept": Out(1),
            "i": In(stream.Signature(payload_shape, always_ready=True)),
            "o": Out(stream.Signature(payload_shape)),
        })

    def elaborate(self, platform):
        m = Module()
        free = Signal(range(self.capacity + 1), init=self.capacity)  # credits left
        free_next = Signal.like(free)
        credit = Signal(init=1)   # free != 0, as a register of its own
        pop = self.o.valid & self.o.ready
        m.d.comb += [free_next.eq(free - self.reserve + pop), self.credit.eq(credit),
                     self.credit_kept.eq(free != self.reserve)]
        m.d.sync += [free.eq(free_next), credit.eq(free_next != 0)]

        # The oldest item is in the output register, the others wait in the buffer in order; the
        # buffer's read is asynchronous, and its output feeds only the output register.
        head_free = ~self.o.valid | pop     # the output register may load
        depth = self.capacity - 1           # items behind the output register
        if depth == 0:
            with m.If(head_free):
                m.d.sync += [self.o.payload.eq(self.i.payload), self.o.valid.eq(self.i.valid)]
            return m

        width = Shape.cast(self.i.payload.shape()).width
        m.submodules.storage = memory = Memory(shape=width, depth=depth, init=[])
        write = memory.write_port()
        read = memory.read_port(domain="comb")
        wptr = Signal(range(depth))
        rptr = Signal(range(depth))
        stored = Signal(range(depth + 1))   # items in the buffer
        waiting = Signal()                  # stored != 0, as a register
        stored_next = Signal.like(stored)

        def step(ptr):
            if depth & (depth - 1) == 0:
                return ptr.eq(ptr + 1)
            return ptr.eq(Mux(ptr == depth - 1, 0, ptr + 1))

        bypass = head_free & ~waiting       # an item written now goes to the output register
        store = self.i.valid & ~bypass      # ... or into the buffer
        take = head_free & waiting          # the oldest buffered item moves to the output
        m.d.comb += [
            write.addr.eq(wptr),
            write.data.eq(Value.cast(self.i.payload)),
            write.en.eq(store),
            read.addr.eq(rptr),
            stored_next.eq(stored + store - take),
        ]
        with m.If(store):
            m.d.sync += step(wptr)
        with m.If(take):
            m.d.sync += [step(rptr), Value.cast(self.o.payload).eq(read.data),
                         self.o.valid.eq(1)]
        with m.Elif(head_free):
            m.d.sync += [self.o.payload.eq(self.i.payload), self.o.valid.eq(self.i.valid)]
        m.d.sync += [stored.eq(stored_next), waiting.eq(stored_next != 0)]
        return m
