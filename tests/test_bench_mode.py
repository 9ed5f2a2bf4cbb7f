# amaranth: UnusedElaboratable=no
"""Benchmark mode and the streaming host link: the image store unit in the Amaranth simulator,
the link's bench command over its serial pins (Amaranth, then cocotb + Verilator), against the
golden model; the fit of the store; the window of a board that keeps up with the line."""

import gc
import warnings

import numpy as np
import pytest
from amaranth.hdl import UnusedElaboratable
from amaranth.sim import Simulator

from fewmul.boards.bench import (BenchUnit, bench_cycles_per_image, bench_fit, feed_bytes,
                                 store_blocks)
from fewmul.boards.link import HostLink, link_format
from fewmul.boards.nets import build_network, random_net
from fewmul.boards.protocol import (BENCH_COMMAND, BENCH_REPORT, BENCH_REPORT_BYTES,
                                    STREAM_WINDOW, WINDOW, BenchReport, LinkFormat,
                                    result_checksum)
from fewmul.boards.targets import ICE40_EBR

from gateware_helpers import tiny_board_build
from link_helpers import recv_frame, recv_result, run_link, send_byte, send_frame

FMT = LinkFormat(input_count=5, input_bits=3, classes=3, label_offset=0, label_bits=2,
                 scores_offset=2, score_bits=6, result_bits=20)


def test_checksum_sees_every_bit_and_the_order():
    payloads = [0x12345, 0xFFFFF, 0, 0xABCDE]
    c = result_checksum(payloads, 20)
    for i in range(len(payloads)):
        for bit in range(20):
            changed = list(payloads)
            changed[i] ^= 1 << bit
            assert result_checksum(changed, 20) != c
    assert result_checksum(payloads[::-1], 20) != c
    # two 32-bit words of a 40-bit payload fold by XOR, then rotate
    assert result_checksum([1 << 32 | 5, 3], 40) == ((1 ^ 5) << 1) ^ 3
    with pytest.raises(ValueError, match="of 20 bits"):
        result_checksum([1 << 20], 20)
    report = bytes([BENCH_REPORT]) + (7).to_bytes(4, "little") + (3).to_bytes(2, "little") \
        + c.to_bytes(4, "little")
    assert len(report) == 1 + BENCH_REPORT_BYTES
    assert BenchReport.decode(report) == BenchReport(7, 3, c)


def test_store_fit_default_and_refusal():
    fmt = LinkFormat(input_count=64, input_bits=4, classes=10, label_offset=0, label_bits=4,
                     scores_offset=4, score_bits=12, result_bits=124)
    assert fmt.in_bytes == 32
    # 16 images a 512 x 8 block, and a block of labels
    assert store_blocks(fmt, 16, ICE40_EBR) == 2 and store_blocks(fmt, 17, ICE40_EBR) == 3
    assert bench_fit(fmt, None, 10, ICE40_EBR, available=1000) == 64       # half of 10: 4 + 1
    assert bench_fit(fmt, None, 10, ICE40_EBR, available=50) == 50
    assert bench_fit(fmt, None, 1, ICE40_EBR, available=50) == 0
    assert bench_fit(fmt, 144, 10, ICE40_EBR, available=1000) == 144
    with pytest.raises(ValueError) as info:
        bench_fit(fmt, 145, 10, ICE40_EBR, available=1000, board="the iCEBreaker")
    assert str(info.value) == (
        "--bench-images 145 does not fit the iCEBreaker: the image store (32 bytes an image) "
        "needs 11 block RAMs, but about 10 are free beside the network's weights; at most 144 "
        "images fit")
    with pytest.raises(ValueError, match="more than the 50 test images"):
        bench_fit(fmt, 51, 10, ICE40_EBR, available=50)


def test_feed_width_keeps_up_with_the_network():
    assert feed_bytes(32, 64) == 1 and feed_bytes(32, 34) == 1 and feed_bytes(32, 33) == 2
    assert feed_bytes(32, 10) == 4 and feed_bytes(32, 3) == 32 and feed_bytes(5, 4) == 4
    fmt = LinkFormat(input_count=64, input_bits=4, classes=10, label_offset=0, label_bits=4,
                     scores_offset=4, score_bits=12, result_bits=124)
    assert [bench_cycles_per_image(fmt, c) for c in (64, 34, 33, 10, 2)] == [64, 34, 33, 10, 3]
    # 8 words of 32 bits an image: 16 images a 512 x 32 pair of 256 x 16 blocks
    assert store_blocks(fmt, 16, ICE40_EBR, 10) == 2 + 1


@pytest.mark.parametrize("width", [1, 2])
def test_bench_unit_feeds_counts_and_reports(width):
    """The store's words come out in order through a stalling consumer; the report's cycles run
    from the first image taken to the last result, its labels and checksum are the results'."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 8, size=(6, 5))
    labels = rng.integers(0, 3, size=6)
    unit = BenchUnit(FMT, images, labels, width)
    payloads = [int(p) for p in rng.integers(0, 1 << 20, size=6)]
    payloads[1] = (payloads[1] & ~3) | int(labels[1])          # two of them right
    payloads[4] = (payloads[4] & ~3) | int(labels[4])
    payloads[0] = (payloads[0] & ~3) | ((int(labels[0]) + 1) % 3)
    right = sum((p & 3) == lab for p, lab in zip(payloads, labels))
    fed, report, events = [], [], {}

    async def testbench(ctx):
        ctx.set(unit.start, 1)
        await ctx.tick()
        ctx.set(unit.start, 0)
        taken = results = 0
        queue = []                                      # cycles at which results are due
        for cycle in range(2000):
            ready = int(rng.random() < 0.6)
            ctx.set(unit.feed.ready, ready)
            complete = sum(1 for b in fed if b[1])
            take = int(complete > taken and rng.random() < 0.5)
            ctx.set(unit.taken, take)
            due = bool(queue) and queue[0] <= cycle
            ctx.set(unit.result.valid, int(due))
            ctx.set(unit.result.payload, payloads[results] if due else 0)
            ctx.set(unit.tx.ready, int(rng.random() < 0.3))
            _, _, valid, byte, last, tx_valid, tx_ready, tx_byte, running = \
                await ctx.tick().sample(unit.feed.valid, unit.feed.payload.data,
                                        unit.feed.payload.last, unit.tx.valid, unit.tx.ready,
                                        unit.tx.payload, unit.running)
            if valid and ready:
                fed.append((byte, last))
            if take:
                events.setdefault("first_in", cycle)
                taken += 1
                queue.append(cycle + 3 + int(rng.integers(0, 4)))
            if due:
                events["last_out"] = cycle
                queue.pop(0)
                results += 1
            if tx_valid and tx_ready:
                report.append(tx_byte)
            if not running and report:
                break
        ctx.set(unit.result.valid, 0)

    sim = Simulator(unit)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()
    words = 2 // width
    assert b"".join(w.to_bytes(width, "little") for w, _ in fed) == \
        b"".join(FMT.encode_image(x)[1:] for x in images)
    assert [i for i, (_, last) in enumerate(fed) if last] == [words * k + words - 1
                                                             for k in range(6)]
    got = BenchReport.decode(bytes(report))
    assert got == BenchReport(events["last_out"] - events["first_in"], right,
                              result_checksum(payloads, 20))


def serial_bench(link, images, divisor, timeout=200_000):
    """Serial frames for ``images`` (answers awaited), then the bench command; returns the
    answers, the report and the answer to an image sent after the bench."""
    fmt = link.format
    answers, report = [], []

    async def host(ctx):
        await ctx.tick().repeat(4)
        for x in images:
            await send_frame(ctx, link.rx, fmt.encode_image(x), divisor)
        while len(answers) < len(images):
            await ctx.tick()
        await send_byte(ctx, link.rx, BENCH_COMMAND, divisor)
        await send_frame(ctx, link.rx, fmt.encode_image(images[0]), divisor)  # ignored: it runs
        while not report:
            await ctx.tick()
        await send_frame(ctx, link.rx, fmt.encode_image(images[1]), divisor)  # answered again

    async def listen(ctx):
        for _ in images:
            answers.append(await recv_result(ctx, link, divisor, timeout))
        report.append(BenchReport.decode(
            await recv_frame(ctx, link.tx, 1 + BENCH_REPORT_BYTES, divisor, timeout)))
        answers.append(await recv_result(ctx, link, divisor, timeout))

    run_link(link, host, listen)
    return answers, report[0]


def golden_bench(net, fmt, images, labels):
    """Correct labels and checksum of the golden model's results for the bench's images."""
    scores = net.scores(images)
    predicted = scores.argmax(1)
    payloads = [fmt.encode_result(int(p), s) for p, s in zip(predicted, scores.tolist())]
    return int((predicted == labels).sum()), result_checksum(payloads, fmt.result_bits)


@pytest.mark.parametrize("width", [1, None])
def test_host_link_bench_command_bit_exact(width):
    """Over the serial pins: images answered, then the bench command: its report's labels and
    checksum are the golden model's, its cycles the steady state's within the pipeline fill;
    an image frame during the run is ignored, one after it answered. Fed a byte a cycle, and
    the 2 bytes a cycle that keep up with the network's 5 cycles an image (5 bytes: 3 words,
    a byte of padding in the first)."""
    net = random_net([12, 8, 4], input_bits=3, seed=3)
    network, _ = build_network(net, pe=[2, 4])
    fmt = link_format(network)
    assert (fmt.in_bytes, network.cycles_per_inference) == (5, 5)
    width = width or feed_bytes(fmt.in_bytes, network.cycles_per_inference)
    rng = np.random.default_rng(5)
    bench_images = rng.integers(0, 8, size=(9, 12))
    labels = rng.integers(0, 4, size=9)
    labels[:4] = net.scores(bench_images[:4]).argmax(1)            # some right, some not
    link = HostLink(network, 4, BenchUnit(fmt, bench_images, labels, width))
    images = rng.integers(0, 8, size=(2, 12))
    answers, report = serial_bench(link, images, 4)
    golden = net.scores(images)
    assert [a[1] for a in answers] == golden.tolist() + [golden[1].tolist()]
    correct, checksum = golden_bench(net, fmt, bench_images, labels)
    assert (report.correct, report.checksum) == (correct, checksum)
    steady = max(network.cycles_per_inference, -(-fmt.in_bytes // width) + 2)
    assert width == 1 or (width, steady) == (2, bench_cycles_per_image(fmt, 5)) == (2, 5)
    assert (len(bench_images) - 1) * steady <= report.cycles
    assert report.cycles <= (len(bench_images) - 1) * steady + network.latency_cycles + 4


def test_window_of_a_board_that_keeps_up():
    """16 images in flight when the network takes each image within a frame and answers
    fit the image frames' time; else 2."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnusedElaboratable)
        small = build_network(random_net([16, 8, 4], input_bits=2, seed=0), pe=[2, 2])[0]
        wide = build_network(random_net([32, 8, 4], input_bits=4, seed=0), pe=[2, 2])[0]
        assert link_format(small).window == WINDOW
        fmt = link_format(wide, 4)
        assert fmt.out_bytes <= fmt.in_bytes and fmt.window == STREAM_WINDOW
        assert link_format(small, 4).window == WINDOW      # its results are the longer frames
        assert not fmt.keeps_up(4, 10 * 4 * fmt.in_bytes + 1)
        del small, wide
        gc.collect()


@pytest.mark.slow                  # 80 s; the Amaranth-simulator tests above cover the unit
@pytest.mark.parametrize("n", [12])
def test_streaming_link_and_bench_under_cocotb_and_verilator(tmp_path, n):
    """The link's Verilog with a bench: images sent back to back with the streaming window, at
    divisor 4 (3 Mbaud on a 12 MHz clock), answered bit-exact with the line as the limit;
    then the bench command's report equals the golden model's."""
    from fewmul.boards.uart_sim import simulate_link
    net = random_net([32, 8, 4], input_bits=4, seed=0)
    rng = np.random.default_rng(2)
    images = rng.integers(0, 16, size=(n, 32))
    bench_images = rng.integers(0, 16, size=(10, 32))
    labels = rng.integers(0, 4, size=10)
    result = simulate_link(net, images, tmp_path, pe=[2, 2], divisor=4,
                           bench=(bench_images, labels))
    assert result["error"] is None, result["error"]
    assert (result["answers"], result["mismatches"]) == (n, 0)
    assert result["window"] == STREAM_WINDOW
    # back to back: each answer one image frame after the one before
    assert result["link_cycles_per_image"] == result["line_cycles_per_image"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnusedElaboratable)
        fmt = link_format(build_network(net, pe=[2, 2])[0])
        gc.collect()
    correct, checksum = golden_bench(net, fmt, bench_images, labels)
    bench = result["bench"]
    assert (bench["correct"], bench["checksum"]) == (correct, checksum)
    steady = result["bench_cycles_per_image"]
    assert 9 * steady <= bench["cycles"] <= 9 * steady + result["latency_cycles"] + 4


# --- the build and the host driver -------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_build(tmp_path_factory):
    """A build folder as 'fewmul compile' leaves it, for a small network on the digits data."""
    return tiny_board_build(tmp_path_factory.mktemp("tiny") / "build")


@pytest.mark.parametrize("argv, message", [
    (["--baud", "2500000", "--board", "ulx3s"],
     "fewmul build: error: baud rate 2500000 cannot be used: not a rate the FT231X makes; "
     "nearest good rates: 2000000 or 3000000"),
    (["--bench-images", "100000", "--board", "icebreaker"],
     "fewmul build: error: --bench-images 100000 is more than the"),
])
def test_build_refuses_bad_rates_and_too_many_images_before_synthesis(tiny_build, capsys, argv,
                                                                      message):
    from fewmul.cli import main
    build, _ = tiny_build
    assert main(["build", str(build), "-q", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1
    assert not (build / argv[-1] / "report.json").exists()


class FakeBench:
    """A stand-in serial port for a board in benchmark mode: answers the bench command with the
    report the golden model gives (``wrong``: one result changed)."""

    def __init__(self, net, fmt, images, labels, cycles, wrong=False):
        self.net, self.fmt, self.images, self.labels = net, fmt, images, labels
        self.cycles, self.wrong, self.tx = cycles, wrong, b""

    def write(self, data: bytes) -> None:
        assert data == bytes([BENCH_COMMAND])
        scores = self.net.scores(self.images)
        if self.wrong:
            scores[3, 0] += 1
        predicted = scores.argmax(1)
        payloads = [self.fmt.encode_result(int(p), s) for p, s in zip(predicted, scores.tolist())]
        checksum = result_checksum(payloads, self.fmt.result_bits)
        correct = int((predicted == self.labels).sum())
        self.tx += b"\x00\x5a" + bytes([BENCH_REPORT]) + self.cycles.to_bytes(4, "little") \
            + correct.to_bytes(2, "little") + checksum.to_bytes(4, "little")

    def read(self, n: int) -> bytes:
        out, self.tx = self.tx[:n], self.tx[n:]
        return out


def test_run_bench_against_a_stand_in_board(tiny_build, capsys):
    """The host side of the bench: the report read past stray bytes, accuracy and inferences/s
    from it, the checksum compared with the golden model's (a changed result is caught)."""
    import json

    from fewmul.boards.host import HostLinkError, run_bench
    from fewmul.nn.data import load_dataset
    build, net = tiny_build
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnusedElaboratable)
        network = build_network(net, pe=[2, 1])[0]
        fmt, cpi, latency = link_format(network), network.cycles_per_inference, \
            network.latency_cycles
        del network
        gc.collect()
    board_dir = build / "icebreaker"
    board_dir.mkdir(exist_ok=True)
    (board_dir / "link.json").write_text(fmt.to_json(baud=3_000_000, clock_hz=12e6))
    with pytest.raises(HostLinkError, match="no benchmark mode; build it with 'fewmul build "
                                            "--bench-images N'"):
        run_bench(FakeBench(net, fmt, [], [], 0), build)
    steady = bench_cycles_per_image(fmt, cpi)
    (board_dir / "link.json").write_text(fmt.to_json(
        baud=3_000_000, clock_hz=12e6, bench_images=20, bench_cycles_per_image=steady,
        latency_cycles=latency))
    test = load_dataset(__import__("fewmul.compiler.folders", fromlist=["BuildFolder"])
                        .BuildFolder(build).spec().data).test
    x, y = test.x[:20], test.y[:20]
    cycles = 19 * steady + latency
    result = run_bench(FakeBench(net, fmt, x, y, cycles), build)
    assert result["checksum_ok"] and result["cycles"] == cycles == result["predicted_cycles"]
    assert result["correct"] == result["golden_correct"] == int((net.scores(x).argmax(1) == y).sum())
    assert result["inferences_per_s"] == pytest.approx(20 * 12e6 / cycles)
    assert json.loads((board_dir / "bench.json").read_text())["checksum_ok"] is True
    bad = run_bench(FakeBench(net, fmt, x, y, cycles, wrong=True), build)
    assert not bad["checksum_ok"]


def test_build_refuses_a_store_too_large_before_synthesis(tmp_path):
    """The store's fit is checked against the block RAM the planner leaves free, before the
    network is even lowered."""
    from fewmul.boards.flow import build_design
    net = random_net([64, 8, 10], input_bits=4, seed=5)
    rng = np.random.default_rng(0)
    bench = (rng.integers(0, 16, size=(2000, 64)), rng.integers(0, 10, size=2000))
    with pytest.raises(ValueError, match=r"^--bench-images 1000 does not fit the iCEBreaker "
                                         r"\(Lattice iCE40UP5K\): the image store \(32 bytes an "
                                         r"image\) needs \d+ block RAMs, but about \d+ are free "
                                         r"beside the network's weights; at most \d+ images fit$"):
        build_design(net, "icebreaker", tmp_path, pe=[2, 1], bench=bench, bench_images=1000,
                     progress=False)
    assert list(tmp_path.iterdir()) == []


def test_the_store_is_there_by_default_on_both_boards():
    """The store reads through registers (the DP16KD's output register on the ECP5), so it is
    there by default on the ULX3S as on the iCEBreaker; 0 asks for none."""
    from fewmul.boards.flow import _bench_count
    from fewmul.boards.nets import plan_network
    from fewmul.boards.targets import get_board
    net = random_net([64, 8, 10], input_bits=4, seed=5)
    plans = plan_network(net, [2, 1])
    rng = np.random.default_rng(0)
    bench = (rng.integers(0, 16, size=(200, 64)), rng.integers(0, 10, size=200))
    assert _bench_count(get_board("icebreaker"), net, plans, bench, None) > 0
    assert _bench_count(get_board("ulx3s"), net, plans, bench, None) == 200   # all of them
    assert _bench_count(get_board("ulx3s"), net, plans, bench, 50) == 50
    assert _bench_count(get_board("ulx3s"), net, plans, bench, 0) == 0


@pytest.mark.slow
def test_digits_demo_streams_and_benchmarks_bit_exact_under_verilator(tmp_path):
    """The trained digits demo behind the link's Verilog: 40 test images at the line's limit
    with the streaming window, then the benchmark of 100 test images: cycles exactly the
    steady state times 99 plus the latency, correct labels and checksum the golden model's."""
    from fewmul.compiler.emit import compile_run
    from fewmul.compiler.folders import BuildFolder
    from fewmul.compiler.training import train_run
    from fewmul.boards.uart_sim import simulate_link
    from fewmul.nn.data import load_dataset
    train_run("examples/digits-bnn.yaml", tmp_path / "run", progress=False)
    compile_run(tmp_path / "run", tmp_path / "build", synth=())
    build = BuildFolder(tmp_path / "build")
    net = build.net()
    test = load_dataset(build.spec().data).test
    result = simulate_link(net, test.x[:40], tmp_path / "sim", default=build.folding(),
                           divisor=4, bench=(test.x[:100], test.y[:100]))
    assert result["error"] is None and result["mismatches"] == 0
    assert result["link_cycles_per_image"] == result["line_cycles_per_image"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnusedElaboratable)
        fmt = link_format(build_network(net, default=build.folding())[0])
        gc.collect()
    correct, checksum = golden_bench(net, fmt, test.x[:100], test.y[:100])
    bench = result["bench"]
    assert (bench["correct"], bench["checksum"]) == (correct, checksum)
    steady = result["bench_cycles_per_image"]
    assert 99 * steady <= bench["cycles"] <= 99 * steady + result["latency_cycles"] + 4
