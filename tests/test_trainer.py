"""The float model and trainer: hand-written gradients, QBP, shift-based batch norm,
power-of-two learning rates, reproducibility, and learning on digits."""

import dataclasses

import numpy as np
import pytest

from fewmul.nn.config import DataConfig, LayerConfig, OptimizerConfig, TrainConfig
from fewmul.nn.data import load_dataset
from fewmul.nn.losses import loss_and_grad
from fewmul.nn.model import Model
from fewmul.nn.optim import Optimizer
from fewmul.nn.train import recompute_bn_stats, train

F32 = np.float32



def central_difference(value, p, idx, h):
    """``(value() at p[idx] + h - value() at p[idx] - h) / 2h``; ``p`` is left as it was."""
    old = p[idx]
    p[idx] = old + h
    up = value()
    p[idx] = old - h
    down = value()
    p[idx] = old
    return (up - down) / (2 * h)

def small_model(weights="float", act="relu", bn=True, seed=0):
    cfgs = [LayerConfig(6, weights, act, bn=bn), LayerConfig(3, weights, "none", bn=bn)]
    return Model.init(4, cfgs, seed)


@pytest.mark.parametrize("loss", ["squared_hinge", "cross_entropy"])
@pytest.mark.parametrize("bn", [True, False])
def test_backward_matches_finite_differences(loss, bn):
    """The hand-written backward pass (batch-norm Jacobian included) against central differences."""
    rng = np.random.default_rng(0)
    model = small_model(bn=bn)
    x = rng.normal(size=(8, 4)).astype(F32)
    y = rng.integers(0, 3, 8)
    tcfg = TrainConfig(loss=loss)

    def value():
        return loss_and_grad(model.forward(x, tcfg, train=True, quantized=False), y, loss)[0]

    scores = model.forward(x, tcfg, train=True, quantized=False)
    grads = model.backward(loss_and_grad(scores, y, loss)[1], tcfg)
    h = 1e-2
    for li, layer in enumerate(model.layers):
        for name, p in layer.params().items():
            for idx in list(np.ndindex(p.shape))[:6]:
                numeric = central_difference(value, p, idx, h)
                assert grads[li][name][idx] == pytest.approx(numeric, rel=0.05, abs=2e-4), (li, name, idx)


def test_qbp_weight_gradient_is_unbiased_and_exact_on_powers_of_two():
    rng = np.random.default_rng(1)
    tcfg, qcfg = TrainConfig(), TrainConfig(qbp=True)
    model = small_model()
    x = rng.uniform(0, 1, (16, 4)).astype(F32)
    model.forward(x, tcfg, train=True, quantized=False)
    g = rng.normal(size=(16, 3)).astype(F32)
    exact = model.backward(g, tcfg)[0]["w"]
    mean = np.mean([model.backward(g, qcfg, rng)[0]["w"] for _ in range(4000)], 0)
    np.testing.assert_allclose(mean, exact, atol=0.03 * np.abs(exact).max())
    # only dW changes; the other gradients stay exact
    q = model.backward(g, qcfg, rng)
    assert not np.array_equal(q[0]["w"], exact)
    np.testing.assert_array_equal(q[0]["gamma"], model.backward(g, tcfg)[0]["gamma"])
    # inputs that already are powers of two (the sign layer's +-1) are not changed
    model.forward(np.sign(x - 0.5).astype(F32), tcfg, train=True, quantized=False)
    np.testing.assert_array_equal(model.backward(g, qcfg, rng)[0]["w"], model.backward(g, tcfg)[0]["w"])


def test_shift_batch_norm_uses_powers_of_two():
    rng = np.random.default_rng(2)
    tcfg = TrainConfig(bn_kind="shift")
    model = small_model()
    layer = model.layers[0]
    layer.gamma[:] = rng.uniform(0.3, 3, 6)
    layer.var[:] = rng.uniform(0.1, 9, 6)
    a, b = layer.bn_affine(tcfg)
    e = np.log2(np.abs(a))
    np.testing.assert_array_equal(e, np.round(e))
    x = rng.normal(size=(5, 4)).astype(F32)
    z = x @ layer.w
    y = layer.forward(x, layer.w, False, tcfg)
    np.testing.assert_allclose(y, np.maximum(a * z + b, 0), rtol=1e-5, atol=1e-6)
    # standard batch norm: the exact scale
    a_std, _ = layer.bn_affine(TrainConfig())
    np.testing.assert_allclose(a_std, layer.gamma / np.sqrt(layer.var + 1e-4), rtol=1e-6)
    # training still reduces the loss with shift-based batch norm
    x = rng.normal(size=(64, 4)).astype(F32)
    y = (x[:, 0] > 0).astype(int) + (x[:, 1] > 0)
    opt = Optimizer(model, OptimizerConfig("adam", 0.01))
    losses = []
    for _ in range(60):
        loss, g = loss_and_grad(model.forward(x, tcfg, train=True), y, "squared_hinge")
        opt.step(model.backward(g, tcfg), 0.01)
        losses.append(loss)
    assert np.mean(losses[-5:]) < 0.6 * np.mean(losses[:5])


def test_power_of_two_learning_rate_makes_the_update_a_shift():
    rng = np.random.default_rng(3)
    model = small_model(weights="binary")
    tcfg = TrainConfig(qbp=True, optimizer=OptimizerConfig("sgd", 0.3, 0.01, 8, lr_pow2=True))
    opt = Optimizer(model, tcfg.optimizer)
    x = rng.uniform(0, 1, (8, 4)).astype(F32)
    scores = model.forward(x, tcfg, train=True)
    grads = model.backward(loss_and_grad(scores, rng.integers(0, 3, 8), tcfg.loss)[1], tcfg, rng)
    before = [l.w.copy() for l in model.layers]
    opt.step(grads, 0.3)
    for layer, w, g in zip(model.layers, before, grads):
        moved = (np.abs(layer.w) < layer.w0) & (g["w"] != 0)      # not clipped
        ratio = (w - layer.w)[moved] / g["w"][moved]
        assert np.allclose(ratio, ratio[0], rtol=1e-3)
        assert np.log2(ratio[0]) == pytest.approx(round(np.log2(ratio[0])), abs=1e-3)
        assert np.all(np.abs(layer.w) <= layer.w0)                  # hidden weights clipped


@pytest.fixture(scope="module")
def digits():
    return load_dataset(DataConfig())


@pytest.mark.parametrize("weights, quantize, qbp", [
    ("float", "deterministic", False),
    ("binary", "stochastic", False),
    ("binary", "deterministic", True),
    ("ternary", "stochastic", True),
])
def test_every_method_learns_digits(digits, weights, quantize, qbp):
    layers = [LayerConfig(64, weights, "relu"), LayerConfig(10, weights, "none")]
    tcfg = TrainConfig(epochs=8, seed=0, quantize=quantize, qbp=qbp,
                       optimizer=OptimizerConfig("sgd", 0.3, 0.03, 50))
    result = train(digits, layers, tcfg, progress=False)
    best = result.history[result.best_epoch]
    assert best.test_acc_float > 0.88 and best.test_acc > 0.8
    if weights == "float":       # nothing to quantize: both evaluations agree
        assert all(m.val_acc == m.val_acc_float for m in result.history)


def test_seeded_runs_are_reproducible(digits):
    layers = [LayerConfig(16, "ternary", "relu"), LayerConfig(10, "ternary", "none")]
    runs = [train(digits, layers, TrainConfig(epochs=2, seed=s, quantize="stochastic", qbp=True),
                  progress=False).model.layers[0].w for s in (5, 5, 6)]
    np.testing.assert_array_equal(runs[0], runs[1])
    assert not np.array_equal(runs[0], runs[2])


def test_recomputed_batch_norm_statistics_are_those_of_the_deployed_weights(digits):
    """The mean of each chunk's statistics of the deterministic weights' sums; stochastic
    training draws nothing here."""
    model = Model.init(64, [LayerConfig(32, "ternary", "sign"), LayerConfig(10, "binary", "none")], 0)
    x = digits.scale(digits.train.x[:1000])
    tcfg = TrainConfig(quantize="stochastic", bn_kind="standard")
    recompute_bn_stats(model, x, tcfg)
    layer = model.layers[0]
    z = x @ layer.weights(True)
    np.testing.assert_allclose(layer.mean, z.mean(0), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(layer.var, (z[:500].var(0, ddof=1) + z[500:].var(0, ddof=1)) / 2,
                               rtol=1e-4, atol=1e-5)
    assert all(l.cache == {} for l in model.layers)
    with pytest.raises(ValueError, match="at least 2 images, not 1"):
        recompute_bn_stats(model, x[:1], tcfg)


def test_training_recomputes_the_statistics_of_the_kept_model(digits):
    layers = [LayerConfig(64, "binary", "sign"), LayerConfig(10, "binary", "none")]
    base = TrainConfig(epochs=3, seed=0, optimizer=OptimizerConfig("adam", 0.03, 0.003, 50))
    running = train(digits, layers, base, progress=False)
    recomputed = train(digits, layers, dataclasses.replace(base, bn_recompute=1000), progress=False)
    # the same weights after the first epoch (recomputing draws nothing from the trainer's
    # generator), different statistics
    assert running.history[0].loss == recomputed.history[0].loss
    assert running.history[0].val_acc != recomputed.history[0].val_acc
    # the kept model's statistics are those of its deployed weights on the 1000 images
    model = recomputed.model
    kept = [(l.mean.copy(), l.var.copy()) for l in model.layers]
    images = np.sort(np.random.default_rng(base.seed + 2).permutation(len(digits.train.y))[:1000])
    recompute_bn_stats(model, digits.scale(digits.train.x)[images], base)
    for (mean, var), layer in zip(kept, model.layers):
        np.testing.assert_array_equal(mean, layer.mean)
        np.testing.assert_array_equal(var, layer.var)
