"""Convolutions and max-pooling in the float model: gradients against finite differences,
im2col/col2im, the padding value, QBP on windows, learning digits, and state round trips."""

import itertools

import numpy as np
import pytest

from fewmul.nn.config import DataConfig, LayerConfig, OptimizerConfig, TrainConfig
from fewmul.nn import conv as conv_module
from fewmul.nn.conv import Conv, MaxPool, col2im, im2col
from fewmul.nn.data import load_dataset
from fewmul.nn.losses import loss_and_grad
from fewmul.nn.model import Layer, Model
from fewmul.nn.optim import Optimizer
from fewmul.nn.quantize import qbp_round
from fewmul.nn.train import train

from test_trainer import central_difference

F32, F64 = np.float32, np.float64


def conv_cfg(units, weights="float", act="none", bn=True, kernel=3, stride=1, padding="valid"):
    return LayerConfig(units, weights, act, bn=bn, kind="conv", kernel=kernel, stride=stride,
                       padding=padding)


def to_f64(layer):
    """The layer's parameters and state in float64, so that finite differences are exact to ~1e-10."""
    for name in ("w", "gamma", "beta", "mean", "var"):
        setattr(layer, name, getattr(layer, name).astype(F64))
    layer.gamma[:] = np.random.default_rng(9).uniform(0.5, 2, layer.gamma.shape)
    layer.beta[:] = np.random.default_rng(10).normal(size=layer.beta.shape)


def check_layer_gradients(layer, x, tcfg, h=1e-6):
    """Every parameter entry and every input entry of ``sum(r * layer(x))`` against central
    differences. All arithmetic is float64 (the layer keeps the dtype of its inputs), so the
    differences are accurate to about ``h^2`` (truncation) plus ``1e-16 / h`` (rounding):
    ``rtol=1e-5`` is far above both and far below any real error."""
    out = layer.forward(x, layer.w if isinstance(layer, Layer) else None, True, tcfg)
    assert out.dtype == F64
    r = np.random.default_rng(1).normal(size=out.shape)
    grads, g_in = layer.backward(r, True, tcfg)

    def value():
        return float((r * layer.forward(x, layer.w if isinstance(layer, Layer) else None,
                                        True, tcfg)).sum())

    for name, p in list(layer.params().items()) + [("x", x)]:
        got = g_in if name == "x" else grads[name]
        assert got.dtype == F64 and got.shape == p.shape, name
        numeric = np.empty(p.shape)
        for idx in np.ndindex(p.shape):
            numeric[idx] = central_difference(value, p, idx, h)
        np.testing.assert_allclose(got, numeric, rtol=1e-5, atol=1e-7, err_msg=name)


@pytest.mark.parametrize("padding, stride, bn", list(itertools.product(
        ("valid", "same"), (1, 2), (True, False))))
def test_conv_gradients_match_finite_differences(padding, stride, bn, monkeypatch):
    monkeypatch.setattr(conv_module, "CHUNK_BYTES", 1)        # one image per block
    rng = np.random.default_rng(0)
    layer = Conv.init(conv_cfg(3, bn=bn, stride=stride, padding=padding), (2, 5, 6), rng,
                      pad_value=-1.0)
    to_f64(layer)
    x = rng.normal(size=(3, 5, 6, 2))
    check_layer_gradients(layer, x, TrainConfig())


@pytest.mark.parametrize("bn, stride", [(True, 1), (False, 2)])
def test_conv_pooling_its_sums_gradients_match_finite_differences(bn, stride, monkeypatch):
    """conv -> max-pool of the sums -> batch norm: the gradient goes through the block maxima."""
    monkeypatch.setattr(conv_module, "CHUNK_BYTES", 1)        # one image per block
    rng = np.random.default_rng(11)
    layer = Conv.init(conv_cfg(3, bn=bn, stride=stride, padding="same"), (2, 8, 8), rng)
    layer.pool_sums(2)
    assert layer.grid == (3, 8 // stride, 8 // stride)
    assert layer.out_shape == (3, 4 // stride, 4 // stride)
    to_f64(layer)
    x = rng.normal(size=(3, 8, 8, 2))
    check_layer_gradients(layer, x, TrainConfig())
    # the forward pass is the block maxima of the sums, then batch norm
    sums = layer.windows(x) @ layer.w
    c, h, w = layer.grid
    pooled = sums.reshape(3, h // 2, 2, w // 2, 2, c).max((2, 4)).reshape(-1, c)
    mean, var = pooled.mean(0), pooled.var(0)
    expect = layer.gamma * (pooled - mean) / np.sqrt(var + TrainConfig().bn_eps) + layer.beta \
        if bn else pooled + layer.beta
    np.testing.assert_allclose(layer.forward(x, layer.w, True, TrainConfig()).reshape(-1, c),
                               expect, rtol=1e-9, atol=1e-9)
    with pytest.raises(ValueError, match="divisible by 3"):
        layer.pool_sums(3)


def test_maxpool_gradient_matches_finite_differences():
    rng = np.random.default_rng(2)
    layer = MaxPool.init(LayerConfig(kind="maxpool", size=2), (3, 4, 6))
    assert layer.out_shape == (3, 2, 3) and layer.params() == {}
    x = rng.normal(size=(2, 4, 6, 3))
    check_layer_gradients(layer, x, TrainConfig())
    np.testing.assert_array_equal(layer.forward(x, None, False, TrainConfig()),
                                  x.reshape(2, 2, 2, 3, 2, 3).max((2, 4)))


def test_maxpool_gradient_goes_to_the_first_maximum():
    layer = MaxPool.init(LayerConfig(kind="maxpool", size=2), (1, 2, 4))
    x = np.array([[1., 1., -1., 1.],
                  [1., 1., 1., 1.]], F32).reshape(1, 2, 4, 1)       # sign activations: ties
    layer.forward(x, None, True, TrainConfig())
    _, g = layer.backward(np.array([[5., 7.]], F32), True, TrainConfig())
    np.testing.assert_array_equal(g.reshape(2, 4), [[5, 0, 0, 7], [0, 0, 0, 0]])


@pytest.mark.parametrize("pools", ["sums", "activations"])
def test_conv_net_gradients_match_finite_differences(pools):
    """conv (relu) -> maxpool -> conv (same, sign padding) -> dense: the whole backward pass."""
    rng = np.random.default_rng(3)
    cfgs = [conv_cfg(3, act="relu"), LayerConfig(kind="maxpool", size=2, pools=pools),
            conv_cfg(2, act="none", padding="same"), LayerConfig(4, "float", "none", bn=False)]
    model = Model.init((2, 6, 6), cfgs, 0)
    for layer in model.layers:
        if isinstance(layer, Layer):
            to_f64(layer)
    x = rng.uniform(0, 1, (4, 6 * 6 * 2))
    tcfg = TrainConfig()
    r = rng.normal(size=(4, 4))
    model.forward(x, tcfg, train=True, quantized=False)
    grads = model.backward(r, tcfg)
    assert all(g.dtype == F64 for gr in grads for g in gr.values())
    h = 1e-6
    for li, layer in enumerate(model.layers):
        for name, p in layer.params().items():
            for idx in list(np.ndindex(p.shape))[:8]:
                old = p[idx]
                p[idx] = old + h
                up = (r * model.forward(x, tcfg, train=True, quantized=False)).sum()
                p[idx] = old - h
                down = (r * model.forward(x, tcfg, train=True, quantized=False)).sum()
                p[idx] = old
                assert grads[li][name][idx] == pytest.approx((up - down) / (2 * h), rel=1e-5,
                                                             abs=1e-7), (li, name, idx)
    assert grads[1] == {}


@pytest.mark.parametrize("kernel, stride, pad", [(3, 1, 0), (3, 1, 1), (3, 2, 1), (2, 2, 0), (1, 1, 0)])
def test_col2im_is_the_adjoint_of_im2col(kernel, stride, pad):
    rng = np.random.default_rng(4)
    x = rng.normal(size=(2, 6, 7, 3))
    cols = im2col(x, kernel, stride, pad)
    y = rng.normal(size=cols.shape)
    back = col2im(y, x.shape, kernel, stride, pad)
    assert back.shape == x.shape
    assert (cols * y).sum() == pytest.approx((x * back).sum(), rel=1e-12)
    # the same window gradients kernel offset first, (k * k, rows, C)
    offset_major = y.reshape(len(y), kernel * kernel, 3).transpose(1, 0, 2).copy()
    np.testing.assert_allclose(col2im(offset_major, x.shape, kernel, stride, pad), back, rtol=1e-12)


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("kernel, stride, pad", [(3, 1, 0), (3, 1, 1), (3, 2, 1), (2, 2, 0), (5, 1, 2)])
def test_im2col_rows_are_the_windows(channels, kernel, stride, pad):
    """One channel takes its own path (a slice per kernel offset): the same rows as any other."""
    rng = np.random.default_rng(6)
    x = rng.normal(size=(3, 7, 6, channels)).astype(F32)
    padded = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)), constant_values=-1.0)
    view = np.lib.stride_tricks.sliding_window_view(padded, (kernel, kernel), axis=(1, 2))
    view = view[:, ::stride, ::stride].transpose(0, 1, 2, 4, 5, 3)     # (n, OH, OW, kh, kw, C)
    expect = view.reshape(-1, kernel * kernel * channels)
    cols = im2col(x, kernel, stride, pad, value=-1.0)
    assert cols.dtype == x.dtype
    np.testing.assert_array_equal(cols, expect)


@pytest.mark.parametrize("padding, stride, pad_value", [("valid", 1, 0.0), ("same", 1, -1.0),
                                                        ("same", 2, 0.0), ("valid", 2, -1.0)])
def test_conv_forward_is_a_direct_convolution(padding, stride, pad_value):
    rng = np.random.default_rng(5)
    k, c, units = 3, 2, 4
    layer = Conv.init(conv_cfg(units, bn=False, stride=stride, padding=padding), (c, 7, 6), rng,
                      pad_value=pad_value)
    layer.beta[:] = rng.normal(size=units)
    x = rng.normal(size=(2, 7 * 6 * c)).astype(F32)        # the data sets' flat (H, W, C) rows
    out = layer.forward(x, layer.w, False, TrainConfig())
    img = x.reshape(2, 7, 6, c).astype(F64)
    p = 1 if padding == "same" else 0
    padded = np.full((2, 7 + 2 * p, 6 + 2 * p, c), pad_value)
    padded[:, p:p + 7, p:p + 6] = img
    _, oh, ow = layer.out_shape
    assert out.shape == (2, oh, ow, units)
    assert (oh, ow) == ((7 + 2 * p - k) // stride + 1, (6 + 2 * p - k) // stride + 1)
    w = layer.w.astype(F64)
    expect = np.zeros(out.shape)
    for n, i, j, u in np.ndindex(*out.shape):
        s = layer.beta[u]
        for kh, kw, ch in np.ndindex(k, k, c):
            s += padded[n, i * stride + kh, j * stride + kw, ch] * w[(kh * k + kw) * c + ch, u]
        expect[n, i, j, u] = s
    np.testing.assert_allclose(out, expect, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("qbp", [False, True])
def test_blocks_of_images_give_the_whole_batch_result(qbp, monkeypatch):
    """The products run a block of images at a time; the block size changes nothing."""
    rng = np.random.default_rng(8)
    x = rng.uniform(0, 1, (7, 6 * 6 * 3)).astype(F32)
    g = rng.normal(size=(7, 6, 6, 4)).astype(F32)
    tcfg = TrainConfig(qbp=qbp)
    results = []
    for chunk in (1 << 30, 1):
        monkeypatch.setattr(conv_module, "CHUNK_BYTES", chunk)
        layer = Conv.init(conv_cfg(4, "ternary", "relu", padding="same"), (3, 6, 6),
                          np.random.default_rng(0), pad_value=-1.0)
        assert len(layer._image_blocks(7)) == (1 if chunk > 1 else 7)
        out = layer.forward(x, layer.weights(True), True, tcfg)
        grads, g_in = layer.backward(g, True, tcfg, np.random.default_rng(1))
        results.append((out, grads, g_in))
    (out_a, grads_a, g_in_a), (out_b, grads_b, g_in_b) = results
    np.testing.assert_allclose(out_a, out_b, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(g_in_a, g_in_b, rtol=1e-6, atol=1e-6)
    for name in grads_a:           # dW is summed block by block: float32 rounding only
        np.testing.assert_allclose(grads_a[name], grads_b[name], rtol=1e-5, atol=1e-5)


def test_padding_is_minus_one_after_sign_activations():
    def pads(first_act, middle):
        cfgs = [conv_cfg(4, "binary", first_act, padding="same")] + middle + \
               [conv_cfg(4, "binary", "sign", padding="same")]
        model = Model.init((1, 4, 4), cfgs, 0)
        return [layer.pad_value for layer in model.layers if isinstance(layer, Conv)]

    pool = [LayerConfig(kind="maxpool", size=2)]
    assert pads("sign", []) == [0.0, -1.0]             # the image pads with 0
    assert pads("sign", pool) == [0.0, -1.0]           # max-pooled sign activations too
    assert pads("sign", [LayerConfig(kind="maxpool", size=2, pools="activations")]) == [0.0, -1.0]
    assert pads("quant", []) == [0.0, 0.0]
    assert pads("relu", pool) == [0.0, 0.0]
    model = Model.init((1, 4, 4), [conv_cfg(2, "binary", "sign", padding="same"),
                                   conv_cfg(2, "binary", "sign", padding="same")], 0)
    ones = np.ones((1, 4, 4, 2), F32)
    win = model.layers[1].windows(ones).reshape(4, 4, 3, 3, 2)
    assert np.all(win[0, 0, 0] == -1) and np.all(win[0, 0, :, 0] == -1)   # top and left border
    assert np.all(win[1:3, 1:3] == 1)


def test_qbp_rounds_the_windows_in_the_conv_weight_gradient():
    rng = np.random.default_rng(6)
    layer = Conv.init(conv_cfg(3, bn=False, padding="same"), (2, 5, 5), rng)
    x = rng.uniform(0, 1, (4, 5 * 5 * 2)).astype(F32)
    tcfg, qcfg = TrainConfig(), TrainConfig(qbp=True)
    layer.forward(x, layer.w, True, tcfg)
    g = rng.normal(size=(4, 5, 5, 3)).astype(F32)
    exact, g_in = layer.backward(g, True, tcfg)
    quant, g_in_q = layer.backward(g, True, qcfg, np.random.default_rng(7))
    assert not np.allclose(quant["w"], exact["w"], rtol=1e-3)
    windows_q = qbp_round(layer.windows(x), np.random.default_rng(7))
    assert np.all(np.isin(np.abs(windows_q), [0] + [2.0 ** e for e in range(-4, 4)]))
    np.testing.assert_allclose(quant["w"], windows_q.T @ g.reshape(-1, 3), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(g_in_q, g_in)                   # only dW is rounded
    np.testing.assert_array_equal(quant["beta"], exact["beta"])
    # +-1 inputs (sign activations, -1 padding) are powers of two already: nothing changes
    layer.pad_value = -1.0
    layer.forward(np.sign(x - 0.5), layer.w, True, tcfg)
    np.testing.assert_array_equal(layer.backward(g, False, qcfg, rng)[0]["w"],
                                  layer.backward(g, False, tcfg)[0]["w"])


@pytest.fixture(scope="module")
def digits():
    return load_dataset(DataConfig())


@pytest.mark.parametrize("weights, act, quantize, qbp, bn_kind, threshold", [
    ("float", "relu", "deterministic", False, "standard", 0.95),
    ("binary", "sign", "stochastic", True, "standard", 0.75),     # seeds 0-2 give 0.81-0.90
    ("ternary", "quant", "deterministic", True, "shift", 0.9),    # 0.94-0.95
])
def test_a_small_conv_net_learns_digits(digits, weights, act, quantize, qbp, bn_kind, threshold):
    layers = [LayerConfig(16, weights, act, act_bits=2, kind="conv", kernel=3, padding="same"),
              LayerConfig(kind="maxpool", size=2),
              LayerConfig(10, weights, "none")]
    tcfg = TrainConfig(epochs=4, seed=0, quantize=quantize, qbp=qbp, bn_kind=bn_kind,
                       optimizer=OptimizerConfig("adam", 0.01, 0.002, 50))
    result = train(digits, layers, tcfg, progress=False)
    best = result.history[result.best_epoch]
    assert best.test_acc > threshold, best      # chance is 0.1
    conv = result.model.layers[0]
    if weights != "float":                      # the optimizer clips conv weights to w0 as well
        assert np.abs(conv.w).max() <= conv.w0


def test_state_round_trip_skips_maxpool(digits):
    cfgs = [conv_cfg(4, "binary", "sign", padding="same"), LayerConfig(kind="maxpool", size=2),
            conv_cfg(6, "ternary", "quant", stride=2), LayerConfig(10, "binary", "none")]
    tcfg = TrainConfig(epochs=1, optimizer=OptimizerConfig("adam", 0.01, 0.01, 100))
    model = train(digits, cfgs, tcfg, progress=False).model
    state = model.state()
    assert sorted({k.split(".")[0] for k in state}) == ["layer0", "layer2", "layer3"]
    assert state["layer0.w"].shape == (9, 4) and state["layer2.w"].shape == (36, 6)
    assert state["layer3.w"].shape == (6, 10)             # 1x1x6 after the stride-2 conv
    assert state["layer2.w0"] == pytest.approx(np.sqrt(1.5 / (36 + 6)))
    fresh = Model.init(digits.shape, cfgs, seed=99)
    fresh.load_state(state)
    x = digits.scale(digits.test.x)
    np.testing.assert_array_equal(fresh.forward(x, tcfg), model.forward(x, tcfg))
    np.testing.assert_array_equal(fresh.predict(x, tcfg), model.forward(x, tcfg).argmax(1))
    np.testing.assert_array_equal(fresh.predict(x, tcfg, batch=7), fresh.predict(x, tcfg))
    bad = dict(state, **{"layer2.w": np.zeros((9, 6), F32)})
    with pytest.raises(ValueError, match="layer2.w"):
        fresh.load_state(bad)


@pytest.mark.parametrize("pools", ["sums", "activations"])
def test_layer_shapes_and_spec_errors(pools):
    cfgs = [conv_cfg(8, padding="same"), LayerConfig(kind="maxpool", size=2, pools=pools),
            conv_cfg(16, stride=2), LayerConfig(10)]
    model = Model.init((3, 12, 12), cfgs, 0)
    assert [l.in_shape for l in model.layers] == [(3, 12, 12), (8, 12, 12), (8, 6, 6), (16, 2, 2)]
    conv_out = (8, 6, 6) if pools == "sums" else (8, 12, 12)     # a pool of sums is the conv's
    assert [l.out_shape for l in model.layers] == [conv_out, (8, 6, 6), (16, 2, 2), (10, 1, 1)]
    assert model.layers[0].grid == (8, 12, 12) and model.layers[1].fused == (pools == "sums")
    assert model.layers[3].w.shape == (64, 10)
    with pytest.raises(ValueError, match=r"layers\[0\].*must follow a conv"):
        Model.init((1, 4, 4), [LayerConfig(kind="maxpool", size=2, pools=pools), LayerConfig(3)], 0)
    assert Model.init(5, [LayerConfig(3)], 0).layers[0].in_shape == (5, 1, 1)
    with pytest.raises(ValueError, match=r"layers\[1\].*divisible"):
        Model.init((1, 5, 5), [conv_cfg(2, padding="same"), LayerConfig(kind="maxpool", size=2)], 0)
    with pytest.raises(ValueError, match=r"layers\[0\].*does not fit"):
        Model.init((1, 2, 2), [conv_cfg(2)], 0)
    # the optimizer steps through params(): max-pooling has none
    opt = Optimizer(model, OptimizerConfig("sgd", 0.1))
    x = np.random.default_rng(0).uniform(0, 1, (4, 12 * 12 * 3)).astype(F32)
    loss, g = loss_and_grad(model.forward(x, TrainConfig(), train=True), np.arange(4), "squared_hinge")
    grads = model.backward(g, TrainConfig())
    assert grads[1] == {} and grads[0]["w"].shape == (27, 8)
    opt.step(grads, 0.1)
