# amaranth: UnusedElaboratable=no
import numpy as np
import pytest
from amaranth.hdl import Module, Signal
from amaranth.sim import Simulator

from fewmul.gateware.counter import wrapping_counter


@pytest.mark.parametrize("count", [1, 2, 3, 7, 16])
def test_counts_wraps_and_flags_the_last_value(count):
    m = Module()
    enable = Signal()
    value, last = wrapping_counter(m, count, enable, "c")
    steps = np.random.default_rng(count).random(60) < 0.6

    async def testbench(ctx):
        expected = 0
        for step in steps:
            assert ctx.get(value) == expected and ctx.get(last) == (expected == count - 1)
            ctx.set(enable, bool(step))
            await ctx.tick()
            expected = (expected + int(step)) % count

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()


def test_errors():
    with pytest.raises(TypeError, match="Count must be a positive integer, not 0"):
        wrapping_counter(Module(), 0, 1, "c")
