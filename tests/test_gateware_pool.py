# amaranth: UnusedElaboratable=no
import numpy as np
import pytest
from amaranth.back import rtlil, verilog
from amaranth.hdl import signed, unsigned
from amaranth.sim import Simulator

from fewmul.compiler.yosys import yosys_stat
from fewmul.gateware import MaxPool

from gateware_helpers import random_elements, ref_maxpool, simulate, stream_put, to_py

IMAGES = 3   # images per simulation, back to back


def case(shape, channels, height, width, size, pe, minimum=None):
    return dict(shape=shape, channels=channels, height=height, width=width, size=size, pe=pe,
                minimum=minimum)


def random_cases(seed, count):
    rng = np.random.default_rng(seed)
    cases = []
    for _ in range(count):
        channels, size = int(rng.integers(1, 6)), int(rng.integers(1, 4))
        pe = int(rng.choice([d for d in range(1, channels + 1) if channels % d == 0]))
        height, width = (size * int(v) for v in rng.integers(1, 4, size=2))
        minimum = rng.integers(0, 2, channels).astype(bool).tolist() if rng.integers(2) else None
        cases.append(case(unsigned(int(rng.integers(1, 5))), channels, height, width, size, pe,
                          minimum))
    return cases


CASES = [
    case(unsigned(1), 4, 4, 4, 2, 4),     # binary activations: an OR, one beat per pixel
    case(unsigned(1), 6, 4, 6, 2, 2),     # three beats per pixel
    case(unsigned(1), 3, 6, 6, 2, 1),     # one channel per beat
    case(unsigned(1), 1, 4, 8, 2, 1),     # one channel: consecutive beats share a word
    case(unsigned(2), 2, 6, 9, 3, 1),
    case(unsigned(3), 2, 2, 2, 2, 2),     # one block per image
    case(unsigned(2), 2, 4, 2, 2, 1),     # one block per row
    case(unsigned(1), 1, 2, 2, 2, 1),     # one block, one channel: a memory of one word
    case(unsigned(4), 4, 3, 3, 1, 2),     # size 1: the pixels themselves
    case(signed(3), 4, 4, 6, 2, 2),       # signed elements
    # minima on some channels: an AND of bits, the least level
    case(unsigned(1), 6, 4, 6, 2, 2, [True, False, False, True, True, True]),
    case(unsigned(2), 4, 4, 4, 2, 4, [False, True, True, False]),   # one beat per pixel
    case(unsigned(1), 1, 4, 4, 2, 1, [True]),
    case(signed(3), 4, 4, 6, 2, 2, [True, True, False, True]),
] + random_cases(2, 16)


def case_id(c):
    low = "" if c["minimum"] is None else "-min" + "".join(str(int(v)) for v in c["minimum"])
    return (f"{c['shape'].width}{'s' if c['shape'].signed else 'u'}-c{c['channels']}-"
            f"{c['height']}x{c['width']}-size{c['size']}-pe{c['pe']}{low}")


def make(c):
    return MaxPool(c["shape"], channels=c["channels"], height=c["height"], width=c["width"],
                   size=c["size"], pe=c["pe"], minimum=c["minimum"])


@pytest.mark.parametrize("c", CASES, ids=case_id)
@pytest.mark.parametrize("stalls", [False, True])
def test_maxpool(c, stalls):
    rng = np.random.default_rng(len(case_id(c)))
    images = random_elements(rng, c["shape"], (IMAGES, c["height"], c["width"], c["channels"]))
    dut = make(c)
    expected = ref_maxpool(images, c["size"], c["minimum"])
    assert expected.shape[1:3] == (dut.out_height, dut.out_width)
    pe, size, width, groups = c["pe"], c["size"], c["width"], c["channels"] // c["pe"]
    in_mon, out_mon = simulate(dut, images.reshape(-1, pe).tolist(), expected.size // pe,
                               seed=expected.size if stalls else None, p_stall=0.3)
    assert out_mon.payloads == expected.reshape(-1, pe).tolist()
    if not stalls:
        # One beat per cycle; the output beat of a block follows its last beat by `latency`.
        assert in_mon.cycles == list(range(images.size // pe))
        beats = [((n * c["height"] + oy * size + size - 1) * width + ox * size + size - 1)
                 * groups + g
                 for n in range(IMAGES) for oy in range(dut.out_height)
                 for ox in range(dut.out_width) for g in range(groups)]
        assert out_mon.cycles == [in_mon.cycles[b] + dut.latency for b in beats]


def test_attributes():
    dut = MaxPool(unsigned(2), channels=6, height=8, width=12, size=2, pe=3)
    assert (dut.out_height, dut.out_width, dut.groups, dut.latency) == (4, 6, 2, 1)
    assert dut.buffer_bits == 6 * 6 * 2
    assert len(dut.i.payload) == len(dut.o.payload) == 3   # elements per beat
    dut = MaxPool(unsigned(1), channels=4, height=3, width=3, size=1, pe=4)
    assert (dut.out_height, dut.out_width, dut.buffer_bits) == (3, 3, 0)


def test_backpressure():
    """While an output beat waits, beats are taken until one completes the next block."""
    dut = MaxPool(unsigned(4), channels=1, height=2, width=4, size=2, pe=1)
    pixels = [[1], [7], [3], [2], [5], [4], [9], [8]]   # blocks: max 7, then max 9

    async def testbench(ctx):
        ctx.set(dut.o.ready, 0)
        await stream_put(ctx, dut.i, pixels[:7])        # (1, 1) completes block 0
        ctx.set(dut.i.payload, pixels[7])
        ctx.set(dut.i.valid, 1)
        for _ in range(5):
            _, _, i_ready, o_valid, beat = await ctx.tick().sample(
                dut.i.ready, dut.o.valid, dut.o.payload)
            assert o_valid and not i_ready and to_py(beat) == [7]
        ctx.set(dut.o.ready, 1)
        assert ctx.get(dut.i.ready)   # taking the output frees the register in the same cycle
        await ctx.tick()
        ctx.set(dut.i.valid, 0)
        _, _, o_valid, beat = await ctx.tick().sample(dut.o.valid, dut.o.payload)
        assert o_valid and to_py(beat) == [9]

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()


def test_errors():
    with pytest.raises(TypeError, match="Pool size must be a positive integer, not 0"):
        MaxPool(unsigned(1), channels=4, height=4, width=4, size=0, pe=4)
    with pytest.raises(TypeError, match="PE count must be a positive integer, not 0"):
        MaxPool(unsigned(1), channels=4, height=4, width=4, size=2, pe=0)
    with pytest.raises(TypeError, match="Width must be a positive integer, not 4.0"):
        MaxPool(unsigned(1), channels=4, height=4, width=4.0, size=2, pe=4)
    with pytest.raises(ValueError, match=r"PE count must divide the channel count 6, not pe=4; "
                                         r"valid values are \[1, 2, 3, 6\]"):
        MaxPool(unsigned(1), channels=6, height=4, width=4, size=2, pe=4)
    with pytest.raises(ValueError, match="Pool size must divide the image size 4x6, not 4"):
        MaxPool(unsigned(1), channels=4, height=4, width=6, size=4, pe=4)
    with pytest.raises(ValueError, match="Pool size must divide the image size 5x4, not 2"):
        MaxPool(unsigned(1), channels=4, height=5, width=4, size=2, pe=4)
    with pytest.raises(ValueError, match=r"Minimum flags must be one per channel \(4\), not 3"):
        MaxPool(unsigned(1), channels=4, height=4, width=4, size=2, pe=4, minimum=[True] * 3)


@pytest.mark.parametrize("c", [CASES[0], CASES[3], CASES[4], CASES[9], CASES[10]], ids=case_id)
def test_no_multipliers(c, tmp_path):
    """Neither Amaranth's netlist nor the Verilog as Yosys reads it has a multiplier."""
    assert "$mul" not in rtlil.convert(make(c), name="top")
    (tmp_path / "top.v").write_text(verilog.convert(make(c), name="top", emit_src=False))
    stat = yosys_stat(tmp_path, "top.v", "generic")
    assert stat["multipliers"] == 0 and "$mul" not in stat["cells"]


def test_partial_maxima_are_block_ram(tmp_path):
    """On the iCE40 the partial maxima of a 32-pixel-wide, 64-channel image are block RAM."""
    dut = MaxPool(unsigned(1), channels=64, height=32, width=32, size=2, pe=8)
    assert dut.buffer_bits == 16 * 64
    (tmp_path / "top.v").write_text(verilog.convert(dut, name="top", emit_src=False))
    stat = yosys_stat(tmp_path, "top.v", "ice40")
    assert stat["multipliers"] == 0
    assert stat["cells"].get("SB_RAM40_4K", 0) >= 1
    assert sum(n for cell, n in stat["cells"].items() if cell.startswith("SB_DFF")) < 100
