# amaranth: UnusedElaboratable=no
"""The SPRAM weight memory: its behaviour in the Amaranth simulator against a dict of written
words, its SB_SPRAM256KA instances, and the cell model Verilator reads."""

import numpy as np
import pytest
from amaranth.hdl import Fragment, Instance
from amaranth.sim import Simulator

from fewmul.gateware.spram import (SPRAM_CELL, SpramMemory, sb_spram256ka_verilog,
                                   spram_blocks)


class Ice40:
    family = "iCE40"


def _instances(fragment):
    found = []
    for sub, *_ in fragment.subfragments:
        found += [sub] if isinstance(sub, Instance) else _instances(sub)
    return found


def _run(dut, testbench):
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()


@pytest.mark.parametrize("width,depth", [(1, 40), (16, 64), (17, 33), (48, 100), (64, 70)])
@pytest.mark.parametrize("registered", [False, True])
def test_writes_then_reads_match_a_dict(width, depth, registered):
    rng = np.random.default_rng(width * 1000 + depth + registered)
    dut = SpramMemory(width, depth, registered=registered)
    model = {}
    writes = [(int(rng.integers(depth)),
               int.from_bytes(rng.bytes(8), "little") & ((1 << width) - 1))
              for _ in range(2 * depth)]
    for addr, word in writes:
        model[addr] = word
    reads = [int(a) for a in rng.permutation(sorted(model))] + [writes[-1][0]]

    async def testbench(ctx):
        for addr, word in writes:
            ctx.set(dut.w_en, 1)
            ctx.set(dut.w_addr, addr)
            ctx.set(dut.w_data, word)
            await ctx.tick()
        ctx.set(dut.w_en, 0)
        seen = []
        for addr in reads + [0, 0]:
            ctx.set(dut.addr, addr)
            await ctx.tick()
            seen.append(ctx.get(dut.data))
        # data after edge k is the word addressed `latency` edges before
        assert seen[dut.latency - 1:][:len(reads)] == [model[a] for a in reads]

    _run(dut, testbench)


@pytest.mark.parametrize("registered", [False, True])
def test_data_holds_while_not_enabled_and_a_write_takes_the_port(registered):
    dut = SpramMemory(20, 50, registered=registered)

    async def testbench(ctx):
        for addr, word in ((3, 0x12345), (4, 0xABCDE)):
            ctx.set(dut.w_en, 1)
            ctx.set(dut.w_addr, addr)
            ctx.set(dut.w_data, word)
            await ctx.tick()
        ctx.set(dut.w_en, 0)
        ctx.set(dut.en, 1)
        ctx.set(dut.addr, 3)
        await ctx.tick().repeat(dut.latency)
        assert ctx.get(dut.data) == 0x12345
        ctx.set(dut.en, 0)
        ctx.set(dut.addr, 4)
        for _ in range(3):
            await ctx.tick()
            assert ctx.get(dut.data) == 0x12345      # held: no read without en
        ctx.set(dut.en, 1)
        await ctx.tick().repeat(dut.latency)
        assert ctx.get(dut.data) == 0xABCDE
        # a write in the same cycle as a read request writes, and reads nothing
        ctx.set(dut.en, 1)
        ctx.set(dut.w_en, 1)
        ctx.set(dut.w_addr, 4)
        ctx.set(dut.w_data, 7)
        await ctx.tick()
        ctx.set(dut.w_en, 0)
        await ctx.tick().repeat(dut.latency)
        assert ctx.get(dut.data) == 7

    _run(dut, testbench)


@pytest.mark.parametrize("width,depth,blocks", [(1, 10, 1), (16, 16384, 1), (17, 100, 2),
                                                (64, 3136, 4), (16, 16385, 2), (32, 40000, 6)])
def test_blocks_and_instances(width, depth, blocks):
    assert spram_blocks(width, depth) == blocks
    for dut, platform in ((SpramMemory(width, depth), Ice40()),
                          (SpramMemory(width, depth, registered=True, cells=True), None)):
        cells = _instances(Fragment.get(dut, platform))
        assert len(cells) == blocks == dut.blocks
        assert {c.type for c in cells} == {SPRAM_CELL}
    # elsewhere it is the behavioural memory
    assert not _instances(Fragment.get(SpramMemory(width, depth), None))


def test_bad_sizes_are_refused():
    with pytest.raises(TypeError, match="SPRAM width must be a positive integer"):
        SpramMemory(0, 10)
    with pytest.raises(TypeError, match="SPRAM depth"):
        spram_blocks(4, 2.5)


def test_cell_model_is_the_yosys_one():
    text = sb_spram256ka_verilog()
    assert text.startswith(f"module {SPRAM_CELL}") and text.rstrip().endswith("endmodule")
    assert "CHIPSELECT" in text and "MASKWREN" in text and "module " not in text[7:]


@pytest.mark.parametrize("pipeline,stall_free", [(0, False), (2, False), (3, True)])
def test_matrix_vector_unit_reads_its_weights_from_spram(pipeline, stall_free):
    from fewmul.gateware import MatrixVectorUnit

    from gateware_helpers import random_inputs, ref_sums, stream_get, stream_put

    rng = np.random.default_rng(pipeline)
    m, n, bits, pe, simd = 6, 37, 2, 2, 12
    weights = rng.integers(0, 2, size=(m, n))
    dut = MatrixVectorUnit(weights, input_kind="unsigned", input_bits=bits, pe=pe, simd=simd,
                           pipeline=pipeline, stall_free=stall_free)
    words = dut.groups * dut.folds
    dut.weight_memory = memory = SpramMemory(dut.word_bits, words, registered=stall_free)
    x = random_inputs(rng, 4, n, bits)
    got = []

    async def testbench(ctx):
        for addr, word in enumerate(dut.rows):
            ctx.set(memory.w_en, 1)
            ctx.set(memory.w_addr, addr)
            ctx.set(memory.w_data, word)
            await ctx.tick()
        ctx.set(memory.w_en, 0)
        await stream_put(ctx, dut.i, x.tolist())

    async def sink(ctx):
        got.extend(await stream_get(ctx, dut.o, 4 * m // pe))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.add_testbench(sink)
    sim.run()
    np.testing.assert_array_equal(np.array(got).reshape(4, m), ref_sums(weights, x, "unsigned"))
