"""StreamFIFO: order, back-pressure and capacity, against the payloads sent."""

import numpy as np
import pytest
from amaranth.hdl import unsigned
from amaranth.lib import data
from amaranth.sim import Simulator

from fewmul.gateware import StreamFIFO
from gateware_helpers import StreamMonitor, simulate, stream_get, stream_put


@pytest.mark.parametrize("depth,p_stall,seed", [(1, 0.0, 0), (2, 0.4, 1), (5, 0.3, 2),
                                                (16, 0.5, 3)])
def test_fifo_passes_every_payload_in_order(depth, p_stall, seed):
    dut = StreamFIFO(data.ArrayLayout(unsigned(3), 4), depth)
    rng = np.random.default_rng(seed)
    payloads = rng.integers(0, 8, (40, 4)).tolist()
    _, out = simulate(dut, payloads, len(payloads), seed=seed, p_stall=p_stall)
    assert out.payloads == payloads


@pytest.mark.parametrize("depth", [1, 2, 3])
def test_fifo_holds_depth_and_two_payloads_and_offers_the_first_after_its_latency(depth):
    dut = StreamFIFO(data.ArrayLayout(unsigned(8), 2), depth)
    payloads = [[v, 255 - v] for v in range(10)]
    accepted, offered = StreamMonitor(dut.i), StreamMonitor(dut.o)
    first_valid = []

    async def source(ctx):
        await stream_put(ctx, dut.i, payloads)

    async def sink(ctx):
        for cycle in range(12):          # nothing is taken for 12 cycles
            _, _, valid = await ctx.tick().sample(dut.o.valid)
            if valid and not first_valid:
                first_valid.append(cycle)
        assert await stream_get(ctx, dut.o, 10) == payloads

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    for mon in (accepted, offered):
        sim.add_testbench(mon.testbench, background=True)
    sim.add_testbench(source)
    sim.add_testbench(sink)
    sim.run()
    assert first_valid == [dut.latency] == [2 if depth == 1 else 3]
    # `depth` payloads, and two in the skid buffer, go in while nothing is taken; the next
    # waits until one is
    assert all(cycle < 12 for cycle in accepted.cycles[:depth + 2])
    assert accepted.cycles[depth + 2] >= 12
    assert offered.payloads == payloads


def test_fifo_depth_must_be_positive():
    with pytest.raises(TypeError, match="Depth must be a positive integer, not 0"):
        StreamFIFO(unsigned(4), 0)
