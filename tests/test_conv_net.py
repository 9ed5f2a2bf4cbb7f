"""Convolutional networks end to end: trained, folded, lowered, bit-exact in Verilator.

The default run trains a small binarized CNN on the 8x8 digits (conv 3x3 same, max-pool,
conv 3x3 with 2-bit activations and ternary weights, max-pool, dense) and simulates it
layer by layer, pixel by pixel, with random stalls, then in the compiled harness. The slow run
does FINN's CNV topology on random CIFAR-like images (no CIFAR-10 here: untrained weights).
"""

from pathlib import Path

import numpy as np
import pytest

from fewmul.compiler.emit import emit_build, synthesize
from fewmul.compiler.planner import plan_folding
from fewmul.compiler.spec import load_spec
from fewmul.ir.fold import fold
from fewmul.nn.config import DataConfig, LayerConfig, OptimizerConfig, TrainConfig
from fewmul.nn.data import SHAPES, load_dataset
from fewmul.nn.model import Model
from fewmul.nn.train import train
from fewmul.sim.fast import build_fast, run_fast
from fewmul.sim.runner import simulate

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

DIGITS_CNN = [
    LayerConfig(8, kind="conv", kernel=3, padding="same"),
    LayerConfig(kind="maxpool", size=2),
    LayerConfig(12, kind="conv", kernel=3, weights="ternary", act="quant", act_bits=2),
    LayerConfig(kind="maxpool", size=2),
    LayerConfig(10, act="none"),
]


@pytest.fixture(scope="module")
def digits_cnn(tmp_path_factory):
    data = load_dataset(DataConfig(set="digits", input_bits=4))
    tcfg = TrainConfig(epochs=3, optimizer=OptimizerConfig(lr=0.01, lr_final=0.003))
    result = train(data, DIGITS_CNN, tcfg, progress=False)
    net = fold(result.model, data.input_bits, tcfg)
    plans = plan_folding(net, "auto", 128, pipeline=1)
    build = tmp_path_factory.mktemp("digits-cnn") / "build"
    _, report = emit_build(net, plans, build)
    return data, net, report, build


def test_digits_cnn_plan_meets_its_target(digits_cnn):
    _, net, report, _ = digits_cnn
    assert [op.kind for op in net.layers[0].ops] == ["window", "matvec", "threshold", "maxpool"]
    assert report["cycles_per_inference"] <= 128
    # the first window walks a 10x10 padded grid: 100 cycles per image at best
    with pytest.raises(ValueError, match=r"below what layers\[0\] can reach: 100 cycles"):
        plan_folding(net, "auto", 96)
    assert [l["out_shape"] for l in report["layers"]] == [[8, 4, 4], [12, 1, 1], [10, 1, 1]]
    assert report["layers"][0]["kernel"] == 3 and report["layers"][0]["padding"] == 1


def test_digits_cnn_bit_exact_in_verilator_with_stalls(digits_cnn):
    data, net, report, build = digits_cnn
    x = data.test.x[:60]
    result = simulate(build, x, net.forward(x), stall=0.3, seed=4)
    assert result["error"] is None, result["error"]
    assert result["mismatches"] == 0, result["first_mismatch"]
    assert result["images"] == 60
    assert result["cycles_per_inference"] == report["cycles_per_inference"]
    assert result["latency_cycles"] <= report["latency_cycles"]
    assert result["stalled_cycles"] > 60 * report["cycles_per_inference"]


def test_digits_cnn_mismatch_is_caught(digits_cnn):
    """The comparison can fail: one changed value of a conv layer's output is a mismatch."""
    data, net, report, build = digits_cnn
    x = data.test.x[:4]
    expected = [out.copy() for out in net.forward(x)]
    expected[0][2, 37] ^= 1
    result = simulate(build, x, expected, stall=0.0)
    assert result["mismatches"] == 1
    assert "image 2: layer 0" in result["first_mismatch"]


def test_digits_cnn_in_the_compiled_harness(digits_cnn):
    data, net, report, build = digits_cnn
    build_fast(build)
    x = data.test.x
    expected = net.forward(x)[-1]
    result = run_fast(build, x, expected)
    assert result["images"] == len(x) and result["mismatches"] == 0
    assert result["cycles_per_inference"] == report["cycles_per_inference"]
    assert (result["labels"] == net.predict(x)).all()


def test_digits_cnn_has_no_multipliers(digits_cnn):
    _, _, report, build = digits_cnn
    stat = synthesize(build, report, ("generic",))["generic"]
    assert stat["num_cells"] > 500
    assert stat["cells"].get("$mul", 0) == 0 and stat["multipliers"] == 0


@pytest.mark.slow
def test_cnv_bit_exact_in_verilator_on_random_images(tmp_path):
    """FINN's CNV (examples/cifar10-cnv.yaml) with its untrained weights: 20 random 32x32x3
    images through all nine layers, every layer's output compared."""
    spec = load_spec(EXAMPLES / "cifar10-cnv.yaml")
    model = Model.init(SHAPES[spec.data.set], spec.layers, spec.train.seed)
    net = fold(model, spec.data.input_bits, spec.train)
    plans = plan_folding(net, "auto", 100_000)
    _, report = emit_build(net, plans, tmp_path / "build")
    x = np.random.default_rng(0).integers(0, 256, (20, net.in_type.size))
    result = simulate(tmp_path / "build", x, net.forward(x), stall=0.2, stall_images=3)
    assert result["error"] is None, result["error"]
    assert result["mismatches"] == 0, result["first_mismatch"]
    assert result["cycles_per_inference"] == report["cycles_per_inference"]


def test_untrained_net_of_absent_data_compiles_and_simulates(tmp_path, capsys):
    """No SVHN here: --untrained writes the run without reading data, --random-images
    simulates without it."""
    from fewmul.cli import main
    spec = tmp_path / "svhn.yaml"
    spec.write_text("data: {set: svhn, input_bits: 2, dir: " + str(tmp_path / "absent") + "}\n"
                    "layers:\n"
                    "  - {kind: conv, filters: 4, kernel: 3, stride: 3}\n"
                    "  - {kind: maxpool, size: 2}\n"
                    "  - {units: 10, act: none}\n")
    run, build = tmp_path / "run", tmp_path / "build"
    assert main(["train", str(spec), "--untrained", "-o", str(run)]) == 0
    assert main(["compile", str(run), "-o", str(build), "--target-cycles", "2048"]) == 0
    assert "compiled 3x32x32 -> conv3x3:4x5x5" in capsys.readouterr().out
    assert main(["sim", str(build), "--images", "3", "--stall", "0", "--random-images"]) == 0
    assert "sim OK: 3 images, 0 mismatches" in capsys.readouterr().out
    # without --random-images the missing data set is a clear error
    assert main(["sim", str(build), "--images", "3"]) == 2
    assert "svhn" in capsys.readouterr().err
