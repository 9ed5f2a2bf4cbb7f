# amaranth: UnusedElaboratable=no
"""Boards with convolutional networks: random conv nets, their gateware's rate and host link,
the fit check's suggestions, the build report's layers, the host driver, the serial link under
cocotb + Verilator, an Arty estimate through ``fewmul build`` and (slow) a ULX3S bitstream of the
digits conv net."""

import gc
import json
import warnings

import numpy as np
import pytest
from amaranth.hdl import UnusedElaboratable

from fewmul.boards.fit import FitError, check_fit, cycle_targets, pe_work
from fewmul.boards.flow import layer_entries
from fewmul.boards.host import HostLinkError, check_board
from fewmul.boards.link import link_format
from fewmul.boards.nets import build_network, fastest_cycles, random_conv_net, random_net
from fewmul.boards.targets import get_board
from fewmul.boards.uart_sim import simulate_link
from fewmul.cli import main
from fewmul.compiler.folders import BuildFolder
from fewmul.compiler.lower import plan_folding
from fewmul.ir import Graph

from test_boards import FakeBoard

#: The digits conv net of examples/digits-cnn.yaml: 1x8x8 -> 16x8x8 -> 16x4x4 -> 32x2x2 -> 32 -> 10.
DIGITS_CNN = [("conv", 16, 3, "same"), ("pool", 2), ("conv", 32, 3), ("pool", 2), ("dense", 10)]
#: 1x8x8 -> 4x6x6 -> 4x3x3 -> 10: small enough for quick builds.
TINY_CNN = [("conv", 4, 3), ("pool", 2), ("dense", 10)]

TINY_CNN_SPEC = """\
name: tiny-cnn
data: {set: digits, input_bits: 4}
layers:
  - {kind: conv, filters: 4, kernel: 3, weights: binary, act: sign}
  - {kind: maxpool, size: 2}
  - {units: 10, weights: binary, act: none}
"""


# gateware built only to read its figures (rate, link format, report) is never elaborated
pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")


@pytest.fixture(autouse=True)
def collect_unused_gateware():
    """Collect such gateware within the test, so its warning is not raised in a later one."""
    yield
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnusedElaboratable)
        gc.collect()


def digits_cnn(seed=0) -> Graph:
    return random_conv_net((1, 8, 8), DIGITS_CNN, input_bits=4, seed=seed)


def plan_of(text: str, net: Graph):
    """The plans of a suggestion's ``--pe A,B,C [--simd D,E,F]``."""
    words = text.split("--pe ")[1].split()
    folding = {"pe": [int(p) for p in words[0].split(",")]}
    if len(words) > 2 and words[1] == "--simd":
        folding["simd"] = [int(s) for s in words[2].split(",")]
    return plan_folding(net, folding.pop("pe"), **folding)


# --- random conv nets ---------------------------------------------------------------------------

def test_random_conv_net_has_the_ops_and_shapes_of_a_folded_conv_net(tmp_path):
    net = digits_cnn()
    assert [op.kind for op in net.ops] == ["window", "matvec", "threshold", "maxpool",
                                           "window", "matvec", "threshold", "maxpool",
                                           "matvec", "scores", "argmax"]
    assert [layer.out_type.shape for layer in net.layers] == [(16, 4, 4), (32, 1, 1), (10, 1, 1)]
    assert [layer.inputs for layer in net.layers] == [9, 144, 32]
    assert net.in_type.shape == (1, 8, 8) and net.input_bits == 4
    BuildFolder(tmp_path).save_net(net)
    again = BuildFolder(tmp_path).net()
    x = np.random.default_rng(0).integers(0, 16, (50, 64))
    np.testing.assert_array_equal(again.forward(x)[-1], net.forward(x)[-1])
    # thresholds set on random images: the answers depend on the image
    labels = net.predict(np.random.default_rng(1).integers(0, 16, (200, 64)))
    assert len(set(labels.tolist())) >= 4
    hidden = net.forward(x)[0]
    assert 0.2 < hidden.mean() < 0.8


def test_random_conv_net_options_and_errors():
    net = random_conv_net((2, 7, 7), [("conv", 6, 3, 1, 2), ("conv", 4, 3), ("dense", 5)],
                          input_bits=3, act_bits=2, weight_kind="ternary", seed=4)
    window = net.layers[0].first
    assert (window.kernel, window.padding, window.stride) == (3, 1, 2)
    assert net.layers[0].out_type.shape == (6, 4, 4) and net.layers[0].out_type.bits == 2
    assert net.layers[1].out_type.shape == (4, 2, 2)
    assert net.layers[0].head.weight_kind == "ternary"
    with pytest.raises(ValueError, match="a pool must follow a conv layer"):
        random_conv_net((1, 4, 4), [("pool", 2), ("dense", 3)])
    with pytest.raises(ValueError, match="must end with a dense layer"):
        random_conv_net((1, 4, 4), [("conv", 2, 3)])
    with pytest.raises(ValueError, match="kind must be 'conv', 'pool' or 'dense'"):
        random_conv_net((1, 4, 4), [("norm", 2), ("dense", 3)])


# --- gateware and link --------------------------------------------------------------------------

def test_conv_gateware_is_planned_at_the_fastest_rate_its_windows_allow():
    """The planner's default target (64 cycles) is below what an 8x8 image padded to 10x10
    takes; ``build_network`` aims at the 100 cycles the first window needs instead."""
    net = digits_cnn()
    assert fastest_cycles(net) == 100 and fastest_cycles(random_net([16, 8, 4])) == 1
    network, plans = build_network(net)
    assert network.cycles_per_inference == 100 == max(p.cycles for p in plans)
    assert all(p.neurons % p.pe == 0 for p in plans)
    fmt = link_format(network)
    assert (fmt.input_count, fmt.input_beats, fmt.input_bits, fmt.in_bytes) == (64, 64, 4, 32)
    assert fmt.classes == 10


def test_report_layers_of_a_conv_net():
    net = digits_cnn()
    network, plans = build_network(net, [8, 4, 2])
    first, second, last = layer_entries(network, plans)
    assert first["in_shape"] == [1, 8, 8] and first["out_shape"] == [16, 4, 4]
    assert (first["units"], first["inputs"], first["pe"]) == (16, 9, 8)
    assert (first["kernel"], first["padding"], first["pool"]) == (3, 1, 2)
    assert first["cycles_per_image"] == plans[0].cycles >= 128     # 64 windows x 2 groups of 8
    assert (second["units"], second["inputs"], second["kernel"]) == (32, 144, 3)
    assert (last["units"], last["inputs"]) == (10, 32) and "kernel" not in last
    json.dumps([first, second, last])


# --- fit --------------------------------------------------------------------------------------

def test_pe_work_counts_window_inputs_per_filter():
    net = digits_cnn()
    plans = plan_folding(net, [4, 8, 1])
    assert pe_work(net, plans) == 4 * 9 * 4 + 8 * 144 * 1 + 1 * 32 * 1
    folded = plan_folding(net, [4, 8, 1], simd=[3, 48, 32])
    assert pe_work(net, folded) == 4 * 3 * 4 + 8 * 48 + 32


def test_cycle_targets_of_a_conv_net_are_reachable():
    net = digits_cnn()
    targets = cycle_targets(net)
    assert targets[0] == 100 and 1024 in targets         # 64 windows x 16 filters one at a time
    for target in targets:
        assert max(p.cycles for p in plan_folding(net, "auto", target)) <= target


@pytest.mark.parametrize("used, resource", [({"lut": 20000}, "lut"), ({"bram": 40}, "bram")])
def test_fit_error_for_a_conv_net_suggests_a_folding_of_its_filters(used, resource):
    net = digits_cnn()
    plans = plan_folding(net, [16, 32, 10])
    board = get_board("icebreaker")
    with pytest.raises(FitError) as info:
        check_fit(board, used, net, plans, stage="yosys")
    err = info.value
    assert err.resource == resource and "To fit: --pe " in str(err)
    smaller = plan_of(err.suggestion, net)          # a valid folding: pe divides the filters
    assert all(p.neurons % p.pe == 0 for p in smaller)
    assert pe_work(net, smaller) < pe_work(net, plans)
    assert float(str(err).split("need about ")[1].split()[0]) <= 0.85 * board.capacity[resource]


def test_fit_error_for_a_conv_net_too_big_at_one_pe():
    net = digits_cnn()
    with pytest.raises(FitError, match=r"even --pe 1 .* fewer hidden units or filters"):
        check_fit(get_board("icebreaker"), {"lut": 500_000}, net, plan_folding(net, 1),
                  stage="yosys")
    with pytest.raises(FitError, match=r"at any folding\) need a smaller network \(fewer "
                                       r"hidden units or filters\)"):
        check_fit(get_board("icebreaker"), {"bram": 500}, net, plan_folding(net, 1),
                  stage="nextpnr")


# --- host driver ----------------------------------------------------------------------------

@pytest.fixture()
def tiny_cnn_build(tmp_path):
    """A build folder of a small conv net on the digits data, as 'fewmul compile' leaves it
    (without a report: the folding is the planner's)."""
    build = tmp_path / "build"
    build.mkdir()
    net = random_conv_net((1, 8, 8), TINY_CNN, input_bits=4, seed=2)
    BuildFolder(build).save_net(net)
    (build / "spec.yaml").write_text(TINY_CNN_SPEC)
    return build, net


def test_host_driver_sends_whole_images_of_a_conv_net(tiny_cnn_build):
    build, net = tiny_cnn_build
    network, _ = build_network(net)
    fmt = link_format(network)
    assert (fmt.input_count, fmt.input_beats) == (64, 64)
    board_dir = build / "ulx3s"
    board_dir.mkdir()
    (board_dir / "link.json").write_text(fmt.to_json())
    result = check_board(FakeBoard(net, fmt), build, 10, progress=False)
    assert (result["images"], result["mismatches"]) == (10, 0)
    # a link of another network: a clear error, not a shape error of the golden model
    other = link_format(build_network(random_conv_net((1, 6, 6), TINY_CNN, seed=1))[0])
    (board_dir / "link.json").write_text(other.to_json())
    with pytest.raises(HostLinkError, match="have 64 inputs, but the network takes 64 and "
                                            "the board's link 36"):
        check_board(FakeBoard(net, other), build, 2, progress=False)


# --- real tools -----------------------------------------------------------------------------

def test_conv_uart_top_bit_exact_under_cocotb_and_verilator(tmp_path):
    """A conv net's image frames on the rx pin, fed to it pixel by pixel, answers on tx."""
    net = random_conv_net((1, 6, 6), [("conv", 4, 3), ("pool", 2), ("dense", 5)],
                          input_bits=2, seed=0)
    images = np.random.default_rng(1).integers(0, 4, size=(8, 36))
    images[0] = 3
    result = simulate_link(net, images, tmp_path, pe=[1, 1], divisor=4)
    assert result["error"] is None
    assert (result["images"], result["answers"], result["mismatches"]) == (8, 8, 0)


def test_arty_estimate_of_a_conv_build_via_the_cli(tiny_cnn_build, capsys):
    build, net = tiny_cnn_build
    assert main(["build", str(build), "--board", "arty", "-q"]) == 0
    report = json.loads((build / "arty" / "report.json").read_text())
    assert [layer["kernel"] for layer in report["layers"][:1]] == [3]
    assert [layer["units"] for layer in report["layers"]] == [4, 10]
    assert report["cycles_per_inference"] == build_network(net)[0].cycles_per_inference
    assert report["multipliers"] == 0 and report["used"]["lut"] > 100
    link = json.loads((build / "arty" / "link.json").read_text())
    assert (link["input_count"], link["input_beats"], link["in_bytes"]) == (64, 64, 32)
    assert "Arty" in capsys.readouterr().out


@pytest.mark.slow
def test_digits_conv_net_bitstream_for_ulx3s_via_the_cli(tmp_path):
    """The digits conv net (random weights) through 'fewmul build': the planner's folding for
    the 100 cycles of its first window, pipeline stages for the ECP5's 150 MHz."""
    build = tmp_path / "build"
    build.mkdir()
    net = digits_cnn()
    BuildFolder(build).save_net(net)
    assert main(["build", str(build), "--board", "ulx3s", "-q"]) == 0
    out = build / "ulx3s"
    report = json.loads((out / "report.json").read_text())
    assert (out / "top.bit").stat().st_size > 100_000
    assert report["multipliers"] == 0 and report["used"]["dsp"] == 0
    assert report["cycles_per_inference"] == 100
    assert [layer["units"] for layer in report["layers"]] == [16, 32, 10]
    assert all(layer["pipeline"] >= 5 for layer in report["layers"])
    assert report["fmax_mhz"] > 100 and report["constraint_mhz"] == pytest.approx(150, abs=0.05)
    assert json.loads((out / "link.json").read_text())["input_beats"] == 64
