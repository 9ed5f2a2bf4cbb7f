# amaranth: UnusedElaboratable=no
"""The frame receiver the board links share, in the Amaranth simulator: frames of two kinds,
line noise, a refused sync byte and a frame cut short."""

import math

import pytest
from amaranth.sim import Simulator

from fewmul.boards.frames import FrameReceiver
from fewmul.boards.protocol import IDLE_TIMEOUT_BITS

LONG, SHORT = 0xA1, 0xB2


def run(dut, script):
    """Drive ``script`` on the receiver's input: ``(byte, accept, idle cycles after it)``.
    Returns the edges each byte was given at and the transfers on ``o``:
    ``(edge, data, last, kind)``."""
    given, out = [], []

    async def host(ctx):
        edge = 0
        for byte, accept, gap in script:
            ctx.set(dut.i.payload, byte)
            ctx.set(dut.i.valid, 1)
            ctx.set(dut.accept, accept)
            given.append(edge)
            await ctx.tick()
            ctx.set(dut.i.valid, 0)
            ctx.set(dut.accept, 1)
            await ctx.tick().repeat(gap)
            edge += 1 + gap

    async def monitor(ctx):
        edge = 0
        while True:
            _, _, valid, payload, kind = await ctx.tick().sample(dut.o.valid, dut.o.payload,
                                                                 dut.kind)
            if valid:
                out.append((edge, int(payload.data), int(payload.last), int(kind)))
            edge += 1

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(host)
    sim.add_testbench(monitor, background=True)
    sim.run()
    return given, out


def test_frames_of_two_kinds_noise_a_refused_sync_and_a_cut_frame():
    divisor = 4
    dut = FrameReceiver({LONG: 3, SHORT: 1}, divisor)
    timeout = math.ceil(IDLE_TIMEOUT_BITS * divisor)
    assert dut.syncs == [LONG, SHORT]
    script = [
        (0x00, 1, 3),                                   # noise between frames: ignored
        (LONG, 1, 3), (0x01, 1, 3), (0x02, 1, 3), (0x03, 1, 3),
        (SHORT, 1, 3), (LONG, 1, 3),                    # a frame's byte equal to a sync byte
        (SHORT, 0, 3), (0x09, 1, 3),                    # refused: no frame starts
        (LONG, 1, 3), (0x04, 1, 3), (0x05, 1, timeout + 8),     # cut short: dropped
        (SHORT, 1, 3), (0x08, 1, 3),
    ]
    given, out = run(dut, script)
    long_kind, short_kind = 0b01, 0b10
    assert [o[1:] for o in out] == [
        (0x01, 0, long_kind), (0x02, 0, long_kind), (0x03, 1, long_kind),
        (LONG, 1, short_kind),
        (0x04, 0, long_kind), (0x05, 0, long_kind),
        (0x08, 1, short_kind),
    ]
    # each byte goes out a cycle after the edge it was given at
    data_bytes = [2, 3, 4, 6, 10, 11, 13]
    assert [o[0] for o in out] == [given[i] + 1 for i in data_bytes]


def test_a_cut_frame_is_kept_until_the_timeout():
    """Silence shorter than the timeout inside a frame does not drop it."""
    divisor = 4
    dut = FrameReceiver({LONG: 2}, divisor)
    timeout = math.ceil(IDLE_TIMEOUT_BITS * divisor)
    _, out = run(dut, [(LONG, 1, 3), (0x11, 1, timeout - 8), (0x22, 1, 3)])
    assert [o[1:3] for o in out] == [(0x11, 0), (0x22, 1)]


def test_bad_frame_lengths_are_refused():
    with pytest.raises(ValueError, match="non-empty dict"):
        FrameReceiver({}, 4)
    with pytest.raises(ValueError, match="Sync byte must be an integer 0-255, not 256"):
        FrameReceiver({256: 1}, 4)
    with pytest.raises(ValueError, match="Frame length must be a positive integer, not 0"):
        FrameReceiver({LONG: 0}, 4)
    with pytest.raises(ValueError, match="of at least 4 clocks per bit"):
        FrameReceiver({LONG: 1}, 3)
    with pytest.raises(ValueError, match="Sync byte must be one of"):
        FrameReceiver({LONG: 1, SHORT: 2}, 4).kind_is(0x00)
