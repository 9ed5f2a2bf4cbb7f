# amaranth: UnusedElaboratable=no
"""UART and host link in the Amaranth simulator: serial frames in, results out, bit-exact."""

import numpy as np
import pytest
from amaranth.hdl import Module
from amaranth.sim import Simulator

from fewmul.boards.link import HostLink, link_format
from fewmul.boards.nets import build_network, random_net
from fewmul.boards.protocol import IMAGE_SYNC, RESULT_SYNC, LinkFormat, ProtocolError
from fewmul.boards.uart import UARTReceiver, UARTTransmitter, baud_divisor, check_divisor


async def send_byte(ctx, line, byte, divisor, *, stop=1):
    """Drive an 8N1 frame on ``line`` (bits LSB first)."""
    for bit in [0, *((byte >> i) & 1 for i in range(8)), stop]:
        ctx.set(line, bit)
        await ctx.tick().repeat(divisor)
    ctx.set(line, 1)


async def recv_byte(ctx, line, divisor, timeout):
    """Wait for a start bit on ``line`` and sample the frame in the middle of each bit."""
    for _ in range(timeout):
        _, _, value = await ctx.tick().sample(line)
        if not value:
            break
    else:
        raise AssertionError("no start bit")
    await ctx.tick().repeat(divisor // 2)
    assert ctx.get(line) == 0, "start bit too short"
    byte = 0
    for i in range(8):
        await ctx.tick().repeat(divisor)
        byte |= ctx.get(line) << i
    await ctx.tick().repeat(divisor)
    assert ctx.get(line) == 1, "stop bit missing"
    return byte


def test_divisor_checks():
    assert baud_divisor(12e6, 115200) == 104
    assert baud_divisor(25e6, 1_000_000) == 25
    with pytest.raises(ValueError, match="too fast"):
        baud_divisor(12e6, 6_000_000)
    with pytest.raises(ValueError, match="% off"):
        baud_divisor(12e6, 1_800_000)      # 12 MHz / 7 = 1.71 Mbaud, 4.8 % slow
    with pytest.raises(ValueError, match="Divisor must be an integer of at least 4"):
        check_divisor(3)


@pytest.mark.parametrize("divisor", [4, 7])
def test_uart_loopback_through_transmitter_and_receiver(divisor):
    """Bytes sent by the transmitter, including back to back, come out of the receiver."""
    m = Module()
    m.submodules.tx = tx = UARTTransmitter(divisor)
    m.submodules.rx = rx = UARTReceiver(divisor)
    m.d.comb += rx.rx.eq(tx.tx)
    data = [0x00, 0xFF, 0xA5, 0x5A, 0x01, 0x80, 0x3C]
    got = []

    async def source(ctx):
        for byte in data:
            ctx.set(tx.i.payload, byte)
            ctx.set(tx.i.valid, 1)
            await ctx.tick().until(tx.i.ready)
        ctx.set(tx.i.valid, 0)

    async def sink(ctx):
        while len(got) < len(data):
            _, _, valid, payload = await ctx.tick().sample(rx.o.valid, rx.o.payload)
            if valid:
                got.append(payload)

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(source)
    sim.add_testbench(sink)
    sim.run_until(1e-6 * divisor * 10 * (len(data) + 3))
    assert got == data


def test_receiver_drops_framing_errors():
    rx = UARTReceiver(5)
    got = []

    async def line(ctx):
        await send_byte(ctx, rx.rx, 0x42, 5, stop=0)     # a low stop bit: dropped
        await ctx.tick().repeat(12 * 5)                  # the line returns to idle
        await send_byte(ctx, rx.rx, 0x99, 5)
        await ctx.tick().repeat(5)

    async def sink(ctx):
        while True:
            _, _, valid, payload = await ctx.tick().sample(rx.o.valid, rx.o.payload)
            if valid:
                got.append(payload)

    sim = Simulator(rx)
    sim.add_clock(1e-6)
    sim.add_testbench(line)
    sim.add_testbench(sink, background=True)
    sim.run()
    assert got == [0x99]


def test_link_format_round_trip():
    fmt = LinkFormat(input_count=5, input_bits=3, classes=3, label_offset=0, label_bits=2,
                     scores_offset=2, score_bits=6, result_bits=20)
    frame = fmt.encode_image([7, 0, 5, 1, 2])
    assert frame[0] == IMAGE_SYNC and len(frame) == 1 + 2
    assert int.from_bytes(frame[1:], "little") == 7 | 5 << 6 | 1 << 9 | 2 << 12
    word = 2 | (5 & 63) << 2 | (-3 & 63) << 8 | (-32 & 63) << 14
    assert fmt.decode_result(bytes([RESULT_SYNC]) + word.to_bytes(3, "little")) == (2, [5, -3, -32])
    with pytest.raises(ProtocolError, match="start with 0x5A"):
        fmt.decode_result(bytes(4))
    with pytest.raises(ValueError, match="between 0 and 7"):
        fmt.encode_image([8, 0, 0, 0, 0])
    with pytest.raises(ValueError, match="must have 5 inputs"):
        fmt.encode_image([1])


def test_host_link_answers_serial_frames_bit_exact():
    """Image frames in on ``rx`` (one with a bad sync byte first, one cut short and timed out),
    result frames out on ``tx``: each equals the golden model's scores and label."""
    net = random_net([12, 8, 4], input_bits=3, seed=3)
    network, _ = build_network(net, pe=[2, 4])
    divisor = 4
    link = HostLink(network, divisor)
    fmt = link.format
    assert fmt == link_format(network)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 8, size=(4, 12))
    golden = net.forward(images)[-1]
    results = []

    async def host(ctx):
        await ctx.tick().repeat(4)
        await send_byte(ctx, link.rx, 0x00, divisor)            # noise before a frame: ignored
        partial = fmt.encode_image(images[0])[:3]               # cut short: times out
        for byte in partial:
            await send_byte(ctx, link.rx, byte, divisor)
        await ctx.tick().repeat(70 * divisor)
        for x in images:
            for byte in fmt.encode_image(x):
                await send_byte(ctx, link.rx, byte, divisor)

    async def listen(ctx):
        for _ in images:
            frame = bytes([await recv_byte(ctx, link.tx, divisor, 50_000)
                           for _ in range(1 + fmt.out_bytes)])
            results.append(fmt.decode_result(frame))

    sim = Simulator(link)
    sim.add_clock(1e-6)
    sim.add_testbench(host, background=True)
    sim.add_testbench(listen)
    sim.run()
    assert [r[1] for r in results] == golden.tolist()
    assert [r[0] for r in results] == golden.argmax(1).tolist()
