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


def conv(units, weights="ternary", **kw):
    return LayerConfig(units, weights, "relu", kind="conv", **kw)


def test_a_convolution_counts_as_a_dense_layer_at_each_position():
    """3x3 convolution of a 6x6x2 input, 4 filters: 16 positions, each a 18-input dense layer."""
    N, n, m, P = 5, 18, 4, 16
    for cfg in (conv(m, "float", bn=False), conv(m, "ternary"), conv(m, "binary", bn=True)):
        for qbp, bn_kind in ((False, "standard"), (True, "shift")):
            ops = count_network((2, 6, 6), [cfg], N, qbp=qbp, bn_kind=bn_kind)[0]
            dense = count_layer(n, cfg, N * P, qbp=qbp, bn=cfg.bn, bn_kind=bn_kind)
            assert (ops.kind, ops.inputs, ops.units, ops.positions) == ("conv", n, m, P)
            assert ops.train == dense.train       # batch norm per channel: per-batch counts once
            one = count_layer(n, cfg, 1, qbp=qbp, bn=cfg.bn, bn_kind=bn_kind).infer
            assert ops.infer.mul == P * one.mul and ops.infer.add == P * one.add
    full = count_network((2, 6, 6), [conv(m, "float", bn=False)], N, qbp=False)[0]
    assert full.train.mul == 3 * N * P * (n + 1) * m
    # stride and padding change the positions only
    assert count_network((2, 6, 6), [conv(m, padding="same")], N, qbp=True)[0].positions == 36
    assert count_network((2, 6, 6), [conv(m, stride=2)], N, qbp=True)[0].positions == 4


def test_maxpool_compares_and_the_shapes_flow_to_the_dense_layer():
    net = [conv(16, padding="same"), LayerConfig(kind="maxpool", size=2), LayerConfig(10, "ternary", "none")]
    ops = count_network((1, 8, 8), net, 50, qbp=True)
    pool = ops[1]
    assert (pool.kind, pool.inputs, pool.units, pool.positions) == ("maxpool", 4, 16, 16)
    assert pool.infer.mul == pool.train.mul == 0 and pool.infer.shift == 0
    assert pool.infer.add == 3 * 16 * 16 and pool.train.add == 50 * pool.infer.add
    assert ops[2].inputs == 4 * 4 * 16
    # the full-precision baseline keeps the layer kinds
    full = count_network((1, 8, 8), net, 50, qbp=False, weights="float")
    assert [o.kind for o in full] == ["conv", "maxpool", "dense"]
    assert full[0].train.mul == 3 * 50 * 64 * (9 + 1) * 16 + (9 * 50 * 64 + 9) * 16


def test_count_command_prints_a_conv_net(capsys, monkeypatch):
    from types import SimpleNamespace

    import fewmul.compiler.spec as spec_module
    from fewmul.nn.config import OptimizerConfig, TrainConfig
    net = [conv(32, "binary", padding="same"), LayerConfig(kind="maxpool", size=2),
           conv(64, "binary", stride=2), LayerConfig(10, "binary", "none")]
    spec = SimpleNamespace(name="cnv", layers=net, data=SimpleNamespace(set="fashion-mnist"),
                           train=TrainConfig(qbp=True, optimizer=OptimizerConfig(batch=100)))
    monkeypatch.setattr(spec_module, "load_spec", lambda path: spec)
    assert main(["count", "cnv.yaml"]) == 0
    out = capsys.readouterr().out
    assert "cnv: 28x28x1-conv3x3:32/same-pool2-conv3x3:64/s2-10, batch 100" in out
    assert "float" in out and "binary+QBP" in out and "pool2" in out
    full = total(count_network((1, 28, 28), net, 100, qbp=False, weights="float"), "train")
    assert f"float {full.mul:.4e}, binary+QBP" in out
