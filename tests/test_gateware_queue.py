# amaranth: UnusedElaboratable=no
import numpy as np
import pytest
from amaranth.hdl import signed, unsigned
from amaranth.lib import data
from amaranth.sim import Simulator

from fewmul.gateware import CreditQueue

from gateware_helpers import StreamMonitor


def run_queue(dut, payloads, *, delay, period, seed, p_stall=0.4):
    """A writer that reserves when it may (at most every ``period`` cycles) and writes each item
    ``delay`` cycles after its reservation; a reader that stalls with probability ``p_stall``
    (never if ``seed`` is None). Returns the reservation cycles and the output monitor."""
    rng = np.random.default_rng(seed) if seed is not None else None
    out_mon = StreamMonitor(dut.o)
    reserved = []
    dut.kept = []   # per cycle: (credit, credit_kept) seen by the writer, after its reserve

    async def writer(ctx):
        cycle, pending, sent, last = 0, [], 0, -period
        while sent < len(payloads):
            take = len(reserved) < len(payloads) and cycle - last >= period and \
                ctx.get(dut.credit)
            ctx.set(dut.reserve, take)
            dut.kept.append((ctx.get(dut.credit), ctx.get(dut.credit_kept), take))
            if take:
                reserved.append(cycle)
                pending.append(cycle + delay)
                last = cycle
            due = bool(pending) and pending[0] == cycle
            ctx.set(dut.i.valid, due)
            if due:
                ctx.set(dut.i.payload, payloads[sent])
                pending.pop(0)
                sent += 1
            await ctx.tick()
            cycle += 1
        ctx.set(dut.reserve, 0)
        ctx.set(dut.i.valid, 0)

    async def reader(ctx):
        while len(out_mon.payloads) < len(payloads):
            ctx.set(dut.o.ready, rng is None or rng.random() >= p_stall)
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(writer)
    sim.add_testbench(reader)
    sim.add_testbench(out_mon.testbench, background=True)
    sim.run()
    return reserved, out_mon


@pytest.mark.parametrize("capacity, delay, period", [(1, 0, 1), (3, 1, 1), (5, 3, 1), (2, 1, 2),
                                                     (3, 4, 3), (4, 2, 1), (7, 5, 1)])
@pytest.mark.parametrize("seed", [None, 3, 4])
def test_passes_every_item_once_in_order(capacity, delay, period, seed):
    shape = data.ArrayLayout(signed(5), 3)
    payloads = np.random.default_rng(capacity).integers(-16, 16, size=(30, 3)).tolist()
    dut = CreditQueue(shape, capacity)
    reserved, out_mon = run_queue(dut, payloads, delay=delay, period=period, seed=seed)
    assert out_mon.payloads == payloads
    if seed is None:
        # Output always taken: each item is offered one cycle after it is written.
        assert out_mon.cycles == [c + delay + 1 for c in reserved]
        if capacity >= -(-(delay + 1) // period) + 1:   # enough credits: the writer never waits
            assert np.all(np.diff(reserved) == period)
        if capacity >= -(-(delay + 1) // period) + 2:   # one more: every credit is sure a cycle ahead
            assert all(kept for _, kept, take in dut.kept if take)
    # `credit_kept` is a lower bound of the next cycle's `credit`, whatever the reader does
    for (_, kept, _), (credit, _, _) in zip(dut.kept, dut.kept[1:]):
        assert credit or not kept


def test_credit_and_output_come_from_registers():
    """``credit`` does not follow ``o.ready`` within a cycle; an item written into an empty
    queue is offered the next cycle; a credit comes back the cycle after its item is taken."""
    dut = CreditQueue(unsigned(8), 2)

    async def testbench(ctx):
        ctx.set(dut.o.ready, 0)
        assert ctx.get(dut.credit)
        ctx.set(dut.reserve, 1)
        await ctx.tick()                  # one credit left
        assert ctx.get(dut.credit)
        await ctx.tick()                  # none left
        ctx.set(dut.reserve, 0)
        assert not ctx.get(dut.credit)
        ctx.set(dut.i.valid, 1)
        ctx.set(dut.i.payload, 11)
        assert not ctx.get(dut.o.valid)   # no combinational path from i to o
        await ctx.tick()                  # 11 in the output register
        ctx.set(dut.i.payload, 12)
        assert ctx.get(dut.o.valid) and ctx.get(dut.o.payload) == 11
        await ctx.tick()                  # 12 waits in the memory: the output is stalled
        ctx.set(dut.i.valid, 0)
        ctx.set(dut.o.ready, 1)
        assert not ctx.get(dut.credit)    # still none: no combinational path from o.ready
        assert ctx.get(dut.o.valid) and ctx.get(dut.o.payload) == 11
        await ctx.tick()                  # 11 taken, 12 moves to the output register
        assert ctx.get(dut.credit)
        assert ctx.get(dut.o.valid) and ctx.get(dut.o.payload) == 12
        await ctx.tick()
        assert not ctx.get(dut.o.valid)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()


def test_errors():
    with pytest.raises(TypeError):
        CreditQueue("wide", 2)
    with pytest.raises(TypeError, match="capacity must be a positive integer"):
        CreditQueue(unsigned(4), 0)
