"""On-chip training under cocotb + Verilator: the emitted trainer against the golden model.

These run the cocotb testbench (:func:`fewmul.sim.train_runner.check_training`), which reads
the design in every cycle it writes a weight row.

The default tests compile the one-hidden-layer digits example (no simulation) and train a
two-hidden-layer digits net for 300 steps in Verilator (weights compared with the golden
model after every step); the slow tests train the example for 1000 steps with the area
report, and deep binary and ternary nets with mini-batches.
"""

import json

import numpy as np
import pytest

from fewmul.cli import main
from fewmul.gateware.training import step_cycles
from fewmul.sim.train_runner import TrainingBuild, check_training

SPEC = "examples/digits-onchip.yaml"

#: A two-hidden-layer digits net small enough for a short Verilator run.
DEEP_SPEC = """\
name: digits-onchip-deep
data: {{set: digits, input_bits: 4}}
layers:
  - {{units: {hidden}, weights: {weights}, act: sign, bn: false}}
  - {{units: {hidden}, weights: {weights}, act: sign, bn: false}}
  - {{units: 10, weights: {weights}, act: none, bn: false}}
train:
  seed: 0
  loss: squared_hinge
  onchip: {{batch: {batch}}}
"""


def deep_spec(tmp_path, *, hidden=32, weights="binary", batch=1):
    path = tmp_path / f"deep-{hidden}-{weights}-{batch}.yaml"
    path.write_text(DEEP_SPEC.format(hidden=hidden, weights=weights, batch=batch))
    return path


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    out = tmp_path_factory.mktemp("onchip") / "build"
    assert main(["compile", "--train", SPEC, "-o", str(out), "--no-area"]) == 0
    return out


@pytest.fixture(scope="module")
def deep_build(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("onchip-deep")
    out = tmp / "build"
    assert main(["compile", "--train", str(deep_spec(tmp)), "-o", str(out), "--no-area"]) == 0
    return out


def test_training_design_has_no_multiplier(build):
    report = json.loads((build / "report.json").read_text())
    generic = report["yosys"]["generic"]
    assert generic["num_cells"] > 1000
    assert generic["cells"].get("$mul", 0) == 0 and generic["multipliers"] == 0
    # max(F + H + 4L - 3, N + M_1 + 2) + 11 with F = 64 + 10 forward rows, H = 64 backward
    # rows, L = 2 layers, N = 64 pixels (the pipeline's gaps and depth).
    assert report["cycles_per_step"] == step_cycles((64, 64, 10))[1] == 64 + 10 + 64 + 5 + 11


def test_deep_training_build(deep_build):
    b = TrainingBuild.load(deep_build)
    assert b.cfg.sizes == (64, 32, 32, 10) and len(b.weights) == 3
    assert [w.shape for w in b.weights] == [(32, 64), (32, 32), (10, 32)]
    meta = json.loads((deep_build / "train.json").read_text())
    assert meta["config"] == b.cfg.to_dict()
    assert meta["cycles_per_step"] == step_cycles(b.cfg.sizes)[1] == \
        32 + 32 + 10 + 32 + 32 + 4 * 3 - 3 + 11
    for key in ("label_offset", "train_offset", "prediction_offset", "prediction_bits",
                "wb_layer_offset", "wb_layer_bits", "wb_row_offset", "wb_row_bits",
                "wb_weights_offset", "weight_bits"):
        assert isinstance(meta["layout"][key], int), key
    assert meta["layout"]["wb_layer_bits"] == 2
    report = json.loads((deep_build / "report.json").read_text())
    generic = report["yosys"]["generic"]
    assert generic["cells"].get("$mul", 0) == 0 and generic["multipliers"] == 0
    net = b.initial_net()
    for w, want in zip(net.weights, b.weights):
        np.testing.assert_array_equal(w, want)


def test_deep_net_trains_on_chip_bit_exact(deep_build):
    steps = 300
    result = check_training(deep_build, steps)
    assert json.loads((deep_build / "sim.json").read_text())["bit_exact"]
    assert result["bit_exact"] and result["steps_done"] == steps
    assert result["weight_mismatch_steps"] == 0 and result["prediction_mismatch_steps"] == 0
    assert result["latency_cycles"] == result["predicted_latency_cycles"]
    curve = result["curve"]
    assert curve[0]["step"] == 0 and curve[-1]["step"] == steps
    assert (deep_build / "train_curve.png").stat().st_size > 1000
    # The weights followed through the debug port score what the golden model's score.
    b = TrainingBuild.load(deep_build)
    data, net = b.dataset(), b.initial_net()
    for index in b.order(steps):
        net.step(data.train.x[index], data.train.y[index])
    assert any(not np.array_equal(w, w0) for w, w0 in zip(net.weights, b.weights))
    assert result["final_test_acc"] == net.accuracy(data.test.x, data.test.y)
    assert curve[0]["test_acc"] == b.initial_net().accuracy(data.test.x, data.test.y)


def test_a_golden_model_that_differs_is_caught(deep_build):
    # Same design, but the golden model starts from one different weight (of a pixel that is
    # 0 in every digit, so no update can hide the difference). The build folder is reused (no
    # second Verilator build) and its initial weights put back afterwards.
    init = deep_build / "init.npz"
    saved = init.read_bytes()
    b = TrainingBuild.load(deep_build)
    weights = [w.copy() for w in b.weights]
    w1 = weights[0]
    w1[0, 0] = w1[0, 0] + 1 if w1[0, 0] < b.cfg.w0 else w1[0, 0] - 1
    try:
        np.savez(init, **{f"w{i + 1}": w for i, w in enumerate(weights)})
        result = check_training(deep_build, 3)
    finally:
        init.write_bytes(saved)
    assert not result["bit_exact"] and result["weight_mismatch_steps"] == 3
    assert result["first_mismatch"].startswith("step 1: w1 differs at 1 weights, first [0, 0]")


def test_sim_of_a_training_build_needs_steps(build, capsys):
    assert main(["sim", str(build)]) == 2
    assert "give --train-steps N" in capsys.readouterr().err


def test_compile_train_rejects_a_batch_norm_spec(tmp_path, capsys):
    assert main(["compile", "--train", "examples/digits-bnn.yaml", "-o", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "examples/digits-bnn.yaml: not an on-chip training spec" in err
    assert "layers[0].bn: on-chip training runs without batch norm" in err


def test_compile_train_rejects_a_conv_spec(tmp_path, capsys):
    spec = tmp_path / "conv.yaml"
    spec.write_text("data: {set: digits}\n"
                    "layers:\n"
                    "  - {kind: conv, filters: 8, kernel: 3, act: sign, bn: false}\n"
                    "  - {units: 10, act: none, bn: false}\n")
    assert main(["compile", "--train", str(spec), "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "layers[0].kind: on-chip training takes fully-connected layers" in err


@pytest.mark.slow
def test_trains_digits_to_80_percent_on_chip(tmp_path):
    out = tmp_path / "build"
    assert main(["compile", "--train", SPEC, "-o", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    area = report["ecp5_units"]
    assert area["total"]["multipliers"] == 0 and area["total"]["DSP"] == 0
    assert area["roles"]["forward"]["LUT4"] > 0 and area["roles"]["backward"]["LUT4"] > 0
    result = check_training(out, 1000)
    assert result["bit_exact"] and result["steps_done"] == 1000
    assert result["final_test_acc"] >= 0.8


@pytest.mark.slow
@pytest.mark.parametrize("weights,batch", [("binary", 4), ("ternary", 1), ("ternary", 4)])
def test_deep_nets_train_on_chip_bit_exact(tmp_path, weights, batch):
    out = tmp_path / "build"
    spec = deep_spec(tmp_path, hidden=64, weights=weights, batch=batch)
    assert main(["compile", "--train", str(spec), "-o", str(out), "--no-area"]) == 0
    result = check_training(out, 400)
    assert result["bit_exact"] and result["steps_done"] == 400
    assert result["final_test_acc"] > result["curve"][0]["test_acc"] + 0.2
