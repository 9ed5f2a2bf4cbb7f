"""The convolution ops of the IR (windows, per-pixel matrix-vector products, max-pools), their
grouping into layers, and the folding of a trained conv net against the float model."""

import copy

import numpy as np
import pytest

from fewmul.ir import Graph, MatVec, MaxPool, MultiThreshold, Scores, SlidingWindow, TensorType
from fewmul.ir.fold import fold
from fewmul.ir.ops import Argmax
from fewmul.nn.config import DataConfig, LayerConfig, OptimizerConfig, TrainConfig
from fewmul.nn.data import load_dataset
from fewmul.nn.train import train


def ref_windows(images, kernel, stride, padding):
    """``images`` (n, H, W, C) -> (n, OH, OW, K*K*C) by loops, padding with zeros."""
    n, h, w, c = images.shape
    padded = np.zeros((n, h + 2 * padding, w + 2 * padding, c), images.dtype)
    padded[:, padding:padding + h, padding:padding + w] = images
    oh = (h + 2 * padding - kernel) // stride + 1
    ow = (w + 2 * padding - kernel) // stride + 1
    out = np.zeros((n, oh, ow, kernel * kernel * c), images.dtype)
    for i in range(oh):
        for j in range(ow):
            for kh in range(kernel):
                for kw in range(kernel):
                    at = (kh * kernel + kw) * c
                    out[:, i, j, at:at + c] = padded[:, i * stride + kh, j * stride + kw]
    return out


@pytest.mark.parametrize("seed", range(12))
def test_sliding_window_matches_loops(seed):
    rng = np.random.default_rng(seed)
    c, h, w = rng.integers(1, 4), rng.integers(1, 8), rng.integers(1, 8)
    padding = int(rng.integers(0, 3))
    kernel = int(rng.integers(1, min(h, w) + 2 * padding + 1))
    stride = int(rng.integers(1, 4))
    kind, bits = ("bipolar", 1) if seed % 2 else ("unsigned", 3)
    op = SlidingWindow("w", TensorType((int(c), int(h), int(w)), kind, bits), kernel, stride,
                       padding)
    images = rng.integers(0, 1 << bits, (3, h, w, c))
    got = op.forward(images.reshape(3, -1))
    want = ref_windows(images, kernel, stride, padding)
    assert op.out_type.shape == (kernel * kernel * c, want.shape[1], want.shape[2])
    np.testing.assert_array_equal(got, want.reshape(3, -1))


def test_window_and_pool_shape_errors():
    with pytest.raises(ValueError, match="does not fit"):
        SlidingWindow("w", TensorType((1, 3, 3), "unsigned", 4), 5)
    with pytest.raises(ValueError, match="Stride must be"):
        SlidingWindow("w", TensorType((1, 3, 3), "unsigned", 4), 3, 0)
    with pytest.raises(ValueError, match="does not divide"):
        MaxPool("p", TensorType((2, 6, 5), "bipolar", 1), 2)
    with pytest.raises(ValueError, match="bipolar or unsigned"):
        MaxPool("p", TensorType((2, 6, 6), "signed", 5, 10), 2)


def test_maxpool_is_an_or_of_bits_and_a_max_of_levels():
    rng = np.random.default_rng(1)
    for kind, bits in (("bipolar", 1), ("unsigned", 2)):
        op = MaxPool("p", TensorType((3, 4, 6), kind, bits), 2)
        x = rng.integers(0, 1 << bits, (5, 4, 6, 3))
        want = np.zeros((5, 2, 3, 3), int)
        for i in range(2):
            for j in range(3):
                want[:, i, j] = x[:, 2 * i:2 * i + 2, 2 * j:2 * j + 2].max(axis=(1, 2))
        np.testing.assert_array_equal(op.forward(x.reshape(5, -1)), want.reshape(5, -1))
        assert op.out_type.shape == (3, 2, 3)
        # the minimum (an AND of bits, the least level) on the flagged channels
        low = MaxPool("p", op.in_type, 2, np.array([True, False, True]))
        for i in range(2):
            for j in range(3):
                want[:, i, j, [0, 2]] = x[:, 2 * i:2 * i + 2, 2 * j:2 * j + 2, [0, 2]].min(axis=(1, 2))
        np.testing.assert_array_equal(low.forward(x.reshape(5, -1)), want.reshape(5, -1))
        again = MaxPool.from_arrays("p", op.in_type, low.arrays())
        np.testing.assert_array_equal(again.minimum, low.minimum)
    with pytest.raises(ValueError, match="minimum must be 3 booleans"):
        MaxPool("p", op.in_type, 2, np.array([1, 0, 1]))


def test_matvec_applies_the_same_weights_at_every_pixel():
    rng = np.random.default_rng(2)
    w = rng.integers(0, 2, (5, 12))
    op = MatVec("m", TensorType((12, 3, 2), "bipolar", 1), w)
    x = rng.integers(0, 2, (4, 3 * 2 * 12))
    got = op.forward(x).reshape(4, 6, 5)
    want = (2 * x.reshape(4, 6, 12) - 1) @ (2 * w - 1).T
    np.testing.assert_array_equal(got, want)
    assert op.out_type.shape == (5, 3, 2)
    t = MultiThreshold("t", op.out_type, rng.integers(-3, 4, 5))
    np.testing.assert_array_equal(t.forward(got.reshape(4, -1)).reshape(4, 6, 5),
                                  (want >= t.thresholds).astype(np.uint8))


def conv_graph(rng):
    """window 3x3 -> matvec 4 -> threshold -> pool 2 -> dense 6 -> scores -> argmax, on 6x6x2."""
    window = SlidingWindow("layer0.window", TensorType((2, 6, 6), "unsigned", 2), 3, 1, 1)
    matvec = MatVec("layer0.matvec", window.out_type, rng.integers(0, 2, (4, 18)))
    threshold = MultiThreshold("layer0.threshold", matvec.out_type, rng.integers(-5, 5, 4))
    pool = MaxPool("layer0.pool", threshold.out_type, 2)
    dense = MatVec("layer1.matvec", TensorType.vector(pool.out_type.size, "bipolar", 1),
                   rng.integers(-1, 2, (6, 36)), "ternary")
    scores = Scores("layer1.scores", dense.out_type, rng.integers(0, 3, 6),
                    rng.integers(-9, 9, 6))
    return Graph([window, matvec, threshold, pool, dense, scores,
                  Argmax("argmax", scores.out_type)])


def test_a_window_and_a_pool_join_the_layer_of_their_matvec():
    net = conv_graph(np.random.default_rng(3))
    assert [[op.kind for op in layer.ops] for layer in net.layers] == [
        ["window", "matvec", "threshold", "maxpool"], ["matvec", "scores"]]
    first = net.layers[0]
    assert first.head.kind == "matvec" and first.first.kind == "window"
    assert first.in_type.shape == (2, 6, 6) and first.out_type.shape == (4, 3, 3)
    assert first.inputs == 18
    assert [op.kind for op in net.tail] == ["argmax"]


def test_a_window_must_feed_a_layer():
    t = TensorType((1, 4, 4), "bipolar", 1)
    window = SlidingWindow("w", t, 3)
    with pytest.raises(ValueError, match="must feed an op that starts a layer"):
        Graph([window])
    with pytest.raises(ValueError, match="must feed an op that starts a layer"):
        Graph([window, MaxPool("p", window.out_type, 2)])


def test_conv_graph_round_trips_through_arrays(tmp_path):
    net = conv_graph(np.random.default_rng(4))
    path = tmp_path / "net.npz"
    np.savez(path, **net.arrays())
    again = Graph.load(path)
    x = np.random.default_rng(5).integers(0, 4, (7, 72))
    for a, b in zip(net.execute(x), again.execute(x)):
        np.testing.assert_array_equal(a, b)
    assert again.summary() == net.summary()


@pytest.fixture(scope="module")
def conv_run():
    data = load_dataset(DataConfig())
    layers = [LayerConfig(8, kind="conv", kernel=3, padding="same"),
              LayerConfig(kind="maxpool", size=2),
              LayerConfig(16, kind="conv", kernel=3, act="quant", act_bits=2),
              LayerConfig(10, act="none")]
    tcfg = TrainConfig(epochs=3, optimizer=OptimizerConfig(lr=0.01, lr_final=0.003))
    return data, tcfg, train(data, layers, tcfg, progress=False)


def test_folded_conv_net_has_the_expected_ops(conv_run):
    data, tcfg, result = conv_run
    net = fold(result.model, data.input_bits, tcfg)
    assert [op.kind for op in net.ops] == ["window", "matvec", "threshold", "maxpool",
                                           "window", "matvec", "threshold",
                                           "matvec", "scores", "argmax"]
    assert net.in_type.shape == (1, 8, 8)
    assert net.layers[0].out_type.shape == (8, 4, 4)
    assert net.layers[1].out_type.shape == (16, 2, 2) and net.layers[1].out_type.bits == 2


def test_folded_conv_layer_reproduces_the_float_activations(conv_run):
    data, tcfg, result = conv_run
    net = fold(result.model, data.input_bits, tcfg)
    model = result.model
    x = data.scale(data.test.x)
    # the float model's first conv layer and its pool, run as the trainer runs them
    h = model.layers[0].forward(x, model.layers[0].weights(True), False, tcfg)
    h = model.layers[1].forward(h, None, False, tcfg)
    h_int = net.layers[0].forward(data.test.x).reshape(h.shape)
    agree = ((h > 0) == (h_int == 1)).mean()
    assert agree > 0.999, agree
    h = model.layers[2].forward(h, model.layers[2].weights(True), False, tcfg)
    levels = net.layers[1].forward(net.layers[0].forward(data.test.x))
    assert (np.round(h * 3).reshape(levels.shape) == levels).mean() > 0.999


def test_a_pool_of_sums_takes_the_minimum_where_the_scale_is_negative(conv_run):
    """conv -> max of sums -> batch norm -> sign: on a channel with a negative scale the
    largest sum gives the least activation, and the folded pool takes the minimum there."""
    data, tcfg, result = conv_run
    model = copy.deepcopy(result.model)
    conv = model.layers[0]
    assert conv.pool == 2 and model.layers[1].fused
    conv.gamma[::2] *= -1
    net = fold(model, data.input_bits, tcfg)
    pool = next(op for op in net.ops if op.kind == "maxpool")
    np.testing.assert_array_equal(pool.minimum, conv.gamma < 0)
    assert 0 < pool.minimum.sum() < len(pool.minimum)
    x = data.scale(data.test.x)
    h = model.layers[1].forward(conv.forward(x, conv.weights(True), False, tcfg), None, False, tcfg)

    def agreement():
        h_int = net.layers[0].forward(data.test.x).reshape(h.shape)
        return ((h > 0) == (h_int == 1)).mean()

    assert agreement() > 0.999
    pool.minimum[:] = False                 # the maximum everywhere disagrees
    assert agreement() < 0.95


def test_conv_integer_model_agrees_with_deployed_float_model(conv_run):
    data, tcfg, result = conv_run
    net = fold(result.model, data.input_bits, tcfg)
    p_int = net.predict(data.test.x)
    p_float = result.model.predict(data.scale(data.test.x), tcfg)
    # the hidden layers agree (above); the output layer's batch-norm scales become powers of
    # two, which moves labels of the close calls of this briefly trained net
    assert (p_int == p_float).mean() > 0.95
    assert (p_int == data.test.y).mean() > 0.5     # it learned something (chance is 0.1)


# --- lowered conv graphs in the Amaranth simulator ------------------------------------------------

def random_conv_graph(rng):
    """A random conv -> (pool) -> conv -> dense graph with random weights and thresholds."""
    from fewmul.ir.build import weighted_ops
    c, h = int(rng.integers(1, 4)), int(rng.integers(6, 10))
    kind, bits = ("unsigned", int(rng.integers(1, 4)))
    t = TensorType((c, h, h), kind, bits)
    ops, index = [], 0
    for filters in (int(rng.choice([2, 4, 6])), int(rng.choice([2, 3, 4]))):
        kernel = int(rng.integers(1, min(3, t.shape[1]) + 1))
        padding = int(rng.integers(0, 2)) if kernel > 1 else 0
        stride = int(rng.integers(1, 3))
        ops.append(SlidingWindow(f"layer{index}.window", t, kernel, stride, padding))
        n = ops[-1].out_type.channels
        weight_kind = "ternary" if rng.random() < 0.5 else "binary"
        weights = rng.integers(-1 if weight_kind == "ternary" else 0, 2, (filters, n))
        bound = n * ((1 << bits) - 1)
        levels = rng.random() < 0.5
        thresholds = (np.sort(rng.integers(-bound // 3, bound // 3 + 1, (filters, 3)), 1)
                      if levels else rng.integers(-bound // 4, bound // 4 + 1, filters))
        ops += weighted_ops(f"layer{index}", ops[-1].out_type, weights, weight_kind,
                            thresholds=thresholds)
        t = ops[-1].out_type
        size = next((s for s in (2, 3) if t.shape[1] % s == 0 and t.shape[2] % s == 0), None)
        if size and rng.random() < 0.6:
            minimum = rng.random(t.shape[0]) < 0.5 if rng.random() < 0.5 else None
            ops.append(MaxPool(f"layer{index}.pool", t, size, minimum))
            t = ops[-1].out_type
        bits = t.bits
        index += 1
    dense_in = TensorType.vector(t.size, t.kind, t.bits)
    ops += weighted_ops(f"layer{index}", dense_in, rng.integers(0, 2, (4, t.size)), "binary",
                        shifts=rng.integers(0, 3, 4), offsets=rng.integers(-5, 6, 4))
    ops.append(Argmax("argmax", ops[-1].out_type))
    return Graph(ops)


def lowered_random_conv_graph(seed):
    """``(rng, net, plans, top)``: a random conv graph with random ``pe``, ``simd`` and
    pipeline stages, lowered."""
    from fewmul.compiler.lower import lower
    from fewmul.compiler.planner import plan_folding

    rng = np.random.default_rng(100 + seed)
    net = random_conv_graph(rng)
    pes = [int(rng.choice([d for d in range(1, layer.head.units + 1)
                           if layer.head.units % d == 0])) for layer in net.layers]
    plans = plan_folding(net, pes, simd=[int(rng.integers(1, layer.inputs + 1))
                                         for layer in net.layers], pipeline=seed % 3)
    top = lower(net, plans)
    return rng, net, plans, top


@pytest.mark.parametrize("seed", range(8))
def test_random_conv_graphs_are_bit_exact_in_simulation(seed):
    """Every layer's collected output, vector by vector, and the labels, with random stalls."""
    from fewmul.compiler.lower import probes
    from gateware_helpers import StreamMonitor, simulate

    rng, net, plans, top = lowered_random_conv_graph(seed)
    images = 4
    x = rng.integers(0, 1 << net.input_bits, (images, net.in_type.size))
    beats = x.reshape(images * net.in_type.pixels, net.in_type.channels)
    layer_probes = probes(net, plans)
    monitors = [StreamMonitor(top.stages[p.path].o) for p in layer_probes]
    _, out = simulate(top, beats.tolist(), images, seed=seed, p_stall=0.3, monitors=monitors,
                      max_cycles=60_000)
    # A strided window may give the last image's label before the image's last pixels are in
    # (they are not needed), so the last image is only checked by its label.
    for probe, mon, expected in zip(layer_probes, monitors, net.forward(x)):
        checked = (images - 1) * probe.vectors
        assert checked <= len(mon.payloads) <= images * probe.vectors
        got = np.array(mon.payloads[:checked]).reshape(images - 1, -1)
        np.testing.assert_array_equal(got, expected[:images - 1], err_msg=probe.name)
    assert [o["label"] for o in out.payloads] == net.predict(x).tolist()


@pytest.mark.parametrize("seed", range(8, 14))
def test_conv_graph_timing_is_as_predicted(seed):
    """Unstalled, images follow one another every ``cycles_per_inference`` cycles, exactly (the
    windows paced by their matrix-vector units, the layers decoupled by the pixel queues); the
    predicted latency, the sum of the layers', bounds the measured one (a conv layer starts on
    the first pixels of the layer before)."""
    from gateware_helpers import simulate

    rng, net, plans, top = lowered_random_conv_graph(seed)
    images = 5
    x = rng.integers(0, 1 << net.input_bits, (images, net.in_type.size))
    beats = x.reshape(images * net.in_type.pixels, net.in_type.channels)
    _, out = simulate(top, beats.tolist(), images, max_cycles=60_000)
    cycles = [cycle for cycle, _ in out.transfers]
    assert set(np.diff(cycles).tolist()) == {top.cycles_per_inference}
    assert cycles[0] <= top.latency_cycles
    assert [o["label"] for o in out.payloads] == net.predict(x).tolist()


def test_the_planner_balances_conv_and_dense_layers():
    """A cycle target gives every layer (a window-fed convolution and a dense layer alike) the
    cheapest folding that meets it; a LUT budget, the fastest plan that fits."""
    from fewmul.compiler.planner import plan_folding

    net = conv_graph(np.random.default_rng(7))
    for target in (64, 120, 400):
        plans = plan_folding(net, "auto", target)
        assert max(p.cycles for p in plans) <= target
    fastest = plan_folding(net, "auto", max_luts=10**6)
    fastest_luts = sum(p.estimate().luts for p in fastest)
    budget = fastest_luts - 1
    cheaper = plan_folding(net, "auto", max_luts=budget)
    assert sum(p.estimate().luts for p in cheaper) <= budget
    assert max(p.cycles for p in cheaper) > max(p.cycles for p in fastest)
    # the window's grid (8x8 padded) bounds the first layer: 64 cycles at best
    assert max(p.cycles for p in fastest) == 64
