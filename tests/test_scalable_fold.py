"""Folding ternary weights and k-bit activations into the integer golden model."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from fewmul.nn.config import DataConfig, LayerConfig, OptimizerConfig, TrainConfig
from fewmul.nn.data import load_dataset
from fewmul.nn.integer import IntegerLayer, IntegerNet, fold
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
    layer = IntegerLayer(w, "unsigned", bits, thresholds=np.zeros(m, np.int64),
                         weight_kind="ternary")
    np.testing.assert_array_equal(layer.sums(q), q @ w.T.astype(np.int64))
    a = rng.integers(0, 2, (5, n))
    layer = IntegerLayer(w, "bipolar", 1, thresholds=np.zeros(m, np.int64), weight_kind="ternary")
    np.testing.assert_array_equal(layer.sums(a), (2 * a - 1) @ w.T.astype(np.int64))


def test_multi_thresholds_count_levels():
    w = np.array([[1, 1, 0]], np.uint8)
    layer = IntegerLayer(w, "bipolar", 1, thresholds=np.array([[-1, 1, 3]]))
    a = np.array([[0, 0, 1], [1, 0, 0], [1, 1, 0]])            # sums -3, 1, 3
    assert layer.forward(a)[:, 0].tolist() == [0, 2, 3]
    assert layer.output_bits == 2


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
    assert first.weight_kind == weights
    assert first.output_bits == bits
    if bits > 1:
        assert first.thresholds.shape == (64, (1 << bits) - 1)
        assert (net.layers[1].input_kind, net.layers[1].input_bits) == ("unsigned", bits)
    if weights == "ternary":
        assert set(np.unique(first.weights)) <= {-1, 0, 1} and (first.weights == 0).any()
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
    net.save(tmp_path / "net.npz")
    again = IntegerNet.load(tmp_path / "net.npz")
    for a, b in zip(net.layers, again.layers):
        assert a.weight_kind == b.weight_kind
        np.testing.assert_array_equal(a.weights, b.weights)
    for a, b in zip(net.forward(data.test.x[:50]), again.forward(data.test.x[:50])):
        np.testing.assert_array_equal(a, b)


def test_files_without_weight_kind_load_as_binary(tmp_path):
    w = np.array([[1, 0, 1]], np.uint8)
    np.savez(tmp_path / "old.npz", **{"layer0.weights": w, "layer0.input": np.array([1, 1]),
                                      "layer0.shifts": np.array([4]),
                                      "layer0.offsets": np.array([0])})
    layer = IntegerNet.load(tmp_path / "old.npz").layers[0]
    assert layer.weight_kind == "binary"
    assert layer.forward(np.array([[1, 1, 1]])).tolist() == [[1 << 4]]
