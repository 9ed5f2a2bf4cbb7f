"""On-chip training in the compiled Verilator harness (fewmul.sim.train_fast).

The digits trainer runs a few hundred steps bit-exact with the golden model;
a golden model that goes wrong at a given step, and initial weights that differ
from the design's, are caught at that step with the layer, row and columns; the
digest and detail modes agree; bad inputs give clear errors. The harness is
built once for the module (about a minute of Verilator and C++).
"""

from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np
import pytest

from fewmul.cli import main
from fewmul.compiler.emit_train import compile_training
from fewmul.sim.train_fast import (QUICK_OPT, TrainHarness, build_train_fast, plan_requests,
                                   simulate_training_fast)
from fewmul.sim.train_runner import TrainingBuild

SPEC = "examples/digits-onchip.yaml"


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    out = tmp_path_factory.mktemp("onchip-fast") / "build"
    compile_training(SPEC, out, synth=(), units=False)
    # The quick build (short runs choose it): shared by every test, a copied folder too.
    build_train_fast(out, opt=QUICK_OPT)
    return out


def _harness(build) -> tuple[TrainingBuild, TrainHarness]:
    b = TrainingBuild.load(build)
    return b, TrainHarness.of(b, (build / "top.v").read_text())


def _copy(build, tmp_path):
    other = tmp_path / "build"
    shutil.copytree(build, other)
    return other


def test_trains_a_few_hundred_steps_bit_exact(build):
    b = TrainingBuild.load(build)
    r = simulate_training_fast(build, 300, eval_every=100)
    assert r["harness_opt"] == QUICK_OPT and r["harness_build_s"] < 5       # no second build
    assert r["mode"] == "digest" and r["error"] is None and r["first_mismatch"] is None
    assert r["steps_done"] == 300
    assert r["weight_mismatch_steps"] == 0 and r["prediction_mismatch_steps"] == 0
    assert r["latency_cycles"] == b.latency
    assert [p["step"] for p in r["curve"]] == [0, 100, 200, 300]
    assert r["curve"][0]["test_acc"] < 0.3                                  # chance is 0.1
    assert max(p["test_acc"] for p in r["curve"]) > 0.45
    assert r["final_test_acc"] == r["curve"][-1]["test_acc"]
    assert 0.2 < r["online_acc"] < 1
    assert r["cycles"] >= 300 * b.latency
    assert r["simulator_steps_per_s"] > 0 and r["replay_steps_per_s"] > 0
    expected_requests = 8 if "train_offset" in b.layout else 0
    assert r["inference_requests"] == expected_requests and r["inference_mismatches"] == 0


def test_the_curve_is_the_golden_models_accuracy(build):
    # Bit-exact weights at every step: the test accuracy of the harness's snapshots is the
    # golden model's at the same steps.
    b = TrainingBuild.load(build)
    data = b.dataset()
    net = b.initial_net()
    r = simulate_training_fast(build, 60, eval_every=25)
    expected = {0: net.accuracy(data.test.x, data.test.y)}
    for step, index in enumerate(b.order(60), 1):
        net.step(data.train.x[index], int(data.train.y[index]))
        if step % 25 == 0 or step == 60:
            expected[step] = net.accuracy(data.test.x, data.test.y)
    assert {p["step"]: p["test_acc"] for p in r["curve"]} == expected


def test_digest_and_detail_modes_agree(build):
    digest = simulate_training_fast(build, 150, eval_every=50, mode="digest")
    detail = simulate_training_fast(build, 150, eval_every=50, mode="detail")
    assert detail["mode"] == "detail"
    for key in ("steps_done", "weight_mismatch_steps", "prediction_mismatch_steps",
                "first_mismatch", "curve", "online_acc", "latency_cycles", "cycles",
                "inference_requests"):
        assert digest[key] == detail[key], key


class _WrongAfter:
    """The golden model, with weight [row, column] of ``layer`` moved by one after step ``at``."""

    def __init__(self, net, at: int, layer: int, row: int, column: int):
        self.net, self.at, self.where = net, at, (layer, row, column)
        self.count = 0

    def __getattr__(self, name):
        return getattr(self.net, name)

    def step(self, q, label):
        trace = self.net.step(q, label)
        self.count += 1
        if self.count == self.at:
            layer, row, column = self.where
            w = self.net.weights[layer]
            w[row, column] += 1 if w[row, column] < self.net.cfg.w0 else -1
        return trace


@pytest.mark.parametrize("mode", ["digest", "detail"])
def test_a_golden_model_gone_wrong_is_caught_at_its_step(build, mode):
    b = TrainingBuild.load(build)
    r = simulate_training_fast(build, 60, eval_every=30, mode=mode,
                               golden=lambda: _WrongAfter(b.initial_net(), 37, 1, 3, 5))
    assert r["weight_mismatch_steps"] >= 1
    assert r["mode"] == "detail"        # a digest run locates its mismatch in detail
    assert r["first_mismatch"].startswith("step 37: w2 differs at 1 weights, first [3, 5]: ")
    m = r["mismatch"]
    assert (m["step"], m["train"], m["layer"], m["row"], m["columns"]) == (37, True, 1, 3, [5])
    assert abs(m["got"][0] - m["expected"][0]) == 1
    if mode == "digest":
        assert r["digest_first_mismatch"].startswith("step 37: ")
        assert "digest" in r["digest_first_mismatch"]


def test_initial_weights_unlike_the_designs_fail_the_cli(build, tmp_path):
    # Same design, but the golden model starts from one different weight (of a pixel that is
    # 0 in every digit, so no update can hide the difference).
    other = _copy(build, tmp_path)
    b = TrainingBuild.load(other)
    weights = [w.copy() for w in b.weights]
    w1 = weights[0]
    w1[0, 0] = w1[0, 0] + 1 if w1[0, 0] < b.cfg.w0 else w1[0, 0] - 1
    np.savez(other / "init.npz", **{f"w{k + 1}": w for k, w in enumerate(weights)})
    assert main(["sim", str(other), "--train-steps", "3"]) == 1
    result = json.loads((other / "sim.json").read_text())
    assert not result["bit_exact"] and result["simulator"] == "fast harness"
    assert result["first_mismatch"].startswith("step 1: w1 differs at 1 weights, first [0, 0]")
    assert result["mismatch"]["layer"] == 0 and result["mismatch"]["columns"] == [0]


def test_cli_trains_in_the_fast_harness_by_default(build, capsys):
    assert main(["sim", str(build), "--train-steps", "120"]) == 0
    out = capsys.readouterr().out
    assert "train sim OK: 120/120 steps" in out and "fast harness (digest mode, C++ -O0)" in out
    result = json.loads((build / "sim.json").read_text())
    assert result["bit_exact"] and result["simulator"] == "fast harness"
    assert result["latency_cycles"] == result["predicted_latency_cycles"]
    assert result["curve"][-1]["step"] == 120 and result["float_twin"][-1]["step"] == 120
    assert result["simulator_steps_per_s"] > 0 and result["steps_per_s"] > 0
    assert (build / "train_curve.png").stat().st_size > 1000


def test_requests_carry_pixels_label_train_bit_and_snapshots(build):
    b, spec = _harness(build)
    # As the design with a train bit will have it: just above the label.
    offset = b.layout["label_offset"] + 4
    b = dataclasses.replace(b, layout={**b.layout, "train_offset": offset})
    spec = dataclasses.replace(spec, in_bits=max(spec.in_bits, offset + 1), layout=b.layout)
    req = plan_requests(b, 40, 15, spec)
    data = b.dataset()
    assert req.train.sum() == 40 and (~req.train).sum() == 8
    assert not req.train[0] and req.step[0] == 0        # an inference request first
    assert list(req.step[req.train]) == list(range(1, 41))
    assert list(req.index[req.train]) == list(b.order(40))
    words = [int.from_bytes(row[1:].astype("<u4").tobytes(), "little") for row in req.words]
    k = b.cfg.input_bits
    for word, train, index in zip(words, req.train, req.index):
        x, y = (data.train.x, data.train.y) if train else (data.test.x, data.test.y)
        pixels = [(word >> (j * k)) & ((1 << k) - 1) for j in range(x.shape[1])]
        assert pixels == list(x[index])
        assert (word >> b.layout["label_offset"]) & 15 == y[index]
        assert (word >> offset) & 1 == train
    snapshots = req.step[(req.words[:, 0] & 1) == 1]
    assert list(snapshots) == [15, 30, 40]
    assert not (req.words[~req.train, 0] & 1).any()


def test_bad_inputs_give_clear_errors(build, tmp_path, capsys):
    for steps in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="Step count must be a positive integer"):
            simulate_training_fast(build, steps)
    with pytest.raises(ValueError, match="Mode must be one of digest, detail"):
        simulate_training_fast(build, 5, mode="fast")
    with pytest.raises(FileNotFoundError, match=r"train\.json is missing: run 'fewmul compile "
                                                r"--train' first"):
        simulate_training_fast(tmp_path, 5)
    other = _copy(build, tmp_path)
    (other / "top.v").unlink()
    with pytest.raises(FileNotFoundError, match=r"top\.v is missing"):
        simulate_training_fast(other, 5)
    if "train_offset" not in TrainingBuild.load(build).layout:
        with pytest.raises(ValueError, match="inference requests need a design with a train"):
            simulate_training_fast(build, 5, inference=3)
    with pytest.raises(SystemExit):
        main(["sim", str(build), "--train-steps", "0"])
    assert "expected a positive integer, got '0'" in capsys.readouterr().err
    assert main(["sim", str(build), "--train-steps", "5", "--testbench", "--detail"]) == 2
    assert "--detail is a mode of the compiled harness" in capsys.readouterr().err


@pytest.mark.slow
def test_two_epochs_bit_exact_in_the_fast_harness(build):
    steps = 2 * len(TrainingBuild.load(build).dataset().train.y)
    r = simulate_training_fast(build, steps)
    assert r["steps_done"] == steps and r["error"] is None
    assert r["weight_mismatch_steps"] == 0 and r["prediction_mismatch_steps"] == 0
    assert r["final_test_acc"] >= 0.8


DEEP_SPEC = """\
name: digits-onchip-deep-{weights}
data: {{set: digits, input_bits: 4}}
layers:
  - {{units: 32, weights: {weights}, act: sign, bn: false}}
  - {{units: 32, weights: {weights}, act: sign, bn: false}}
  - {{units: 10, weights: {weights}, act: none, bn: false}}
train:
  seed: 0
  loss: squared_hinge
  onchip: {{lr_shift: [6, 3, 2], gate_shift: [6, 4], backprop_shift: [0, 0], batch: {batch}}}
"""


@pytest.mark.slow
@pytest.mark.parametrize("weights, batch", [("binary", 1), ("ternary", 4)])
def test_two_hidden_layers_bit_exact_in_the_fast_harness(tmp_path, weights, batch):
    spec = tmp_path / "deep.yaml"
    spec.write_text(DEEP_SPEC.format(weights=weights, batch=batch))
    out = tmp_path / "build"
    compile_training(spec, out, synth=(), units=False)
    b = TrainingBuild.load(out)
    assert b.cfg.sizes == (64, 32, 32, 10) and b.cfg.batch == batch
    r = simulate_training_fast(out, 600, eval_every=200)
    assert r["steps_done"] == 600 and r["error"] is None, r["first_mismatch"]
    assert r["weight_mismatch_steps"] == 0 and r["prediction_mismatch_steps"] == 0
    assert r["inference_requests"] == 8 and r["inference_mismatches"] == 0
    assert r["latency_cycles"] == b.latency
    assert max(p["test_acc"] for p in r["curve"]) > 0.4
