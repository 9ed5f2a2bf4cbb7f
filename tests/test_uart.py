# amaranth: UnusedElaboratable=no
"""UART and host link in the Amaranth simulator: serial frames in, results out, bit-exact."""

import json
from dataclasses import asdict

import numpy as np
import pytest
from amaranth.hdl import Module, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from fewmul.boards.link import HostLink, link_format
from fewmul.boards.nets import build_network, random_conv_net, random_net
from fewmul.boards.protocol import IMAGE_SYNC, RESULT_SYNC, LinkFormat, ProtocolError
from fractions import Fraction

from fewmul.boards.targets import BOARDS
from fewmul.boards.uart import (BRIDGES, BaudError, UARTReceiver, UARTTransmitter, baud_divisor,
                                check_baud, check_divisor)

from gateware_helpers import stream_put
from link_helpers import run_link, send_byte, send_images, serial_answers


def test_divisor_checks():
    assert baud_divisor(12e6, 3_000_000) == 4 and type(baud_divisor(12e6, 3_000_000)) is int
    assert baud_divisor(25e6, 1_000_000) == 25
    assert baud_divisor(25e6, 3_000_000) == Fraction(25, 3)     # 8, 8, 9 cycles a bit
    assert baud_divisor(12e6, 115200) == Fraction(625, 6)
    with pytest.raises(ValueError, match="too fast"):
        baud_divisor(12e6, 6_000_000)
    # sixteenths of a cycle: any rate up to a quarter of the clock within 0.8 %
    assert abs(12e6 / baud_divisor(12e6, 2_900_000) / 2_900_000 - 1) < 0.008
    with pytest.raises(ValueError, match="of at least 4 clocks per bit"):
        check_divisor(3)
    with pytest.raises(ValueError, match="denominator at most 16"):
        check_divisor(Fraction(100, 17))
    assert check_divisor(Fraction(8, 2)) == 4 and type(check_divisor(Fraction(8, 2))) is int


def test_ftdi_rates():
    """FT2232H: 12 MHz / (n + k/8), and 12 and 8 Mbaud; FT231X the same from 3 MHz."""
    h, x = BRIDGES["FT2232H"], BRIDGES["FT231X"]
    assert h.rate(3_000_000) == 3_000_000 and h.rate(12_000_000) == 12_000_000
    assert h.rate(8_000_000) == 8_000_000 and h.rate(10_000_000) is None   # divisor 1.25
    assert h.rate(2_000_000) == 2_000_000 and h.rate(1_000_000) == 1_000_000
    assert x.rate(3_000_000) == 3_000_000 and x.rate(2_000_000) == 2_000_000
    assert x.rate(2_500_000) is None                    # divisor 1.2: not a rate it makes
    assert x.rate(115200) == pytest.approx(3e6 / 26)                 # 0.16 % fast
    assert x.rates(1_400_000, 3_000_000) == [3_000_000, 2_000_000, 1_500_000, 1_411_765]


@pytest.mark.parametrize("board", ["icebreaker", "ulx3s", "arty"])
def test_each_boards_default_rate_is_good_at_both_ends(board):
    from fewmul.boards.platforms import ICEBreakerPlatform, ULX3S_85F_Platform
    b = BOARDS[board]
    clock = {"icebreaker": 12e6, "ulx3s": 25e6, "arty": 100e6}[board]
    if board != "arty":
        platform = {"icebreaker": ICEBreakerPlatform, "ulx3s": ULX3S_85F_Platform}[board]()
        assert platform.default_clk_frequency == clock
    assert b.default_baud >= 3_000_000
    divisor = check_baud(clock, b.default_baud, b.uart_bridge)
    assert clock / divisor == b.default_baud == BRIDGES[b.uart_bridge].rate(b.default_baud)


def test_bad_rates_are_refused_naming_the_nearest_good_ones():
    with pytest.raises(BaudError) as info:              # the board: 12 MHz / 4 at most
        check_baud(12e6, 4_000_000, "FT2232H")
    assert str(info.value) == ("baud rate 4000000 cannot be used: too fast for the board's "
                               "12 MHz clock (4 clocks per bit); nearest good rates: 3000000")
    with pytest.raises(BaudError, match="not a rate the FT231X makes; nearest good rates: "
                                        "2000000 or 3000000"):
        check_baud(25e6, 2_500_000, "FT231X")
    # the board makes it within 0.1 %, the FT231X only 3 Mbaud, 3.5 % away
    with pytest.raises(BaudError, match=r"25 MHz / 69/8\), its FT231X 3,000,000: 3.5 % apart, "
                                        r"over 2 %; nearest good rates: 2000000 or 3000000"):
        check_baud(25e6, 2_900_000, "FT231X")
    assert check_baud(25e6, 1_000_000, "FT231X") == 25
    assert "\n" not in str(info.value)


def received(rx, line, dut=None) -> list[int]:
    """The bytes ``rx`` (a :class:`UARTReceiver`) gives while the testbench ``line`` drives its
    pin, simulating ``dut`` (``rx`` when None)."""
    got = []

    async def sink(ctx):
        while True:
            _, _, valid, payload = await ctx.tick().sample(rx.o.valid, rx.o.payload)
            if valid:
                got.append(payload)

    sim = Simulator(rx if dut is None else dut)
    sim.add_clock(1e-6)
    sim.add_testbench(line)
    sim.add_testbench(sink, background=True)
    sim.run()
    return got


async def send_fractional(ctx, line, data, divisor):
    """Drive 8N1 bytes back to back with the bit edges of the exact rate: edge ``k`` at cycle
    ``round(k * divisor)``."""
    edge, now = 0, 0
    for byte in data:
        for bit in [0, *((byte >> i) & 1 for i in range(8)), 1]:
            ctx.set(line, bit)
            edge += 1
            end = round(edge * divisor)
            await ctx.tick().repeat(end - now)
            now = end


@pytest.mark.parametrize("divisor", [Fraction(25, 3), Fraction(9, 2), Fraction(67, 16)])
def test_fractional_divisor_keeps_the_exact_rate(divisor):
    """A fractional divisor: the receiver takes bytes sent at the exact rate, and the
    transmitter's bit edges stay within a cycle of it over many back-to-back bytes."""
    data = [0x00, 0xFF, 0xA5, 0x5A, 0x01, 0x80, 0x3C, 0x55, 0xAA, 0x0F]
    rx = UARTReceiver(divisor)

    async def line(ctx):
        await ctx.tick().repeat(3)
        await send_fractional(ctx, rx.rx, data, divisor)
        await ctx.tick().repeat(3 * round(divisor))

    assert received(rx, line) == data

    tx = UARTTransmitter(divisor)
    edges = []

    async def source(ctx):
        await stream_put(ctx, tx.i, data)

    async def watch(ctx):
        last, cycle = 1, 0
        while True:
            _, _, value = await ctx.tick().sample(tx.tx)
            cycle += 1
            if value != last:
                edges.append(cycle)
            last = value

    sim = Simulator(tx)
    sim.add_clock(1e-6)
    sim.add_testbench(source)
    sim.add_testbench(watch, background=True)
    sim.run_until(1e-6 * (len(data) + 2) * 10 * round(divisor + 1))
    first = edges[0]                 # the first start bit
    # every edge at a bit boundary of the exact rate from the first start bit, within a cycle
    for e in edges:
        k = round((e - first) / divisor)
        assert abs((e - first) - k * divisor) < 1
    assert len(edges) > 2 * len(data)


@pytest.mark.parametrize("divisor", [4, 7, Fraction(25, 3), Fraction(13, 3)])
def test_uart_loopback_through_transmitter_and_receiver(divisor):
    """Bytes sent by the transmitter, including back to back, come out of the receiver."""
    m = Module()
    m.submodules.tx = tx = UARTTransmitter(divisor)
    m.submodules.rx = rx = UARTReceiver(divisor)
    m.d.comb += rx.rx.eq(tx.tx)
    data = [0x00, 0xFF, 0xA5, 0x5A, 0x01, 0x80, 0x3C]

    async def line(ctx):
        await stream_put(ctx, tx.i, data)
        await ctx.tick().repeat(12 * round(divisor + 1))     # the last byte's bits

    assert received(rx, line, m) == data


def test_receiver_drops_framing_errors():
    rx = UARTReceiver(5)

    async def line(ctx):
        await send_byte(ctx, rx.rx, 0x42, 5, stop=0)     # a low stop bit: dropped
        await ctx.tick().repeat(12 * 5)                  # the line returns to idle
        await send_byte(ctx, rx.rx, 0x99, 5)
        await ctx.tick().repeat(5)

    assert received(rx, line) == [0x99]


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


def test_link_format_of_pixels_and_of_an_older_link_file(tmp_path):
    """A frame carries the whole image in any case; link.json written before beats were
    recorded reads as one transfer per image."""
    fmt = LinkFormat(input_count=12, input_bits=2, classes=3, label_offset=0, label_bits=2,
                     scores_offset=2, score_bits=6, result_bits=20, input_beats=4)
    assert fmt.in_bytes == 3 and fmt.frame_bytes == (4, 4)
    path = tmp_path / "link.json"
    path.write_text(fmt.to_json())
    assert LinkFormat.load(path) == fmt
    old = {k: v for k, v in json.loads(fmt.to_json()).items() if k != "input_beats"}
    path.write_text(json.dumps(old))
    assert LinkFormat.load(path).input_beats == 1
    with pytest.raises(ValueError, match="positive divisor of the 12 inputs, not 5"):
        LinkFormat(**{**asdict(fmt), "input_beats": 5})


def test_host_link_answers_serial_frames_bit_exact():
    """Image frames in on ``rx`` (one with a bad sync byte first, one cut short and timed out),
    result frames out on ``tx``: each equals the golden model's scores and label."""
    net = random_net([12, 8, 4], input_bits=3, seed=3)
    network, _ = build_network(net, pe=[2, 4])
    link = HostLink(network, 4)
    assert link.format == link_format(network) and link.format.input_beats == 1
    images = np.random.default_rng(0).integers(0, 8, size=(4, 12))
    golden = net.forward(images)[-1]
    results = serial_answers(link, images, 4)
    assert [r[1] for r in results] == golden.tolist()
    assert [r[0] for r in results] == golden.argmax(1).tolist()


def test_host_link_of_whole_images_has_no_pixel_feed():
    """One transfer per image: the image register is the network's input, no FIFO or skid
    buffer in between (the dense designs' logic is as it was before beats)."""
    from amaranth.back import rtlil
    dense = HostLink(build_network(random_net([12, 8, 4], input_bits=3, seed=3), pe=[2, 4])[0], 4)
    conv = HostLink(build_network(small_conv_net(), pe=[4, 5])[0], 4)
    dense_text, conv_text = rtlil.convert(dense), rtlil.convert(conv)
    assert "frame_fifo" not in dense_text and "input_skid" not in dense_text
    assert "frame_fifo" in conv_text and "input_skid" in conv_text


def small_conv_net(seed=0):
    """3x3 windows on a 1x6x6 2-bit image -> 4 filters -> signs -> 2x2 max-pool -> 5 scores."""
    return random_conv_net((1, 6, 6), [("conv", 4, 3), ("pool", 2), ("dense", 5)],
                           input_bits=2, seed=seed)


@pytest.mark.parametrize("pe", [[1, 1], [4, 5]])
def test_host_link_feeds_a_conv_net_pixel_by_pixel_bit_exact(pe):
    """A convolutional network takes its image in 36 transfers of one pixel; the frame carries
    the whole image and the answers equal the golden model's."""
    net = small_conv_net()
    network, _ = build_network(net, pe=pe)
    link = HostLink(network, 4)
    fmt = link.format
    assert (fmt.input_count, fmt.input_beats, fmt.input_bits) == (36, 36, 2)
    assert fmt.frame_bytes[0] == 1 + 9
    images = np.random.default_rng(1).integers(0, 4, size=(5, 36))
    images[0] = 3
    golden = net.forward(images)[-1]
    results = serial_answers(link, images, 4)
    assert [r[1] for r in results] == golden.tolist()
    assert [r[0] for r in results] == golden.argmax(1).tolist()


class PixelSink(wiring.Component):
    """Stands in for a convolutional network: ``input_beats`` pixels of ``channels`` elements
    per image on ``i`` (a testbench takes them), no results on ``o``."""

    def __init__(self, channels, bits, input_beats):
        self.input_beats = input_beats
        result = data.StructLayout({"label": unsigned(2), "scores": data.ArrayLayout(signed(6), 3)})
        super().__init__({"i": In(stream.Signature(data.ArrayLayout(unsigned(bits), channels))),
                          "o": Out(stream.Signature(result))})

    def elaborate(self, platform):
        return Module()


def test_host_link_feeds_pixels_in_order_through_stalls_and_frames_sent_back_to_back():
    """Frames sent back to back while the network takes a pixel only every few cycles (feeding
    an image takes longer than a byte on the line): every image's pixels arrive in order, the
    frames received meanwhile wait for the image register."""
    sink = PixelSink(channels=3, bits=2, input_beats=12)
    divisor = 4
    link = HostLink(sink, divisor)
    fmt = link.format
    assert (fmt.input_count, fmt.input_beats, fmt.in_bytes) == (36, 12, 9)
    images = np.random.default_rng(2).integers(0, 4, size=(4, 36))
    got = []
    rng = np.random.default_rng(3)

    async def host(ctx):
        await send_images(ctx, link, images, divisor, cut=4)

    async def network(ctx):
        for _ in range(20_000):
            if len(got) == images.size // 3:
                break
            ready = int(rng.random() < 0.15)        # about 80 cycles per image, 40 per byte
            ctx.set(sink.i.ready, ready)
            _, _, valid, payload = await ctx.tick().sample(sink.i.valid, sink.i.payload)
            if valid and ready:
                got.append([int(v) for v in payload])

    run_link(link, host, network)
    assert np.array(got).reshape(len(got) // 12, 36).tolist() == images.tolist()
