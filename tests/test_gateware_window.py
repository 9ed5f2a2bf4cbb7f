# amaranth: UnusedElaboratable=no
import numpy as np
import pytest
from amaranth.back import rtlil, verilog
from amaranth.hdl import signed, unsigned
from amaranth.sim import Simulator

from fewmul.compiler.yosys import yosys_stat
from fewmul.gateware import SlidingWindow

from gateware_helpers import random_elements, ref_windows, simulate, stream_put, to_py

IMAGES = 3   # images per simulation, back to back


def case(shape, channels, height, width, kernel, stride=1, padding=0, pad_value=0):
    return dict(shape=shape, channels=channels, height=height, width=width, kernel=kernel,
                stride=stride, padding=padding, pad_value=pad_value)


def random_cases(seed, count):
    rng = np.random.default_rng(seed)
    cases = []
    while len(cases) < count:
        height, width, padding = (int(v) for v in rng.integers([1, 1, 0], [10, 10, 3]))
        kernel = int(rng.integers(1, min(height, width) + 2 * padding, endpoint=True))
        if kernel > 5:          # wide windows only slow the simulation down
            continue
        shape = unsigned(int(rng.integers(1, 5)))
        cases.append(case(shape, int(rng.integers(1, 6)), height, width, kernel,
                          stride=int(rng.integers(1, 4)), padding=padding,
                          pad_value=int(rng.integers(0, 1 << shape.width))))
    return cases


CASES = [
    case(unsigned(1), 1, 5, 5, 3, padding=1),                # "same" 3x3 convolution
    case(unsigned(1), 3, 4, 6, 1),                           # kernel 1: the pixels themselves
    case(unsigned(2), 2, 5, 4, 1, stride=2, padding=1, pad_value=3),
    case(unsigned(3), 2, 3, 3, 3),                           # one window, no padding
    case(unsigned(1), 4, 6, 3, 3),                           # width equal to the kernel
    case(unsigned(1), 2, 3, 7, 3, stride=2),                 # height equal to the kernel
    case(unsigned(2), 1, 6, 6, 2, stride=2),                 # 2x2 blocks, no overlap
    case(unsigned(2), 3, 7, 8, 3, stride=3, padding=2, pad_value=1),
    case(unsigned(1), 2, 1, 1, 3, padding=1, pad_value=1),   # a single pixel in its padding
    case(unsigned(1), 1, 1, 5, 3, stride=2, padding=1),      # one row
    case(unsigned(1), 1, 2, 9, 2, padding=2),                # windows in the padding alone
    case(signed(4), 2, 4, 5, 3, padding=1, pad_value=-8),    # signed elements
    case(unsigned(2), 1, 1, 1, 1, stride=3, padding=1, pad_value=2),  # padding alone
] + random_cases(1, 24)


def case_id(c):
    return (f"{c['shape'].width}{'s' if c['shape'].signed else 'u'}-c{c['channels']}-"
            f"{c['height']}x{c['width']}-k{c['kernel']}s{c['stride']}p{c['padding']}")


def make(c):
    return SlidingWindow(c["shape"], channels=c["channels"], height=c["height"],
                         width=c["width"], kernel=c["kernel"], stride=c["stride"],
                         padding=c["padding"], pad_value=c["pad_value"])


@pytest.mark.parametrize("c", CASES, ids=case_id)
@pytest.mark.parametrize("stalls", [False, True])
def test_windows(c, stalls):
    rng = np.random.default_rng(len(case_id(c)))
    images = random_elements(rng, c["shape"], (IMAGES, c["height"], c["width"], c["channels"]))
    dut = make(c)
    expected = ref_windows(images, c["kernel"], c["stride"], c["padding"], c["pad_value"])
    assert expected.shape[1:3] == (dut.out_height, dut.out_width)
    expected = expected.reshape(-1, len(dut.o.payload))
    in_mon, out_mon = simulate(dut, images.reshape(-1, c["channels"]).tolist(), len(expected),
                               seed=len(expected) if stalls else None, p_stall=0.3)
    assert out_mon.payloads == expected.tolist()
    if not stalls:
        # One position of the padded grid per cycle: pixel (y, x) of image n is taken in cycle
        # n * cycles_per_image + (padding + y) * Wp + padding + x, and the window ending at
        # (r, c) is transferred one cycle after its position.
        k, s, p = c["kernel"], c["stride"], c["padding"]
        wp = c["width"] + 2 * p
        assert dut.cycles_per_image == (c["height"] + 2 * p) * wp
        image_start = [n * dut.cycles_per_image for n in range(IMAGES)]
        assert in_mon.cycles == [start + (p + y) * wp + p + x for start in image_start
                                 for y in range(c["height"]) for x in range(c["width"])]
        assert out_mon.cycles == [start + (k - 1 + oh * s) * wp + k - 1 + ow * s + 1
                                  for start in image_start
                                  for oh in range(dut.out_height)
                                  for ow in range(dut.out_width)]
        pixels = c["height"] * c["width"]
        for n in range(IMAGES):
            assert (out_mon.cycles[(n + 1) * dut.windows - 1] - in_mon.cycles[n * pixels]
                    == dut.latency)


def test_attributes():
    dut = SlidingWindow(unsigned(2), channels=4, height=5, width=6, kernel=3, padding=1)
    assert (dut.out_height, dut.out_width, dut.windows) == (5, 6, 30)
    assert dut.cycles_per_image == 7 * 8
    # first pixel at grid position (1, 1), the last window ends at (6, 7): 6 * 8 + 7 - 9 + 1
    assert dut.latency == 47
    assert dut.line_buffer_bits == 2 * 6 * 4 * 2
    dut = SlidingWindow(unsigned(1), channels=3, height=8, width=7, kernel=2, stride=3)
    assert (dut.out_height, dut.out_width, dut.windows) == (3, 2, 6)
    assert dut.cycles_per_image == 56
    assert dut.latency == 7 * 7 + 4 + 1   # the last window ends at (7, 4): the last row
    dut = SlidingWindow(unsigned(1), channels=3, height=4, width=4, kernel=1)
    assert (dut.latency, dut.line_buffer_bits) == (16, 0)
    assert len(dut.o.payload) == 3
    dut = SlidingWindow(unsigned(1), channels=1, height=1, width=1, kernel=1, stride=3,
                        padding=1)
    assert (dut.out_height, dut.latency) == (1, -3)   # one window, of padding only


def test_backpressure():
    """While a window waits, the window registers hold it and no pixel is taken."""
    dut = SlidingWindow(unsigned(4), channels=1, height=3, width=3, kernel=2)
    pixels = [[v] for v in range(1, 10)]

    async def testbench(ctx):
        ctx.set(dut.o.ready, 0)
        await stream_put(ctx, dut.i, pixels[:5])   # the first window ends at pixel (1, 1)
        ctx.set(dut.i.payload, pixels[5])
        ctx.set(dut.i.valid, 1)
        for _ in range(6):
            _, _, i_ready, o_valid, window = await ctx.tick().sample(
                dut.i.ready, dut.o.valid, dut.o.payload)
            assert o_valid and not i_ready
            assert to_py(window) == [1, 2, 4, 5]
        ctx.set(dut.o.ready, 1)
        assert ctx.get(dut.i.ready)   # taking the window frees the registers in the same cycle
        await ctx.tick()
        ctx.set(dut.i.valid, 0)
        _, _, o_valid, window = await ctx.tick().sample(dut.o.valid, dut.o.payload)
        assert o_valid and to_py(window) == [2, 3, 5, 6]

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()


def test_waits_for_the_first_pixel():
    """An idle unit offers no window, not even of padding alone, before an image begins; then
    it passes the top padding before it takes the first pixel."""
    dut = SlidingWindow(unsigned(1), channels=1, height=3, width=3, kernel=2, stride=2,
                        padding=2)   # the first window (2x2 at the top left) is padding alone

    async def testbench(ctx):
        ctx.set(dut.o.ready, 1)
        for _ in range(40):
            _, _, i_ready, o_valid = await ctx.tick().sample(dut.i.ready, dut.o.valid)
            assert not i_ready and not o_valid
        ctx.set(dut.i.payload, [1])
        ctx.set(dut.i.valid, 1)
        cycles = 0
        while not (await ctx.tick().sample(dut.i.ready))[2]:
            cycles += 1
        assert cycles == 2 * 7 + 2

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()


def test_errors():
    with pytest.raises(TypeError, match="Kernel must be a positive integer, not 0"):
        SlidingWindow(unsigned(1), channels=1, height=4, width=4, kernel=0)
    with pytest.raises(TypeError, match="Stride must be a positive integer, not 1.5"):
        SlidingWindow(unsigned(1), channels=1, height=4, width=4, kernel=2, stride=1.5)
    with pytest.raises(TypeError, match="Padding must be a non-negative integer, not -1"):
        SlidingWindow(unsigned(1), channels=1, height=4, width=4, kernel=2, padding=-1)
    with pytest.raises(TypeError, match="Channel count must be a positive integer, not 0"):
        SlidingWindow(unsigned(1), channels=0, height=4, width=4, kernel=2)
    with pytest.raises(TypeError, match="Height must be a positive integer, not None"):
        SlidingWindow(unsigned(1), channels=1, height=None, width=4, kernel=2)
    with pytest.raises(ValueError, match=r"Kernel must be at most the padded image size 6x4, "
                                         r"not 5"):
        SlidingWindow(unsigned(1), channels=1, height=4, width=2, kernel=5, padding=1)
    with pytest.raises(ValueError, match=r"Pad value must be an integer that fits "
                                         r"unsigned\(1\), not 2"):
        SlidingWindow(unsigned(1), channels=1, height=4, width=4, kernel=2, pad_value=2)
    with pytest.raises(ValueError, match=r"fits signed\(3\), not -5"):
        SlidingWindow(signed(3), channels=1, height=4, width=4, kernel=2, pad_value=-5)


@pytest.mark.parametrize("c", [CASES[0], CASES[1], CASES[7], CASES[11]], ids=case_id)
def test_no_multipliers(c, tmp_path):
    """Neither Amaranth's netlist nor the Verilog as Yosys reads it has a multiplier."""
    dut = make(c)
    assert "$mul" not in rtlil.convert(dut, name="top")
    (tmp_path / "top.v").write_text(verilog.convert(make(c), name="top", emit_src=False))
    stat = yosys_stat(tmp_path, "top.v", "generic")
    assert stat["multipliers"] == 0 and "$mul" not in stat["cells"]


def test_line_buffer_is_block_ram(tmp_path):
    """On the iCE40 the line buffer of a 32-pixel-wide image becomes block RAM."""
    dut = SlidingWindow(unsigned(1), channels=16, height=32, width=32, kernel=3, padding=1)
    assert dut.line_buffer_bits == 2 * 32 * 16
    (tmp_path / "top.v").write_text(verilog.convert(dut, name="top", emit_src=False))
    stat = yosys_stat(tmp_path, "top.v", "ice40")
    assert stat["multipliers"] == 0
    assert stat["cells"].get("SB_RAM40_4K", 0) >= 1
    # the 3x3x16 window and the counters are the flip-flops: no line buffer in registers
    assert sum(n for cell, n in stat["cells"].items() if cell.startswith("SB_DFF")) < 200
