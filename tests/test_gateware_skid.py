# amaranth: UnusedElaboratable=no
import numpy as np
import pytest
from amaranth.hdl import signed, unsigned
from amaranth.lib import data
from amaranth.sim import Simulator

from fewmul.gateware import SkidBuffer

from gateware_helpers import simulate


@pytest.mark.parametrize("elem, count", [(unsigned(1), 1), (signed(9), 1), (signed(5), 3)])
@pytest.mark.parametrize("seed", [None, 1, 2])
def test_passes_every_payload_once_in_order(elem, count, seed):
    shape = data.ArrayLayout(elem, count)
    lo = -(1 << (elem.width - 1)) if elem.signed else 0
    payloads = np.random.default_rng(7).integers(lo, lo + (1 << elem.width),
                                                 size=(40, count)).tolist()
    in_mon, out_mon = simulate(SkidBuffer(shape), payloads, len(payloads), seed=seed,
                               p_stall=0.4)
    if seed is None:  # no stall: one cycle of latency, no bubble
        assert out_mon.cycles == [c + 1 for c in in_mon.cycles]
        assert np.all(np.diff(in_mon.cycles) == 1)


def test_ready_and_output_come_from_registers():
    """``i.ready`` does not follow ``o.ready`` within a cycle, nor ``o`` follow ``i``; ``i.ready``
    falls only after a payload was left in the spare register."""
    dut = SkidBuffer(unsigned(8))

    async def testbench(ctx):
        ctx.set(dut.o.ready, 0)
        assert ctx.get(dut.i.ready)  # empty: ready although the output is stalled
        ctx.set(dut.i.payload, 5)
        ctx.set(dut.i.valid, 1)
        assert not ctx.get(dut.o.valid)  # no combinational path from i to o
        await ctx.tick()  # 5 into the output register
        ctx.set(dut.i.payload, 6)
        assert ctx.get(dut.i.ready)
        assert ctx.get(dut.o.valid) and ctx.get(dut.o.payload) == 5
        await ctx.tick()  # 6 into the spare register: the output is stalled
        ctx.set(dut.i.payload, 7)
        assert not ctx.get(dut.i.ready)
        ctx.set(dut.o.ready, 1)
        assert not ctx.get(dut.i.ready)  # still low: no combinational path from o.ready
        assert ctx.get(dut.o.valid) and ctx.get(dut.o.payload) == 5
        await ctx.tick()  # 5 taken, 6 moves from the spare register to the output
        assert ctx.get(dut.i.ready)
        assert ctx.get(dut.o.valid) and ctx.get(dut.o.payload) == 6
        await ctx.tick()  # 6 taken, 7 in
        ctx.set(dut.i.valid, 0)
        assert ctx.get(dut.o.valid) and ctx.get(dut.o.payload) == 7
        await ctx.tick()
        assert not ctx.get(dut.o.valid)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()


def test_errors():
    with pytest.raises(TypeError):
        SkidBuffer("wide")
