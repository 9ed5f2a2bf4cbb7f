"""The integer golden model of the on-chip trainer (fewmul.nn.onchip) and its configuration."""

import json
from fractions import Fraction
from math import floor

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from fewmul.arith.onchip import LFSR_TAPS, LFSR_WIDTH, OnChipConfig
from fewmul.nn import onchip
from fewmul.nn.config import DataConfig
from fewmul.nn.data import load_dataset
from fewmul.nn.onchip import (FloatTwin, Lfsr, OnChipNet, effective_weights, qbp_exponents,
                              rshift_round, train_order)


# -- random source, rounding -------------------------------------------------------------

def _naive_lfsr(seed: int, n: int, width: int = LFSR_WIDTH, taps=LFSR_TAPS):
    """The LFSR stepped one bit at a time, as the hardware does: (bits, final state)."""
    state, out = seed, []
    for _ in range(n):
        b = 0
        for t in taps:
            b ^= (state >> (t - 1)) & 1
        state = ((state << 1) | b) & ((1 << width) - 1)
        out.append(b)
    return out, state


def test_lfsr_is_a_maximal_length_sequence_over_a_window():
    lfsr = Lfsr(1)
    bits = lfsr.bits_array(100_000 + LFSR_WIDTH)
    # Every window of 32 consecutive outputs is a state; no state repeats in a long run.
    words = np.zeros(100_000, np.uint64)
    for i in range(LFSR_WIDTH):
        words |= bits[i:i + 100_000].astype(np.uint64) << np.uint64(i)
    assert len(np.unique(words)) == 100_000
    ones = Lfsr(0xDEADBEEF).bits(32_000)
    assert abs(bin(ones).count("1") / 32_000 - 0.5) < 0.02


@pytest.mark.parametrize("seed", [1, 0x1D872B41, 0xFFFFFFFF])
def test_lfsr_blocks_equal_the_bit_by_bit_sequence(seed, monkeypatch):
    want, state = _naive_lfsr(seed, 200_000)
    rng = np.random.default_rng(seed & 0xFFFF)
    for block in (64, 1 << 16):             # small blocks move the buffer often
        monkeypatch.setattr(Lfsr, "BLOCK", block)
        lfsr, got = Lfsr(seed), []
        while len(got) < len(want):
            n = min(int(rng.integers(0, 5000)), len(want) - len(got))
            got.extend(lfsr.bits_array(n).tolist())
            if rng.random() < 0.05:
                lfsr = lfsr.copy()
        assert got == want
        assert lfsr.state == state
    assert Lfsr(seed).state == seed
    one = Lfsr(seed)
    assert [one.step() for _ in range(40)] == want[:40]


def test_lfsr_rejects_zero_seed():
    with pytest.raises(ValueError, match="non-zero"):
        Lfsr(0)


@pytest.mark.parametrize("bits", [1, 2, 4, 6])
def test_qbp_exponents_are_unbiased_over_all_random_draws(bits):
    q = np.arange(1 << bits)
    draws = np.arange(1 << max(bits - 1, 0))
    e = np.stack([qbp_exponents(q, np.full_like(q, r)) for r in draws])
    mean = np.where(q > 0, (2.0 ** e).mean(0), 0)
    np.testing.assert_array_equal(mean, q)  # E[2^e] = q exactly
    floor_ = np.floor(np.log2(np.maximum(q, 1)))
    assert ((e == floor_) | (e == floor_ + 1)).all()


def _round_shift(value: int, shift: int) -> int:
    """``value / 2**shift`` rounded half away from zero, with exact fractions."""
    mag = floor(Fraction(abs(int(value)), 2 ** shift) + Fraction(1, 2))
    return -mag if value < 0 else mag


@given(st.lists(st.integers(-5000, 5000), min_size=1, max_size=50), st.integers(0, 12))
def test_rshift_round_is_round_half_away_from_zero(values, shift):
    want = [_round_shift(v, shift) for v in values]
    np.testing.assert_array_equal(rshift_round(np.array(values), shift), want)


def test_effective_weights_binary_and_ternary_thresholds():
    w = np.arange(-64, 65)
    binary = effective_weights(w, OnChipConfig())
    np.testing.assert_array_equal(binary, np.where(w >= 0, 1, -1))       # sign(0) = +1
    ternary = effective_weights(w, OnChipConfig(weights="ternary"))
    assert ternary[w == 32] == 0 and ternary[w == -32] == 0               # |w| = W0/2: zero
    assert ternary[w == 33] == 1 and ternary[w == -33] == -1              # strictly above
    np.testing.assert_array_equal(ternary, np.sign(w) * (np.abs(w) > 32))
    assert OnChipConfig(weights="ternary", weight_bits=3).ternary_threshold == 4


# -- configuration -----------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, message", [
    ({"lr_shifts": (3, 2)}, r"lr_shifts\[0\] must be at least input_bits=4"),
    ({"sizes": (64, 0, 10)}, r"sizes must be positive integers, not \(64, 0, 10\)"),
    ({"sizes": (64, 10)}, "at least one hidden layer"),
    ({"sizes": (64, 32, 32, 10)}, r"gate_shifts must have one entry per hidden layer \(2 for"),
    ({"lr_shifts": (6, 2, 2)}, r"lr_shifts must have one entry per layer with weights \(2 for"),
    ({"backprop_shifts": (-1,)}, "backprop_shifts must be non-negative integers"),
    ({"gate_shifts": 6}, "gate_shifts must be a tuple or list of integers, not 6"),
    ({"weights": "float"}, "weights must be one of binary, ternary, not 'float'"),
    ({"input_bits": 9}, "input_bits must be between 1 and 8, not 9"),
    ({"batch_shift": -1}, "batch_shift must be a non-negative integer, not -1"),
    ({"weight_bits": True}, "weight_bits must be an integer, not True"),
    ({"lfsr_seed": 1 << LFSR_WIDTH}, f"lfsr_seed must be a non-zero {LFSR_WIDTH}-bit"),
])
def test_config_rejects_bad_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        OnChipConfig(**kwargs)


def test_config_is_defined_once_and_round_trips_through_json():
    assert onchip.OnChipConfig is OnChipConfig      # the golden model's is the shared one
    cfg = OnChipConfig(sizes=[12, 9, 5, 4], input_bits=3, weights="ternary", gate_shifts=[5, 3],
                       backprop_shifts=[1, 2], lr_shifts=[4, 2, 1], batch_shift=2,
                       lr_decay_steps=0, lfsr_seed=5)
    assert cfg.sizes == (12, 9, 5, 4) and cfg.lr_shifts == (4, 2, 1)     # lists stored as tuples
    again = OnChipConfig(**json.loads(json.dumps(cfg.to_dict())))      # as train.json keeps it
    assert again == cfg and hash(again) == hash(cfg)
    assert cfg.layers == 3 and cfg.shapes == ((9, 12), (5, 9), (4, 5)) and cfg.batch == 4
    assert cfg.max_lr_extra == 0 and OnChipConfig().max_lr_extra == 2


def test_config_bounds_by_hand():
    cfg = OnChipConfig(sizes=(12, 9, 5, 4), input_bits=3, score_shift=3, gate_shifts=(5, 3),
                       backprop_shifts=(1, 2), lr_shifts=(4, 2, 1), batch_shift=2,
                       lr_decay_steps=10, lr_decay_max=2)
    assert cfg.s_bounds == (12 * 7, 9, 5)
    # d_3 = margin 8 + 5; e_2 = 4 * 13 = 52, d_2 = round(52 / 4) = 13; e_1 = 5 * 13 = 65,
    # d_1 = round(65 / 2) = 33 (32.5 rounds away from zero).
    assert cfg.d_bounds == (33, 13, 13) and cfg.e_bounds == (65, 52)
    assert cfg.update_shift_ranges == ((1, 6), (2, 4), (1, 3))
    assert cfg.update_bounds == (17, 3, 7)          # round(33/2), round(13/4), round(13/2)
    assert cfg.acc_bounds == (68, 12, 28)
    # One hidden layer, today's scales: d_2 <= 16 + 64, e_1 <= 10 * 80.
    assert OnChipConfig().d_bounds == (800, 80) and OnChipConfig().e_bounds == (800,)


# -- the step against an explicit loop reference -----------------------------------------

def _t(cfg, w) -> int:
    if cfg.weights == "ternary":
        return (1 if w > 0 else -1) if abs(w) > cfg.w0 // 2 else 0
    return 1 if w >= 0 else -1


def _reference_sample(cfg, weights, acc, q, label, lfsr_state, done):
    """One training sample with loops, neuron by neuron and weight by weight.

    Returns the new weights, batch sums and LFSR state, the errors ``d`` and the prediction.
    """
    layers = cfg.layers
    xs, sums, gates = [[int(v) for v in q]], [], []
    for l in range(layers):
        w = weights[l]
        s = [sum(_t(cfg, w[j][k]) * xs[-1][k] for k in range(len(xs[-1]))) for j in range(len(w))]
        sums.append(s)
        if l < layers - 1:
            xs.append([1 if v >= 0 else -1 for v in s])
            gates.append([abs(v) < 2 ** cfg.gate_shifts[l] for v in s])
    d = [None] * layers
    d[-1] = []
    for i, s in enumerate(sums[-1]):
        t = 1 if i == label else -1
        d[-1].append(t * max(0, 2 ** cfg.score_shift - t * s))
    for l in range(layers - 2, -1, -1):
        above = weights[l + 1]
        e = [sum(_t(cfg, above[i][j]) * d[l + 1][i] for i in range(len(above)))
             for j in range(len(above[0]))]
        d[l] = [_round_shift(e[j], cfg.backprop_shifts[l]) if gates[l][j] else 0
                for j in range(len(e))]
    # QBP exponents from the LFSR stepped bit by bit, input_bits - 1 bits a pixel, in order.
    bits, lfsr_state = _naive_lfsr(lfsr_state, len(q) * cfg.random_bits)
    k = cfg.random_bits
    random = [sum(bits[p * k + i] << i for i in range(k)) for p in range(len(q))]
    exps = qbp_exponents(q, random)
    x = min(done // cfg.lr_decay_steps, cfg.lr_decay_max) if cfg.lr_decay_steps else 0
    acc = [a.copy() for a in acc]
    for l in range(layers):
        rows, cols = acc[l].shape
        for j in range(rows):
            for kk in range(cols):
                if l == 0:
                    u = _round_shift(d[0][j], cfg.lr_shifts[0] + x - int(exps[kk])) if q[kk] else 0
                else:
                    u = xs[l][kk] * _round_shift(d[l][j], cfg.lr_shifts[l] + x)
                acc[l][j, kk] += u
    weights = [w.copy() for w in weights]
    if (done + 1) % (2 ** cfg.batch_shift) == 0:
        for l in range(layers):
            rows, cols = acc[l].shape
            for j in range(rows):
                for kk in range(cols):
                    w = weights[l][j, kk] + _round_shift(acc[l][j, kk], cfg.batch_shift)
                    weights[l][j, kk] = min(max(w, -cfg.w0), cfg.w0)
            acc[l][:] = 0
    prediction = sums[-1].index(max(sums[-1]))
    return weights, acc, lfsr_state, d, prediction


CASES = [(kind, batch_shift, hidden, bits)
         for kind in ("binary", "ternary") for batch_shift in (0, 1, 2) for hidden in (1, 2, 3)
         for bits in [(1, 3, 8)[(batch_shift + hidden) % 3]]]


@pytest.mark.parametrize("kind, batch_shift, hidden, input_bits", CASES)
def test_step_matches_an_explicit_loop_reference(kind, batch_shift, hidden, input_bits):
    rng = np.random.default_rng(batch_shift * 10 + hidden + (kind == "ternary") * 100)
    sizes = (int(rng.integers(5, 13)), *rng.integers(3, 8, hidden).tolist(), 4)
    cfg = OnChipConfig(sizes=sizes, input_bits=input_bits, weights=kind, weight_bits=3,
                       score_shift=int(rng.integers(1, 4)),
                       gate_shifts=rng.integers(2, 8, hidden).tolist(),
                       backprop_shifts=rng.integers(0, 3, hidden).tolist(),
                       lr_shifts=[input_bits + int(rng.integers(0, 3)),
                                  *rng.integers(0, 3, hidden).tolist()],
                       lr_decay_steps=5, lr_decay_max=2, batch_shift=batch_shift,
                       seed=int(rng.integers(100)), lfsr_seed=int(rng.integers(1, 1 << 32)))
    net = OnChipNet.init(cfg)
    weights, acc, state = [w.copy() for w in net.weights], [a.copy() for a in net.acc], \
        cfg.lfsr_seed
    applied = 0
    for done in range(16):
        q = rng.integers(0, 1 << input_bits, cfg.sizes[0])
        q[rng.random(cfg.sizes[0]) < 0.2] = 0
        label = int(rng.integers(cfg.sizes[-1]))
        weights, acc, state, d, prediction = _reference_sample(cfg, weights, acc, q, label,
                                                               state, done)
        trace = net.step(q, label)
        assert trace.prediction == prediction
        for mine, want in zip(trace.d, d):
            np.testing.assert_array_equal(mine, want)
        for mine, want in zip(net.weights, weights):
            np.testing.assert_array_equal(mine, want)
        for mine, want in zip(net.acc, acc):
            np.testing.assert_array_equal(mine, want)
        assert net.lfsr.state == state and net.steps == done + 1
        assert trace.applied == ((done + 1) % cfg.batch == 0)
        applied += trace.applied
    assert applied == 16 // cfg.batch
    assert all(np.abs(w).max() <= cfg.w0 for w in net.weights)


def _todays_step(w1, w2, q, label, exps, step, lr1, lr2, gate, score, w0, decay, decay_max):
    """Today's one-hidden-layer step (batch 1, binary, no back-propagation shift), looped."""
    w1, w2 = w1.copy(), w2.copy()
    sg = lambda v: 1 if v >= 0 else -1
    s1 = [sum(sg(w1[j, k]) * int(q[k]) for k in range(w1.shape[1])) for j in range(w1.shape[0])]
    h = [sg(s) for s in s1]
    s2 = [sum(sg(w2[i, j]) * h[j] for j in range(len(h))) for i in range(w2.shape[0])]
    d2 = [(1 if i == label else -1) * max(0, (1 << score) - (1 if i == label else -1) * s2[i])
          for i in range(len(s2))]
    g = [sum(sg(w2[i, j]) * d2[i] for i in range(len(d2))) for j in range(len(h))]
    d1 = [g[j] if abs(s1[j]) < (1 << gate) else 0 for j in range(len(h))]
    extra = min(step // decay, decay_max)
    for i in range(w2.shape[0]):
        for j in range(w2.shape[1]):
            w2[i, j] = np.clip(w2[i, j] + h[j] * _round_shift(d2[i], lr2 + extra), -w0, w0)
    for j in range(w1.shape[0]):
        for k in range(w1.shape[1]):
            if q[k]:
                w1[j, k] = np.clip(w1[j, k] + _round_shift(d1[j], lr1 + extra - int(exps[k])),
                                   -w0, w0)
    return w1, w2


def test_batch_one_is_todays_step():
    cfg = OnChipConfig(sizes=(12, 9, 4), weight_bits=4, gate_shifts=(5,), lr_shifts=(5, 1),
                       score_shift=3, lr_decay_steps=7, lr_decay_max=2)
    net = OnChipNet.init(cfg)
    rng = np.random.default_rng(3)
    for step in range(30):
        q = rng.integers(0, 16, cfg.sizes[0])
        label = int(rng.integers(cfg.sizes[-1]))
        w1, w2 = (w.copy() for w in net.weights)
        trace = net.step(q, label)
        rw1, rw2 = _todays_step(w1, w2, q, label, trace.exponents, step, 5, 1, 5, 3, cfg.w0, 7, 2)
        np.testing.assert_array_equal(net.weights[0], rw1)
        np.testing.assert_array_equal(net.weights[1], rw2)
        assert trace.applied


# -- properties --------------------------------------------------------------------------

def _deep_config(**kwargs) -> OnChipConfig:
    base = dict(sizes=(16, 12, 8, 5), input_bits=4, gate_shifts=(6, 3), backprop_shifts=(1, 0),
                lr_shifts=(6, 2, 2), lr_decay_steps=0, weight_bits=4)
    return OnChipConfig(**{**base, **kwargs})


def _samples(cfg, n, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 1 << cfg.input_bits, (n, cfg.sizes[0])), rng.integers(cfg.sizes[-1], size=n)


def _state(net):
    return ([w.copy() for w in net.weights], [a.copy() for a in net.acc], net.lfsr.state,
            net.steps)


def _same_state(a, b):
    return (all(np.array_equal(x, y) for x, y in zip(a[0], b[0]))
            and all(np.array_equal(x, y) for x, y in zip(a[1], b[1])) and a[2:] == b[2:])


@pytest.mark.parametrize("batch_shift", [0, 2])
def test_inference_requests_change_nothing(batch_shift):
    cfg = _deep_config(batch_shift=batch_shift, weights="ternary")
    net = OnChipNet.init(cfg)
    q, y = _samples(cfg, 7)
    for i in range(5):
        net.step(q[i], y[i])
    before = _state(net)
    predictions = [net.infer(x) for x in q]
    assert _same_state(_state(net), before)
    np.testing.assert_array_equal(predictions, net.predict(q))
    # The same prediction as the forward pass of a training sample on the same weights.
    assert net.copy().step(q[5], y[5]).prediction == predictions[5]


def test_a_partial_batch_is_not_applied():
    cfg = _deep_config(batch_shift=2)
    net = OnChipNet.init(cfg)
    start = [w.copy() for w in net.weights]
    q, y = _samples(cfg, 8, seed=4)
    for i in range(3):
        assert not net.step(q[i], y[i]).applied
        assert all(np.array_equal(w, s) for w, s in zip(net.weights, start))
    assert any(np.abs(a).sum() for a in net.acc)           # the sums are kept
    # The batch uses the weights of its start: a copy that saw only sample 3 agrees on it.
    alone = OnChipNet(cfg, start, net.lfsr.copy(), steps=3)
    assert np.array_equal(alone.step(q[3], y[3]).d[0], net.copy().step(q[3], y[3]).d[0])
    assert net.step(q[3], y[3]).applied
    assert not all(np.array_equal(w, s) for w, s in zip(net.weights, start))
    assert not any(np.abs(a).sum() for a in net.acc)


def test_learning_rate_decay_counts_training_samples_only():
    cfg = _deep_config(lr_decay_steps=3, lr_decay_max=2)
    assert [cfg.lr_extra(n) for n in range(10)] == [0, 0, 0, 1, 1, 1, 2, 2, 2, 2]
    q, y = _samples(cfg, 12, seed=5)
    net, interrupted = OnChipNet.init(cfg), OnChipNet.init(cfg)
    for i in range(12):
        net.step(q[i], y[i])
        interrupted.infer(q[(i + 3) % 12])
        interrupted.step(q[i], y[i])
    assert _same_state(_state(net), _state(interrupted)) and net.steps == 12
    # A decayed update is the undecayed one shifted once more (layer 2, no exponent).
    fresh, late = OnChipNet.init(cfg), OnChipNet.init(cfg)
    late.steps = 3
    t = fresh.errors(q[0], y[0])
    t.exponents = fresh.draw_exponents(q[0])
    u_fresh, u_late = fresh.updates(q[0], t), late.updates(q[0], t)
    d = t.d[1]
    np.testing.assert_array_equal(u_fresh[1], np.multiply.outer(rshift_round(d, 2), t.h[0]))
    np.testing.assert_array_equal(u_late[1], np.multiply.outer(rshift_round(d, 3), t.h[0]))
    assert np.abs(u_fresh[1]).sum() > np.abs(u_late[1]).sum() > 0


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 2), st.sampled_from(["binary", "ternary"]), st.integers(1, 8),
       st.integers(0, 2**16))
def test_values_stay_within_the_configured_bounds(batch_shift, kind, input_bits, seed):
    cfg = OnChipConfig(sizes=(10, 7, 6, 3), input_bits=input_bits, weights=kind, weight_bits=3,
                       score_shift=2, gate_shifts=(10, 10), backprop_shifts=(0, 1),
                       lr_shifts=(input_bits, 0, 0), lr_decay_steps=0, batch_shift=batch_shift,
                       seed=seed)
    net = OnChipNet.init(cfg)
    rng = np.random.default_rng(seed)
    for _ in range(12):
        q = rng.integers(0, 1 << input_bits, cfg.sizes[0])
        trace = net.errors(q, int(rng.integers(3)))
        trace.exponents = net.draw_exponents(q)
        updates = net.updates(q, trace)
        for name, values in (("s", trace.s), ("d", trace.d), ("e", trace.e), ("update", updates)):
            bounds = getattr(cfg, f"{name}_bounds")
            assert all(np.abs(v).max() <= b for v, b in zip(values, bounds)), name
        net.lfsr = Lfsr(net.lfsr.state)         # step from here on: draws again the same way
        net.step(q, trace.prediction)
        assert all(np.abs(a).max() <= b for a, b in zip(net.acc, cfg.acc_bounds))


def test_copy_is_independent():
    cfg = _deep_config(batch_shift=1)
    net = OnChipNet.init(cfg)
    q, y = _samples(cfg, 4, seed=6)
    net.step(q[0], y[0])
    twin = net.copy()
    for i in range(1, 4):
        net.step(q[i], y[i])
    assert twin.steps == 1 and twin.acc[0].any()
    for i in range(1, 4):
        twin.step(q[i], y[i])
    assert _same_state(_state(net), _state(twin))


def test_float_twin_takes_the_same_draws_and_differs_only_by_rounding():
    cfg = _deep_config(batch_shift=1, lr_shifts=(7, 3, 3))
    net = OnChipNet.init(cfg)
    twin = FloatTwin(net)
    q, y = _samples(cfg, 2, seed=7)
    for i in range(2):
        a, b = net.step(q[i], y[i]), twin.step(q[i], y[i])
        np.testing.assert_array_equal(a.exponents, b.exponents)
        np.testing.assert_array_equal(a.d[-1], b.d[-1])     # same weights so far: same scores
    assert net.lfsr.state == twin.lfsr.state and twin.steps == 2
    # After one batch the weights differ by the rounding of the shifts only.
    for w, f, w_start in zip(net.weights, twin.weights, OnChipNet.init(cfg).weights):
        assert np.abs(w - f).max() <= 2.0 and f.dtype == np.float64
        assert not np.array_equal(w, w_start)              # every layer learnt something
        assert (f != np.rint(f)).any()                     # and the twin did not round it


def test_net_checks_its_weights():
    cfg = _deep_config()
    net = OnChipNet.init(cfg)
    with pytest.raises(ValueError, match="Expected 3 weight arrays"):
        OnChipNet(cfg, net.weights[:2])
    with pytest.raises(ValueError, match=r"Weights of layer 2 must have shape \(8, 12\)"):
        OnChipNet(cfg, [net.weights[0], net.weights[1].T, net.weights[2]])
    with pytest.raises(ValueError, match=r"must lie in \[-16, 16\]"):
        OnChipNet(cfg, [net.weights[0] * 2, *net.weights[1:]])
    with pytest.raises(ValueError, match="Sample must have 16 pixels"):
        net.step(np.zeros(15, int), 0)
    with pytest.raises(ValueError, match="Label must be in 0..4"):
        net.step(np.zeros(16, int), 5)


def test_init_is_uniform_layer_by_layer_from_the_seed():
    cfg = _deep_config(seed=11)
    rng = np.random.default_rng(11)
    for w, shape in zip(OnChipNet.init(cfg).weights, cfg.shapes):
        np.testing.assert_array_equal(w, rng.integers(-16, 17, size=shape))


# -- learning ----------------------------------------------------------------------------

def test_training_learns_digits_and_stays_close_to_the_float_twin():
    data = load_dataset(DataConfig())
    cfg = OnChipConfig()
    net = OnChipNet.init(cfg)
    twin = FloatTwin(net)
    before = net.accuracy(data.test.x, data.test.y)
    for i in train_order(len(data.train), 500, 0):
        net.step(data.train.x[i], data.train.y[i])
        twin.step(data.train.x[i], data.train.y[i])
    after = net.accuracy(data.test.x, data.test.y)
    assert before < 0.3 and after > 0.6
    # Same random draws, only the rounding differs: most binary weights agree.
    agree = np.mean(np.concatenate([((w >= 0) == (f >= 0)).ravel()
                                    for w, f in zip(net.weights, twin.weights)]))
    assert agree > 0.7
    assert abs(twin.accuracy(data.test.x, data.test.y) - after) < 0.25
