"""End to end: spec -> trained run -> Verilog -> cocotb + Verilator, bit-exact.

These tests run the real Verilator simulation. The demo network is built once
per session (training takes seconds) and shared by the tests below.
"""

import json
import shutil

import pytest

from fewmul.cli import main
from fewmul.compiler.emit import compile_run
from fewmul.compiler.training import train_run
from fewmul.compiler.spec import load_spec
from fewmul.nn.data import load_dataset
from fewmul.compiler.folders import BuildFolder
from fewmul.sim.check import check_build

EXAMPLE = "examples/digits-bnn.yaml"


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    summary = train_run(EXAMPLE, root / "run", progress=False)
    report = compile_run(root / "run", root / "build", synth=("generic",))
    return root, summary, report


def test_demo_network_is_accurate_and_agrees_with_float_model(demo):
    _, summary, _ = demo
    assert summary["test_acc_deployed"] >= 0.90
    assert summary["test_acc_integer"] == summary["test_acc_deployed"] or \
        abs(summary["test_acc_integer"] - summary["test_acc_deployed"]) < 0.01
    assert summary["integer_vs_float_agreement"] >= 0.99


def test_compiled_design_has_no_multipliers(demo):
    root, _, report = demo
    stat = report["yosys"]["generic"]
    assert stat["num_cells"] > 100          # a real design was synthesized
    assert stat["cells"].get("$mul", 0) == 0
    assert stat["multipliers"] == 0


def test_report_lists_layers_and_widths(demo):
    root, _, report = demo
    on_disk = json.loads((root / "build" / "report.json").read_text())
    assert on_disk["cycles_per_inference"] == report["cycles_per_inference"]
    l0, l1 = on_disk["layers"][:2]
    assert (l0["inputs"], l0["units"], l0["input_bits"]) == (64, 256, 4)
    # |s| <= 64 * 15 = 960 needs 11 bits; |s| <= 256 needs 10 bits (signed)
    assert (l0["accumulator_bits"], l1["accumulator_bits"]) == (11, 10)
    hexes = (root / "build" / "weights" / "layer0_weights.hex").read_text().split()
    assert len(hexes) == 256 // l0["pe"] * l0["folds"]     # one memory word per line


def test_demo_network_bit_exact_in_verilator_with_stalls(demo):
    """All 360 test images in the compiled harness (labels and scores), the first 200 in the
    cocotb testbench (every layer, full speed and with stalls)."""
    root, _, report = demo
    result = check_build(root / "build", images=360, stall=0.3, seed=1, testbench_images=200)
    assert result["error"] is None, result["error"]
    assert result["images"] == 360
    assert result["mismatches"] == 0, result["first_mismatch"]
    assert result["harness"]["images"] == 360 and result["harness"]["mismatches"] == 0
    assert result["testbench"]["images"] == 200 and result["testbench"]["passes"] == 2
    assert result["cycles_per_inference"] == report["cycles_per_inference"]
    assert result["latency_cycles"] == report["latency_cycles"]
    assert result["harness"]["cycles_per_inference"] == report["cycles_per_inference"]
    assert result["stalled_cycles"] > 200 * report["cycles_per_inference"]
    assert json.loads((root / "build" / "sim.json").read_text())["mismatches"] == 0


def test_sim_says_which_images_went_through_which_simulator(demo, capsys):
    root, _, _ = demo
    assert main(["sim", str(root / "build"), "--images", "300", "--testbench-images", "20"]) == 0
    out = capsys.readouterr().out
    assert "sim OK: 300 images, 0 mismatches" in out
    assert "compiled harness: images 0-299, labels and scores, 0 mismatches" in out
    assert "cocotb testbench: images 0-19, every layer, full speed and with random stalls" in out
    assert out.count("images/s") == 2


def test_the_harness_checks_the_images_past_the_testbench(demo):
    """A golden model wrong in one score of every image: the harness alone (no testbench
    images) finds all of them and names the score; with the testbench on the first 10, those
    are named by their layer."""
    root, _, _ = demo
    folder = BuildFolder(root / "build")
    saved = folder.net_path.read_bytes()
    try:
        net = folder.net()
        net.ops[-2].offsets[2] += 1
        folder.save_net(net)
        result = check_build(folder.path, images=300, testbench_images=0)
        assert result["testbench"] is None
        assert result["harness"]["mismatches"] == result["mismatches"] == 300
        assert result["first_mismatch"].startswith("image 0: score 2: got ")
        result = check_build(folder.path, images=300, testbench_images=10, stall=0.0)
        assert result["testbench"]["mismatches"] == 10 and result["mismatches"] == 300
        assert result["first_mismatch"].startswith("image 0: layer 2 differs")
    finally:
        folder.net_path.write_bytes(saved)


def test_simulation_catches_a_wrong_golden_model(demo, tmp_path):
    """The comparison can fail: a single changed threshold is found, with its layer."""
    root, _, _ = demo
    build = tmp_path / "build"
    shutil.copytree(root / "build", build)
    folder = BuildFolder(build)
    net = folder.net()
    images = load_dataset(load_spec(build / "spec.yaml").data).test.x[:20]
    s = net.layers[1].head.forward(net.layers[0].forward(images))[0, 5]
    # move neuron 5's threshold of layer 1 across the first image's sum: its output flips
    t = net.layers[1].last.thresholds
    t[5] = s + 1 if s >= t[5] else s
    folder.save_net(net)
    result = check_build(build, images=20, stall=0.0)
    assert result["mismatches"] >= 1
    assert result["first_mismatch"].startswith("image 0: layer 1 differs")
    assert main(["sim", str(build), "--images", "5", "--stall", "0"]) == 1
