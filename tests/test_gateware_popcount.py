import numpy as np
import pytest
from amaranth.hdl import Module, Signal
from amaranth.sim import Simulator

from fewmul.gateware import popcount


@pytest.mark.parametrize("width", [0, 1, 2, 3, 4, 5, 7, 8, 13, 64, 100])
def test_popcount(width):
    value = Signal(width)
    count = popcount(value)
    assert len(count) == width.bit_length()
    assert not count.shape().signed
    result = Signal(len(count))
    m = Module()
    m.d.comb += result.eq(count)

    rng = np.random.default_rng(width)
    if width <= 8:
        samples = range(1 << width)
    else:
        samples = [0, (1 << width) - 1] + [
            int(rng.integers(0, 2, size=width) @ (1 << np.arange(width, dtype=object)))
            for _ in range(200)]

    async def testbench(ctx):
        for sample in samples:
            ctx.set(value, sample)
            assert ctx.get(result) == bin(sample).count("1")

    sim = Simulator(m)
    sim.add_testbench(testbench)
    sim.run()


def test_popcount_of_expression():
    a, b = Signal(5), Signal(5)
    assert len(popcount(a ^ b)) == 3
    assert len(popcount(a[:1])) == 1
