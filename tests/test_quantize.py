"""Quantizer identities and statistics on random data."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra.numpy import arrays

from fewmul.nn.quantize import (activation_gate, ap2, glorot_scale, qbp_round, quantize_activation,
                                quantize_weights, sign)

floats = st.floats(-2, 2, allow_nan=False, width=32)


@given(arrays(np.float32, st.integers(1, 50), elements=floats))
def test_sign_is_plus_one_at_zero(x):
    s = sign(x)
    assert set(np.unique(s)) <= {-1.0, 1.0}
    assert np.all(s[x == 0] == 1)
    assert np.all((s > 0) == (x >= 0))


@given(arrays(np.float32, st.integers(1, 50), elements=floats), st.floats(0.01, 1))
def test_deterministic_weight_quantizers(w, w0):
    w0 = np.float32(w0)
    b = quantize_weights(w, w0, "binary")
    assert np.all(np.abs(b) == w0)
    t = quantize_weights(w, w0, "ternary")
    assert np.all(t[w > w0 / 2] == w0) and np.all(t[w < -w0 / 2] == -w0)
    assert np.all(t[np.abs(w) <= w0 / 2] == 0)
    assert quantize_weights(w, w0, "float") is w


@pytest.mark.parametrize("mode", ["binary", "ternary"])
def test_stochastic_weight_quantizers_are_unbiased(mode):
    rng = np.random.default_rng(0)
    w0 = np.float32(0.25)
    w = np.linspace(-w0, w0, 41, dtype=np.float32)
    draws = np.stack([quantize_weights(w, w0, mode, True, rng) for _ in range(20000)])
    values = {-w0, w0} if mode == "binary" else {-w0, 0, w0}
    assert set(np.unique(draws)) <= values
    # standard error of the mean is at most w0 / sqrt(20000) ~ 0.0018
    np.testing.assert_allclose(draws.mean(0), w, atol=5 * w0 / np.sqrt(20000))


def test_qbp_rounding_is_unbiased_powers_of_two():
    rng = np.random.default_rng(1)
    x = np.array([0.3, -0.7, 0.125, 0.0, 0.9, -0.05], np.float32)
    draws = np.stack([qbp_round(x, rng, -8, 0) for _ in range(20000)])
    nz = draws[:, x != 0]
    e = np.log2(np.abs(nz))
    assert np.all(e == np.round(e))
    assert np.all(draws[:, x == 0] == 0)
    np.testing.assert_allclose(draws.mean(0), x, atol=0.02)


def test_activation_gates():
    y = np.array([-2, -1, -0.5, 0, 0.5, 1, 2], np.float32)
    np.testing.assert_array_equal(activation_gate(y, "sign"), [0, 1, 1, 1, 1, 1, 0])
    np.testing.assert_array_equal(activation_gate(y, "quant"), [0, 0, 0, 1, 1, 1, 0])
    np.testing.assert_array_equal(quantize_activation(y, "quant", 2) * 3, [0, 0, 0, 0, 2, 3, 3])


def test_glorot_scale():
    assert glorot_scale(64, 256) == pytest.approx(np.sqrt(1.5 / 320))
    with pytest.raises(ValueError, match="positive"):
        glorot_scale(0, 3)


def test_qbp_exponent_range_is_unbiased_below_and_saturates_above():
    rng = np.random.default_rng(2)
    # 2**-4 .. 2**3 is the paper's 3-bit exponent range
    x = np.array([0.01, -0.03, 0.0625, 0.2, -5.0, 7.9, 20.0], np.float32)
    draws = qbp_round(np.tile(x, (40000, 1)), rng, -4, 3)
    mags = np.abs(draws)
    assert set(np.unique(mags)) <= {0.0} | {2.0 ** e for e in range(-4, 4)}
    # below 2**-4: 0 or 2**-4, unbiased
    assert set(np.unique(mags[:, :2])) == {0.0, 0.0625}
    np.testing.assert_allclose(draws[:, :5].mean(0), x[:5], rtol=0.05)
    # an exact power of two in range never moves
    assert np.all(draws[:, 2] == 0.0625)
    # at and above 2**3 everything saturates at 8 with the sign kept
    assert np.all(draws[:, 6] == 8) and np.all(draws[:, 5] >= 4)
    with pytest.raises(ValueError, match="exp_min <= exp_max"):
        qbp_round(x, rng, 2, 1)


def test_ap2_rounds_to_nearest_power_of_two():
    x = np.array([0.0, 1.0, -3.0, 0.3, 5.0, -0.7, 5.9], np.float32)   # rounded in the log domain
    np.testing.assert_array_equal(ap2(x), [0, 1, -4, 0.25, 4, -0.5, 8])


@pytest.mark.parametrize("mode", ["binary", "ternary"])
def test_stochastic_quantizers_saturate_outside_the_clip_range(mode):
    rng = np.random.default_rng(3)
    w0 = np.float32(0.5)
    w = np.array([-2.0, 0.75, 3.0], np.float32)
    draws = np.stack([quantize_weights(w, w0, mode, True, rng) for _ in range(200)])
    np.testing.assert_array_equal(draws, np.tile([-w0, w0, w0], (200, 1)))
    with pytest.raises(ValueError, match="random generator"):
        quantize_weights(w, w0, mode, True, None)


def test_relu_gate_and_sign_of_negative_zero():
    y = np.array([-1, -0.0, 0.0, 0.5], np.float32)
    np.testing.assert_array_equal(activation_gate(y, "relu"), [0, 0, 0, 1])
    np.testing.assert_array_equal(sign(y), [-1, 1, 1, 1])
    np.testing.assert_array_equal(quantize_weights(y, 0.5, "binary"), [-0.5, 0.5, 0.5, 0.5])
