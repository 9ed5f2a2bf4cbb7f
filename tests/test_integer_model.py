"""The integer golden model: popcount identities and agreement with the float model."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from fewmul.nn.config import DataConfig, LayerConfig, OptimizerConfig, TrainConfig
from fewmul.nn.data import load_dataset, quantize_pixels
from fewmul.arith import DotProduct
from fewmul.ir.fold import fold
from fewmul.nn.train import train


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 70), st.integers(1, 9), st.integers(1, 8), st.integers(0, 2**32 - 1))
def test_popcount_sums_equal_signed_dot_products(n, m, bits, seed):
    rng = np.random.default_rng(seed)
    w = rng.integers(0, 2, (m, n)).astype(np.uint8)
    pm = 2 * w.astype(np.int64) - 1
    q = rng.integers(0, 1 << bits, (5, n))
    s = DotProduct("unsigned", bits, "binary").sums(q, w)
    np.testing.assert_array_equal(s, q @ pm.T)
    a = rng.integers(0, 2, (5, n))
    s = DotProduct("bipolar", 1, "binary").sums(a, w)
    np.testing.assert_array_equal(s, (2 * a - 1) @ pm.T)


def test_pixel_quantization_rounds_to_nearest():
    v = np.arange(17)
    q = quantize_pixels(v, 16, 4)
    np.testing.assert_array_equal(q, np.round(v * 15 / 16 + 1e-9).astype(int))
    assert quantize_pixels(np.array([0, 255]), 255, 8).tolist() == [0, 255]
    with pytest.raises(ValueError, match="1..8"):
        quantize_pixels(v, 16, 9)


@pytest.fixture(scope="module")
def small_run():
    data = load_dataset(DataConfig())
    layers = [LayerConfig(64), LayerConfig(32), LayerConfig(10, act="none")]
    tcfg = TrainConfig(epochs=8, optimizer=OptimizerConfig(lr=0.01, lr_final=0.001))
    return data, tcfg, train(data, layers, tcfg, progress=False)


def test_folded_thresholds_reproduce_float_hidden_layers(small_run):
    data, tcfg, result = small_run
    net = fold(result.model, data.input_bits, tcfg)
    x = data.scale(data.test.x)
    h_int = net.layers[0].forward(data.test.x)
    h_float = result.model.layers[0].forward(x, result.model.layers[0].weights(True), False, tcfg)
    agree = ((h_float > 0) == (h_int == 1)).mean()
    assert agree > 0.999
    assert net.layers[0].last.thresholds.dtype == np.int64


def test_integer_model_agrees_with_deployed_float_model(small_run):
    data, tcfg, result = small_run
    net = fold(result.model, data.input_bits, tcfg)
    p_int = net.predict(data.test.x)
    p_float = result.model.predict(data.scale(data.test.x), tcfg)
    assert (p_int == p_float).mean() >= 0.97
    assert (p_int == data.test.y).mean() > 0.8


def test_training_is_reproducible(small_run):
    data, tcfg, result = small_run
    layers = [l.cfg for l in result.model.layers]
    again = train(data, layers, tcfg, progress=False)
    for a, b in zip(result.model.state().values(), again.model.state().values()):
        np.testing.assert_array_equal(a, b)
