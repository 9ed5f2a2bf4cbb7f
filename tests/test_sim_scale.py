"""``fewmul sim --images N`` at scale: the compiled harness checks the labels and scores of all
N images, the cocotb testbench the first few layer by layer with stalls.

The default run is in ``test_pipeline.py`` (the demo network, its whole test split); here the
slow run: 10,000 images of the digits demo network and of the 784-1024x3-10 network on
Fashion-MNIST.
"""

import json
from pathlib import Path

import pytest

from fewmul.cli import main
from fewmul.compiler.emit import compile_run, emit_build
from fewmul.compiler.planner import plan_folding
from fewmul.sim.check import check_build, check_images


def test_more_images_than_the_test_split_is_a_clear_error(tmp_path, capsys):
    spec = tmp_path / "tiny.yaml"
    spec.write_text("layers:\n  - {units: 8}\n  - {units: 10, act: none}\n")
    assert main(["train", str(spec), "--untrained", "-o", str(tmp_path / "run")]) == 0
    assert main(["compile", str(tmp_path / "run"), "-o", str(tmp_path / "build")]) == 0
    capsys.readouterr()
    assert main(["sim", str(tmp_path / "build"), "--images", "100000"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "holds 360 images, not 100000" in err


# --- slow: 10,000 images ---------------------------------------------------------------------

@pytest.mark.slow
def test_ten_thousand_images_of_the_digits_demo_network(tmp_path):
    """The demo network on 10,000 images (random pixels: the digits test split has 360)."""
    from fewmul.compiler.training import train_run
    train_run("examples/digits-bnn.yaml", tmp_path / "run", progress=False)
    compile_run(tmp_path / "run", tmp_path / "build")
    result = check_build(tmp_path / "build", 10_000, random_images=True, seed=1)
    assert result["error"] is None and result["mismatches"] == 0, result["first_mismatch"]
    assert result["harness"]["images"] == 10_000 and result["testbench"]["images"] == 100


@pytest.mark.slow
def test_ten_thousand_fashion_mnist_images_of_the_784_1024x3_10_network(tmp_path):
    """The paper's network, one epoch on 12,000 Fashion-MNIST images, on the whole test split
    (10,000 images) at 1024 cycles/inference."""
    import dataclasses

    from fewmul.ir.fold import fold
    from fewmul.nn.config import DataConfig, LayerConfig, OptimizerConfig, TrainConfig
    from fewmul.nn.data import FASHION_MNIST_DIR, load_dataset
    from fewmul.nn.train import train
    if not (Path(FASHION_MNIST_DIR) / "t10k-images-idx3-ubyte.gz").exists():
        pytest.skip(f"Fashion-MNIST is not installed in {FASHION_MNIST_DIR}")
    data = load_dataset(DataConfig(set="fashion-mnist", input_bits=8))
    data = dataclasses.replace(data, train=dataclasses.replace(
        data.train, x=data.train.x[:12_000], y=data.train.y[:12_000]))
    layers = [LayerConfig(1024), LayerConfig(1024), LayerConfig(1024),
              LayerConfig(10, act="none")]
    tcfg = TrainConfig(epochs=1, optimizer=OptimizerConfig(lr=0.01, lr_final=0.001))
    net = fold(train(data, layers, tcfg, progress=False).model, data.input_bits, tcfg)
    build = tmp_path / "build"
    emit_build(net, plan_folding(net, "auto", 1024), build)
    result = check_images(build, data.test.x[:10_000], data.test.y[:10_000], seed=2)
    assert result["error"] is None and result["mismatches"] == 0, result["first_mismatch"]
    assert result["harness"]["images"] == 10_000 and result["testbench"]["images"] == 100
    assert result["cycles_per_inference"] == result["predicted_cycles_per_inference"]
