# amaranth: UnusedElaboratable=no
"""Board flows: real bitstreams with the YoWASP tools, the fit check, the host driver and the
UART link under cocotb + Verilator.

The default suite builds the smallest design (a 16-8-4 network) for the iCEBreaker, the ULX3S
and the Arty estimate, and simulates its serial link; the digits demo runs in the slow tests.
"""

import gc
import json
import warnings

import numpy as np
import pytest
from amaranth.hdl import UnusedElaboratable

from fewmul.boards.fit import FitError, check_fit, pe_work, pnr_utilisation_from_log
from fewmul.boards.flow import build_design
from fewmul.boards.host import HostLinkError, check_board, exchange, find_board_dir
from fewmul.boards.link import link_format
from fewmul.boards.nets import build_network, random_net
from fewmul.boards.platforms import aim_clocks
from fewmul.boards.protocol import IMAGE_SYNC, RESULT_SYNC, LinkFormat
from fewmul.boards.targets import BOARDS, get_board
from fewmul.boards.uart_sim import simulate_link
from fewmul.cli import main
from fewmul.compiler.folders import BuildFolder
from fewmul.compiler.lower import plan_folding

from gateware_helpers import tiny_board_build

SMALL = [16, 8, 4]


@pytest.fixture(scope="module")
def tiny_build(tmp_path_factory):
    """A build folder as 'fewmul compile' leaves it, for a small network on the digits data."""
    return tiny_board_build(tmp_path_factory.mktemp("tiny") / "build")


@pytest.fixture(scope="module")
def small_build(tmp_path_factory):
    """The smallest design: a 16-8-4 network, folded by the compiler with pe 2,1."""
    build = tmp_path_factory.mktemp("small") / "build"
    build.mkdir()
    net = random_net(SMALL, input_bits=2, seed=0)
    BuildFolder(build).save_net(net)
    (build / "report.json").write_text(json.dumps({"layers": [{"pe": 2}, {"pe": 1}]}))
    return build, net


def gateware_of(net, pe) -> tuple[LinkFormat, int]:
    """Link format and cycles/inference of ``net``'s gateware, built only to read them."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnusedElaboratable)
        network = build_network(net, pe)[0]
        result = link_format(network), network.cycles_per_inference
        del network
        gc.collect()
    return result


def format_of(net, pe) -> LinkFormat:
    return gateware_of(net, pe)[0]


# --- fit check ----------------------------------------------------------------------------------

def test_fit_error_names_resource_excess_and_a_folding_that_fits():
    net = random_net([64, 256, 256, 10], seed=0)
    plans = plan_folding(net, [8, 8, 1])
    board = get_board("icebreaker")
    with pytest.raises(FitError) as info:
        check_fit(board, {"lut": 9000, "ff": 3000, "bram": 4}, net, plans, stage="yosys")
    err = info.value
    assert err.resource == "lut" and err.used == 9000 and err.available == 5280
    text = str(err)
    assert "9000 LUTs" in text and "3720 over" in text and "iCE40UP5K" in text
    words = text.split("To fit: --pe ")[1].split()
    folding = {"pe": [int(p) for p in words[0].split(",")]}
    if words[1] == "--simd":
        folding["simd"] = [int(s) for s in words[2].split(",")]
    smaller = plan_folding(net, folding.pop("pe"), **folding)
    # a smaller folding, estimated below 85 % of the device
    assert float(text.split("need about ")[1].split()[0]) <= 0.85 * 5280
    assert pe_work(net, smaller) < pe_work(net, plans)
    check_fit(board, {"lut": 5000, "bram": 30}, net, plans, stage="yosys")   # fits: no error


def test_fit_error_asks_for_a_smaller_network_when_one_pe_is_too_much():
    net = random_net([64, 256, 256, 10], seed=0)
    plans = plan_folding(net, 1)
    with pytest.raises(FitError, match=r"even --pe 1 .* smaller network") as info:
        check_fit(get_board("icebreaker"), {"lut": 500_000}, net, plans, stage="yosys")
    assert info.value.resource == "lut" and "494720 over" in str(info.value)


def test_too_many_block_rams_suggests_memories_that_fill_the_blocks():
    """At one neuron per cycle the 64-256-256-10 net's 10 x 256 output-layer memory takes 16
    of the iCE40's 256 x 16 blocks; folding its inputs packs the 85 kbit of weights into the
    30 blocks (120 kbit). A 400 kbit net fits at no folding."""
    from fewmul.boards.fit import estimated_brams
    board = get_board("icebreaker")
    net = random_net([64, 256, 256, 10], seed=0)
    plans = plan_folding(net, 1)
    with pytest.raises(FitError) as info:
        check_fit(board, {"bram": 45}, net, plans, stage="nextpnr")
    text = str(info.value)
    assert info.value.resource == "bram" and "15 over" in text
    words = text.split("To fit: --pe ")[1].split()
    assert words[1] == "--simd"
    folding = plan_folding(net, [int(p) for p in words[0].split(",")],
                           simd=[int(s) for s in words[2].split(",")])
    ratio = 45 / estimated_brams(board, plans)
    assert ratio * estimated_brams(board, folding) <= 30
    assert float(text.split("need about ")[1].split()[0]) <= 30
    big = random_net([64, 512, 512, 10], seed=0)
    with pytest.raises(FitError, match=r"kbit in block RAM at any folding\) need a smaller "
                                       r"network \(fewer hidden units or filters\) or a "
                                       r"larger board"):
        check_fit(board, {"bram": 90}, big, plan_folding(big, 1), stage="nextpnr")


def test_nextpnr_utilisation_table_is_parsed(tmp_path):
    log = tmp_path / "top.tim"
    log.write_text("Info: Device utilisation:\nInfo: \t         ICESTORM_LC:  6012/  5280   113%\n"
                   "Info: \t        ICESTORM_RAM:    12/    30    40%\n")
    assert pnr_utilisation_from_log(get_board("icebreaker"), log) == {"lut": 6012, "bram": 12}


@pytest.mark.parametrize("board, original, file, constraint", [
    ("ulx3s", 'FREQUENCY PORT "clk25_0__io" 25000000.0 HZ;', "top.lpf",
     'FREQUENCY PORT "clk25_0__io" 150000000.0 HZ;'),
    ("icebreaker", "set_frequency clk12_0__io 12.0", "top.pcf", "set_frequency clk12_0__io 40.0"),
])
def test_place_and_route_aims_at_the_target_while_the_design_keeps_the_board_clock(
        board, original, file, constraint):
    from amaranth.hdl import Module, Signal

    def files(target):
        platform = get_board(board).platform()
        if target:
            aim_clocks(platform, target)
        m = Module()
        count = Signal(8)    # a design in the board's default clock domain
        m.d.sync += count.eq(count + 1)
        return platform, platform.prepare(m, name="top").files[file]

    assert original in files(None)[1]
    platform, text = files(get_board(board).target_hz)
    assert constraint in text and original not in text
    assert platform.default_clk_frequency == {"ulx3s": 25e6, "icebreaker": 12e6}[board]
    assert files(1e6)[1].count(original) == 1     # a lower target keeps the board's clock


def test_unknown_board_is_rejected():
    with pytest.raises(ValueError, match="Board must be one of arty, icebreaker, ulx3s, not 'de0'"):
        get_board("de0")


# --- host driver ----------------------------------------------------------------------------------

class FakeBoard:
    """A serial port with the board's side of the protocol, computed by a golden model.

    It answers in chunks, adds line noise before the first answer and may corrupt one score.
    """

    def __init__(self, net, fmt: LinkFormat, *, corrupt=None):
        self.net, self.fmt, self.corrupt = net, fmt, corrupt
        self.rx, self.tx, self.answered, self.in_flight_max = b"", bytearray(b"\x00\xff"), 0, 0

    def write(self, data: bytes):
        self.rx += data
        frame = 1 + self.fmt.in_bytes
        while len(self.rx) >= frame:
            assert self.rx[0] == IMAGE_SYNC
            word = int.from_bytes(self.rx[1:frame], "little")
            self.rx = self.rx[frame:]
            x = [(word >> (j * self.fmt.input_bits)) & ((1 << self.fmt.input_bits) - 1)
                 for j in range(self.fmt.input_count)]
            scores = self.net.forward(np.array([x]))[-1][0].tolist()
            if self.corrupt == self.answered:
                scores[0] += 1
            label = int(np.argmax(scores))
            payload = label << self.fmt.label_offset
            for c, s in enumerate(scores):
                payload |= (s & ((1 << self.fmt.score_bits) - 1)) << (
                    self.fmt.scores_offset + c * self.fmt.score_bits)
            self.tx += bytes([RESULT_SYNC]) + payload.to_bytes(self.fmt.out_bytes, "little")
            self.answered += 1

    def read(self, n: int) -> bytes:
        n = min(n, 3)
        out, self.tx = bytes(self.tx[:n]), self.tx[n:]
        return out


def test_host_driver_checks_every_answer_against_the_golden_model(tiny_build):
    build, net = tiny_build
    fmt = format_of(net, [2, 1])
    board_dir = build / "icebreaker"
    board_dir.mkdir(exist_ok=True)
    (board_dir / "link.json").write_text(fmt.to_json())
    assert find_board_dir(build, None) == board_dir
    result = check_board(FakeBoard(net, fmt), build, 12, progress=False)
    assert (result["images"], result["mismatches"]) == (12, 0)
    assert json.loads((board_dir / "run.json").read_text())["mismatches"] == 0
    bad = check_board(FakeBoard(net, fmt, corrupt=7), build, 12, progress=False)
    assert bad["mismatches"] == 1 and bad["first_mismatch"].startswith("image 7:")


def test_host_driver_times_out_on_a_silent_port():
    net = random_net(SMALL, input_bits=2, seed=1)
    fmt = format_of(net, 1)

    class Silent:
        def write(self, data):
            pass

        def read(self, n):
            return b""

    with pytest.raises(HostLinkError, match="no answer from the board for image 0 within 0.05 s"):
        exchange(Silent(), fmt, [[0] * 16], timeout=0.05)


def test_run_command_reports_a_missing_port(small_build, capsys):
    build, net = small_build
    board_dir = build / "ulx3s"
    board_dir.mkdir(exist_ok=True)
    (board_dir / "link.json").write_text(format_of(net, 1).to_json())
    code = main(["run", str(build), "--board", "ulx3s", "--port", "/dev/fewmul-no-such-port",
                 "--images", "2", "-q"])
    assert code == 2
    assert "cannot use /dev/fewmul-no-such-port" in capsys.readouterr().err


# --- real tools -----------------------------------------------------------------------------------

def test_uart_top_bit_exact_under_cocotb_and_verilator(tmp_path):
    """Serial frames on the rx pin of the link top, answers decoded from its tx pin."""
    net = random_net(SMALL, input_bits=2, seed=0)
    images = np.random.default_rng(1).integers(0, 4, size=(8, 16))
    images[0] = 3
    result = simulate_link(net, images, tmp_path, pe=[2, 2], divisor=4)
    assert result["error"] is None
    assert (result["images"], result["answers"], result["mismatches"]) == (8, 8, 0)


def test_icebreaker_bitstream_of_the_smallest_design_via_the_cli(small_build, capsys):
    build, net = small_build
    assert main(["build", str(build), "--board", "icebreaker", "-q"]) == 0
    out = build / "icebreaker"
    report = json.loads((out / "report.json").read_text())
    assert [layer["pe"] for layer in report["layers"]] == [2, 1]     # the compiler's folding
    assert (out / "top.bin").stat().st_size > 100_000               # a whole UP5K image
    assert "Max frequency for clock" in (out / "top.tim").read_text()
    pcf = (out / "top.pcf").read_text()            # the link sits on the board's FTDI UART
    assert "set_io uart_0__rx__io 6" in pcf and "set_io uart_0__tx__io 9" in pcf
    assert report["multipliers"] == 0 and report["used"]["dsp"] == 0
    assert 0 < report["used"]["lut"] <= report["capacity"]["lut"]
    assert report["utilization_percent"]["lut"] == pytest.approx(
        100 * report["used"]["lut"] / 5280, abs=0.01)
    # place and route aimed at the goal for the device; the design runs on the 12 MHz clock
    assert report["fmax_mhz"] > 0 and report["constraint_mhz"] == pytest.approx(40, abs=0.01)
    assert report["clock_hz"] == 12e6 and report["timing_met"] == (report["fmax_mhz"] >= 12)
    assert LinkFormat.load(out / "link.json") == format_of(net, [2, 1])
    assert "iCE40UP5K" in capsys.readouterr().out


def test_ulx3s_bitstream_of_the_smallest_design(tmp_path):
    net = random_net(SMALL, input_bits=2, seed=0)
    report = build_design(net, "ulx3s", tmp_path, pe=1, progress=False, seed=7)
    assert (tmp_path / "top.bit").stat().st_size > 100_000
    assert report["placement_seed"] == 7            # the placer's seed, as asked
    assert " --seed 7 " in (tmp_path / "build_top.sh").read_text()
    assert report["multipliers"] == 0 and report["used"]["dsp"] == 0
    assert report["fmax_mhz"] > 0 and report["constraint_mhz"] == pytest.approx(150, abs=0.05)
    assert report["target_met"] == (report["fmax_mhz"] >= 150)
    assert 'FREQUENCY PORT "clk25_0__io" 150000000.0 HZ;' in (tmp_path / "top.lpf").read_text()
    assert report["cycles_per_inference"] == gateware_of(net, 1)[1]


def test_a_placement_seed_must_be_a_non_negative_integer(tmp_path):
    from fewmul.boards.families import ECP5Flow
    for seed in (-1, 1.5, True):
        with pytest.raises(ValueError, match=r"Seed must be a non-negative integer, not"):
            ECP5Flow(BOARDS["ulx3s"], tmp_path, seed=seed)
    assert ECP5Flow(BOARDS["ulx3s"], tmp_path, seed=0).seed == 0


def test_arty_estimate_and_vivado_bundle(tmp_path):
    net = random_net(SMALL, input_bits=2, seed=0)
    report = build_design(net, BOARDS["arty"], tmp_path, pe=2, progress=False)
    assert report["fmax_mhz"] is None and report["bitstream"] is None
    assert report["used"]["lut"] > 50 and report["used"]["ff"] > 50
    assert report["multipliers"] == 0
    bundle = tmp_path / "vivado"
    xdc = (bundle / "top.xdc").read_text()
    assert "A9" in xdc and "D10" in xdc and "E3" in xdc                # UART pins and clock
    assert "module top" in (bundle / "top.v").read_text()
    assert "SIM_DEVICE" in (bundle / "top.v").read_text()            # untouched for Vivado
    assert (tmp_path / "vivado.zip").stat().st_size > 0


# --- the digits demo (slow) -----------------------------------------------------------------------

SMALL_DIGITS_SPEC = """\
name: digits-small
data: {set: digits, input_bits: 4}
layers:
  - {units: 128, weights: binary, act: sign, bn: true}
  - {units: 10, weights: binary, act: none, bn: true}
train: {epochs: 40, seed: 0}
"""


@pytest.fixture(scope="module")
def digits_demo(tmp_path_factory):
    from fewmul.compiler.emit import compile_run
    from fewmul.compiler.training import train_run
    root = tmp_path_factory.mktemp("digits")
    train_run("examples/digits-bnn.yaml", root / "run", progress=False)
    compile_run(root / "run", root / "build", synth=())
    return root / "build"


@pytest.mark.slow
def test_digits_demo_answers_bit_exact_through_the_uart_pins(digits_demo, tmp_path):
    from fewmul.nn.data import load_dataset
    build = BuildFolder(digits_demo)
    x = load_dataset(build.spec().data).test.x[:20]
    result = simulate_link(build.net(), x, tmp_path, default=build.folding(), divisor=4)
    assert (result["answers"], result["mismatches"], result["error"]) == (20, 0, None)


@pytest.mark.slow
def test_digits_demo_bitstream_for_ulx3s(digits_demo):
    assert main(["build", str(digits_demo), "--board", "ulx3s", "-q"]) == 0
    report = json.loads((digits_demo / "ulx3s" / "report.json").read_text())
    assert (digits_demo / "ulx3s" / "top.bit").stat().st_size > 100_000
    assert report["multipliers"] == 0 and report["fmax_mhz"] > 0


@pytest.mark.slow
def test_digits_bitstream_for_icebreaker_or_a_clear_fit_error(digits_demo, tmp_path):
    """The demo fits the iCE40UP5K, or the error names the resource and what would fit; then
    the smaller digits network (64-128-10) is built instead and must fit."""
    from fewmul.boards.flow import build_board
    from fewmul.compiler.emit import compile_run
    from fewmul.compiler.training import train_run
    try:
        report = build_board(digits_demo, "icebreaker", progress=False)
    except FitError as exc:
        assert exc.used > exc.available
        assert "does not fit the iCEBreaker" in str(exc) and "To fit: " in str(exc)
        spec = tmp_path / "digits-small.yaml"
        spec.write_text(SMALL_DIGITS_SPEC)
        train_run(spec, tmp_path / "run", progress=False)
        compile_run(tmp_path / "run", tmp_path / "build", synth=())
        report = build_board(tmp_path / "build", "icebreaker", pe=1, progress=False)
        out = tmp_path / "build" / "icebreaker"
    else:
        out = digits_demo / "icebreaker"
    assert (out / "top.bin").stat().st_size > 100_000
    assert report["used"]["lut"] <= 5280 and report["multipliers"] == 0


@pytest.mark.parametrize("board, shape, layers, pe, simd, measured", [
    # measured by `fewmul build` (README, board table)
    ("ulx3s", (64, 1, 1), [("dense", 256), ("dense", 256), ("dense", 10)], [4, 4, 1], "auto", 45),
    ("icebreaker", (64, 1, 1), [("dense", 64), ("dense", 10)], [1, 1], "auto", 8),
    ("ulx3s", (1, 8, 8), [("conv", 32, 3, "same"), ("pool", 2), ("conv", 64, 3, "same"),
                          ("pool", 2), ("dense", 10)], [8, 8, 1], [9, 144, 64], 36),
])
def test_the_block_ram_estimate_is_below_what_place_and_route_used(board, shape, layers, pe,
                                                                    simd, measured):
    """The pre-synthesis count counts each board's own blocks (4 kbit on the iCE40, 18 kbit on
    the ECP5) and stays at or below the measured use, so that it never refuses a design that
    fits."""
    from fewmul.boards.fit import estimated_brams
    from fewmul.ir.synthetic import random_graph
    net = random_graph(shape, layers, input_bits=4)
    plans = plan_folding(net, pe, simd=simd)
    estimate = estimated_brams(get_board(board), plans)
    assert measured / 2 <= estimate <= measured

