# amaranth: UnusedElaboratable=no
import numpy as np
import pytest
from amaranth.hdl import signed, unsigned
from amaranth.sim import Simulator

from fewmul.gateware import Collector

from gateware_helpers import simulate, stream_put, to_py

# (element_shape, count, pe)
CASES = [
    (unsigned(1), 12, 1),
    (unsigned(1), 12, 12),
    (unsigned(1), 12, 4),
    (signed(7), 6, 3),
    (signed(7), 5, 5),
]


def random_elements(rng, shape, size):
    lo, hi = (-(1 << (shape.width - 1)), 1 << (shape.width - 1)) if shape.signed else \
             (0, 1 << shape.width)
    return rng.integers(lo, hi, size=size)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("stalls", [False, True])
def test_collect(case, stalls):
    shape, count, pe = case
    vectors = random_elements(np.random.default_rng(count + pe), shape, (7, count))
    dut = Collector(shape, pe, count)
    in_mon, out_mon = simulate(dut, vectors.reshape(-1, pe).tolist(), len(vectors),
                               seed=count if stalls else None, p_stall=0.4)
    assert out_mon.payloads == vectors.tolist()
    if not stalls:
        # Beats arrive back to back, including the first beat of the next vector while the full
        # one is taken; each vector is valid `latency` cycles after its last beat.
        groups = count // pe
        assert np.all(np.diff(in_mon.cycles) == 1)
        assert out_mon.cycles == [c + dut.latency for c in in_mon.cycles[groups - 1::groups]]


def test_backpressure():
    """A full vector blocks further beats until it is taken."""
    dut = Collector(unsigned(4), 2, 4)
    beats = [[1, 2], [3, 4], [5, 6], [7, 8], [9, 10]]

    async def testbench(ctx):
        ctx.set(dut.o.ready, 0)
        for beat in beats[:2]:
            await stream_put(ctx, dut.i, [beat])
        for _ in range(5):
            _, _, i_ready, o_valid = await ctx.tick().sample(dut.i.ready, dut.o.valid)
            assert o_valid and not i_ready
        assert to_py(ctx.get(dut.o.payload)) == [1, 2, 3, 4]
        ctx.set(dut.o.ready, 1)
        ctx.set(dut.i.payload, beats[2])
        ctx.set(dut.i.valid, 1)
        assert ctx.get(dut.i.ready)  # taking the full vector frees the buffer in the same cycle
        await ctx.tick()
        ctx.set(dut.i.valid, 0)
        _, _, o_valid = await ctx.tick().sample(dut.o.valid)
        assert not o_valid

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()


def test_errors():
    with pytest.raises(ValueError, match=r"M=12, not pe=5; valid values are \[1, 2, 3, 4, 6, 12\]"):
        Collector(unsigned(1), 5, 12)
    with pytest.raises(TypeError, match="Count must be a positive integer, not 0"):
        Collector(unsigned(1), 1, 0)
