import numpy as np
import pytest
from amaranth.hdl import Module, Signal
from amaranth.sim import Simulator

from fewmul.gateware import pipelined_popcount, popcount
from fewmul.gateware.popcount import popcount_levels, register_levels


def _samples(width, rng):
    """Every value of a narrow operand; else all-zeros, all-ones, every single bit and random
    values with each density of ones."""
    if width <= 10:
        return range(1 << width)
    return [0, (1 << width) - 1] + [1 << b for b in range(width)] + [
        int((rng.random(width) < density) @ (1 << np.arange(width, dtype=object)))
        for density in np.linspace(0, 1, 200)]


@pytest.mark.parametrize("width", [0, 1, 2, 3, 4, 5, 7, 8, 13, 64, 100])
def test_popcount(width):
    _check_count(width, lambda value, m: popcount(value))


@pytest.mark.parametrize("width", [1, 2, 3, 5, 6, 7, 9, 10, 11, 12, 18, 19, 64, 256, 1000])
def test_compressor_popcount(width):
    """Every output of the compressor tree (counters in contiguous blocks of each column) is
    the count of its operand's bits."""
    _check_count(width, lambda value, m: pipelined_popcount(
        m, value, stages=0, enable=1, name="pc", style="compressor"))


def _check_count(width, build):
    value = Signal(width)
    m = Module()
    count = build(value, m)
    assert len(count) == width.bit_length()
    assert not count.shape().signed
    result = Signal(len(count))
    m.d.comb += result.eq(count)
    samples = _samples(width, np.random.default_rng(width))

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


@pytest.mark.parametrize("style", ["adder", "compressor"])
@pytest.mark.parametrize("stages", [0, 1, 3, 12])
@pytest.mark.parametrize("width", [1, 2, 3, 6, 7, 13, 64, 100])
def test_pipelined_popcount(width, stages, style):
    """The count appears `stages` enabled cycles later; a low enable holds the pipeline."""
    m = Module()
    value, enable = Signal(width), Signal(init=1)
    count = pipelined_popcount(m, value, stages=stages, enable=enable, name="pc", style=style)
    assert len(count) == width.bit_length()
    result, toggle = Signal(len(count)), Signal()
    m.d.comb += result.eq(count)
    m.d.sync += toggle.eq(~toggle)     # a clock domain even without pipeline registers
    rng = np.random.default_rng(width + stages)
    samples = [0, (1 << width) - 1] + [int(rng.integers(0, 1 << min(width, 62))) << max(0, width - 62)
                                       for _ in range(12)]
    pattern = [bool(rng.random() < 0.7) for _ in range(60)]   # enable per cycle
    seen = []

    async def testbench(ctx):
        pending = list(samples)
        for cycle, en in enumerate(pattern):
            if en and pending:
                ctx.set(value, pending.pop(0))
            ctx.set(enable, en)
            if en:
                seen.append(ctx.get(result))
            await ctx.tick()

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()
    expected = [bin(s).count("1") for s in samples]
    # Counting enabled cycles only, sample k comes out `stages` enabled cycles after it went in.
    got = seen[stages:stages + len(samples)]
    assert got == expected[:len(got)] and len(got) == len(samples)


@pytest.mark.parametrize("width,style,levels", [
    (1024, "adder", 10), (1, "adder", 0), (2, "compressor", 1), (3, "compressor", 2),
    (1024, "compressor", None)])
def test_levels_and_register_placement(width, style, levels):
    got = popcount_levels(width, style)
    if levels is not None:
        assert got == levels
    marks = register_levels(width, 3, style)
    assert marks == sorted(marks) and marks[-1] == got and len(marks) == 3
    with pytest.raises(ValueError, match="Popcount style must be one of"):
        popcount_levels(4, "magic")


@pytest.mark.parametrize("width", [1, 3, 7, 49, 100, 256, 1000])
def test_compressor_level_count_matches_the_tree(width):
    """The level count the planner uses (from column lengths alone) is that of the tree."""
    from fewmul.gateware.popcount import _compress, _compressed_lengths
    columns, lengths, first = [Signal(width)], [width], True
    while max(lengths) > 2:
        columns, lengths = _compress(columns, first), _compressed_lengths(lengths, first)
        assert [len(c) for c in columns] == lengths
        first = False
