"""Folding ternary weights and k-bit activations into the integer golden model."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from fewmul.arith import DotProduct
from fewmul.ir import Graph, dense_layer, dense_net
from fewmul.ir.fold import fold
from fewmul.nn.artifacts import save_npz
from fewmul.nn.config import DataConfig, LayerConfig, OptimizerConfig, TrainConfig
from fewmul.nn.data import load_dataset
from fewmul.nn.train import train

VARIANTS = {  # name: (weights, hidden act, act_bits)
    "ternary_sign": ("ternary", "sign", 1),
    "binary_2bit": ("binary", "quant", 2),
    "ternary_2bit": ("ternary", "quant", 2),
}


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 70), st.integers(1, 9), st.integers(1, 8), st.integers(0, 2**32 - 1))
def test_ternary_popcount_sums_equal_dot_products(n, m, bits, seed):
    rng = np.random.default_rng(seed)
    w = rng.integers(-1, 2, (m, n)).astype(np.int8)
    q = rng.integers(0, 1 << bits, (5, n))
    dot = DotProduct("unsigned", bits, "ternary")
    np.testing.assert_array_equal(dot.sums(q, w), q @ w.T.astype(np.int64))
    a = rng.integers(0, 2, (5, n))
    dot = DotProduct("bipolar", 1, "ternary")
    np.testing.assert_array_equal(dot.sums(a, w), (2 * a - 1) @ w.T.astype(np.int64))


def test_multi_thresholds_count_levels():
    w = np.array([[1, 1, 0]], np.uint8)
    layer = dense_net([dense_layer(w, "bipolar", 1, thresholds=np.array([[-1, 1, 3]])),
                       dense_layer([[1]], "unsigned", 2, shifts=[0], offsets=[0])]).layers[0]
    a = np.array([[0, 0, 1], [1, 0, 0], [1, 1, 0]])            # sums -3, 1, 3
    assert layer.forward(a)[:, 0].tolist() == [0, 2, 3]
    assert layer.out_type.bits == 2


@pytest.fixture(scope="module", params=list(VARIANTS))
def trained(request):
    weights, act, bits = VARIANTS[request.param]
    data = load_dataset(DataConfig())
    layers = [LayerConfig(64, weights=weights, act=act, act_bits=bits),
              LayerConfig(32, weights=weights, act=act, act_bits=bits),
              LayerConfig(10, weights=weights, act="none")]
    tcfg = TrainConfig(epochs=6, optimizer=OptimizerConfig(lr=0.01, lr_final=0.001))
    return request.param, data, tcfg, train(data, layers, tcfg, progress=False)


def test_folded_hidden_layers_reproduce_float_activations(trained):
    name, data, tcfg, result = trained
    weights, act, bits = VARIANTS[name]
    net = fold(result.model, data.input_bits, tcfg)
    first = net.layers[0]
    assert first.head.weight_kind == weights
    assert first.out_type.bits == bits
    if bits > 1:
        assert first.last.thresholds.shape == (64, (1 << bits) - 1)
        assert (net.layers[1].in_type.kind, net.layers[1].in_type.bits) == ("unsigned", bits)
    if weights == "ternary":
        w = first.head.weights
        assert set(np.unique(w)) <= {-1, 0, 1} and (w == 0).any()
    model_layer = result.model.layers[0]
    y = model_layer.forward(data.scale(data.test.x), model_layer.weights(True), False, tcfg)
    levels = np.round((y > 0) if act == "sign" else y * ((1 << bits) - 1)).astype(int)
    assert (levels == first.forward(data.test.x)).mean() > 0.995


def test_integer_model_agrees_with_float_model(trained, tmp_path):
    name, data, tcfg, result = trained
    net = fold(result.model, data.input_bits, tcfg)
    p_int = net.predict(data.test.x)
    p_float = result.model.predict(data.scale(data.test.x), tcfg)
    assert (p_int == p_float).mean() >= 0.97
    assert (p_int == data.test.y).mean() > 0.8
    save_npz(tmp_path / "net.npz", net.arrays())
    again = Graph.load(tmp_path / "net.npz")
    for a, b in zip(net.layers, again.layers):
        assert a.head.weight_kind == b.head.weight_kind
        np.testing.assert_array_equal(a.head.weights, b.head.weights)
    for a, b in zip(net.forward(data.test.x[:50]), again.forward(data.test.x[:50])):
        np.testing.assert_array_equal(a, b)


def test_files_without_weight_kind_load_as_binary(tmp_path):
    w = np.array([[1, 0, 1]], np.uint8)
    np.savez(tmp_path / "old.npz", **{"layer0.weights": w, "layer0.input": np.array([1, 1]),
                                      "layer0.shifts": np.array([4]),
                                      "layer0.offsets": np.array([0])})
    layer = Graph.load(tmp_path / "old.npz").layers[0]
    assert layer.head.weight_kind == "binary"
    assert layer.forward(np.array([[1, 1, 1]])).tolist() == [[1 << 4]]
