"""On-chip training under cocotb + Verilator: the emitted trainer against the golden model.

The default test trains the digits net for 200 steps in Verilator (weights
compared with the golden model after every step); the slow test trains for
1000 steps, checks the accuracy goal and the per-unit ECP5 area report.
"""

import json
import shutil

import numpy as np
import pytest

from fewmul.cli import main
from fewmul.sim.train_runner import TrainingBuild

SPEC = "examples/digits-onchip.yaml"


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    out = tmp_path_factory.mktemp("onchip") / "build"
    assert main(["compile", "--train", SPEC, "-o", str(out), "--no-area"]) == 0
    return out


def test_training_design_has_no_multiplier(build):
    report = json.loads((build / "report.json").read_text())
    generic = report["yosys"]["generic"]
    assert generic["num_cells"] > 1000
    assert generic["cells"].get("$mul", 0) == 0 and generic["multipliers"] == 0
    assert report["cycles_per_step"] == 2 * 64 + 10 + 3


def test_trains_on_chip_bit_exact_with_the_golden_model(build):
    assert main(["sim", str(build), "--train-steps", "200"]) == 0
    result = json.loads((build / "sim.json").read_text())
    assert result["bit_exact"] and result["steps_done"] == 200
    assert result["weight_mismatch_steps"] == 0 and result["prediction_mismatch_steps"] == 0
    assert result["latency_cycles"] == result["predicted_latency_cycles"]
    curve = result["curve"]
    assert curve[0]["step"] == 0 and curve[-1]["step"] == 200
    assert curve[0]["test_acc"] < 0.3 and result["final_test_acc"] > 0.4   # chance is 0.1
    assert (build / "train_curve.png").stat().st_size > 1000
    twin = result["float_twin"][-1]
    assert twin["step"] == 200 and twin["sign_agreement"] > 0.8


def test_a_golden_model_that_differs_is_caught(build, tmp_path):
    # Same design, but the golden model starts from one different weight (of a pixel that is
    # 0 in every digit, so no update can hide the difference).
    other = tmp_path / "build"
    shutil.copytree(build, other)
    b = TrainingBuild.load(other)
    w1 = b.w1.copy()
    w1[0, 0] = w1[0, 0] + 1 if w1[0, 0] < b.cfg.w0 else w1[0, 0] - 1
    np.savez(other / "init.npz", w1=w1, w2=b.w2)
    assert main(["sim", str(other), "--train-steps", "3"]) == 1
    result = json.loads((other / "sim.json").read_text())
    assert not result["bit_exact"]
    assert result["first_mismatch"].startswith("step 1: w1 differs at 1 weights, first [0, 0]")


def test_sim_of_a_training_build_needs_steps(build, capsys):
    assert main(["sim", str(build)]) == 2
    assert "give --train-steps N" in capsys.readouterr().err


def test_compile_train_rejects_a_batch_norm_spec(tmp_path, capsys):
    assert main(["compile", "--train", "examples/digits-bnn.yaml", "-o", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "examples/digits-bnn.yaml: not an on-chip training spec" in err
    assert "got 3" in err


@pytest.mark.slow
def test_trains_digits_to_80_percent_on_chip(tmp_path):
    out = tmp_path / "build"
    assert main(["compile", "--train", SPEC, "-o", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    area = report["ecp5_units"]
    assert area["total"]["multipliers"] == 0 and area["total"]["DSP"] == 0
    assert area["roles"]["forward"]["LUT4"] > 0 and area["roles"]["backward"]["LUT4"] > 0
    assert main(["sim", str(out), "--train-steps", "1000"]) == 0
    result = json.loads((out / "sim.json").read_text())
    assert result["bit_exact"] and result["steps_done"] == 1000
    assert result["final_test_acc"] >= 0.8


def test_compile_train_rejects_a_conv_spec(tmp_path, capsys):
    spec = tmp_path / "conv.yaml"
    spec.write_text("data: {set: digits}\n"
                    "layers:\n"
                    "  - {kind: conv, filters: 8, kernel: 3, act: sign, bn: false}\n"
                    "  - {units: 10, act: none, bn: false}\n")
    assert main(["compile", "--train", str(spec), "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "layers[0].kind: on-chip training takes fully-connected layers" in err
