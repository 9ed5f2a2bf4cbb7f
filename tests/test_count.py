"""Multiplication counts: the slides' four numbers for the paper's MNIST net."""

from pathlib import Path

import pytest

from fewmul.cli import main
from fewmul.nn.config import LayerConfig
from fewmul.nn.count import count_layer, count_network, total

EXAMPLE = Path(__file__).parent.parent / "examples" / "mnist-tc-qbp.yaml"
MNIST_NET = [LayerConfig(1024, "ternary", "relu"), LayerConfig(1024, "ternary", "relu"),
             LayerConfig(1024, "ternary", "relu"), LayerConfig(10, "ternary", "none")]


@pytest.mark.parametrize("bn, float_muls, tc_qbp_muls", [
    (False, "1.7480e+09", "1.8492e+06"),
    (True, "1.7535e+09", "7.4245e+06"),
])
def test_slides_numbers(bn, float_muls, tc_qbp_muls):
    full = total(count_network(784, MNIST_NET, 200, qbp=False, bn=bn, weights="float"), "train")
    tc = total(count_network(784, MNIST_NET, 200, qbp=True, bn=bn), "train")
    assert f"{full.mul:.4e}" == float_muls
    assert f"{tc.mul:.4e}" == tc_qbp_muls
    # QBP moves the gradient's products to shifts, ternary weights the rest to additions
    weights = 784 * 1024 + 2 * 1024 * 1024 + 1024 * 10
    assert tc.shift == 200 * weights
    assert full.shift == 0


def test_each_quantization_removes_its_pass():
    cfg = LayerConfig(8, "float", "relu", bn=False)
    n, m, N = 5, 8, 3
    full = count_layer(n, cfg, N, qbp=False, bn=False).train
    assert full.mul == 3 * N * (n + 1) * m
    qbp = count_layer(n, cfg, N, qbp=True, bn=False).train
    assert (qbp.mul, qbp.shift) == (2 * N * n * m + 3 * N * m, N * n * m)
    binary = count_layer(n, LayerConfig(8, "binary", "relu", bn=False), N, qbp=False, bn=False).train
    assert binary.mul == N * n * m + 3 * N * m
    shift_bn = count_layer(n, cfg, N, qbp=False, bn=True, bn_kind="shift").train
    std_bn = count_layer(n, cfg, N, qbp=False, bn=True).train
    assert std_bn.mul - full.mul == 9 * N * m + 9 * m
    assert shift_bn.mul - full.mul == 9 * m and shift_bn.shift == 9 * N * m
    inference = count_layer(n, LayerConfig(8, "ternary", "relu", bn=False), N, qbp=True, bn=False).infer
    assert inference.mul == m


def test_count_command_prints_them(capsys):
    assert main(["count", str(EXAMPLE), "--bn", "off"]) == 0
    out = capsys.readouterr().out
    assert "784-1024-1024-1024-10, batch 200" in out
    assert "float 1.7480e+09, ternary+QBP 1.8492e+06, ratio 0.001058" in out
    assert main(["count", str(EXAMPLE)]) == 0
    assert "float 1.7535e+09, ternary+QBP 7.4245e+06, ratio 0.004234" in capsys.readouterr().out
