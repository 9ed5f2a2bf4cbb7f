"""The integer golden model of the on-chip trainer (fewmul.nn.onchip)."""

import numpy as np
import pytest
from hypothesis import given, strategies as st

from fewmul.arith.onchip import LFSR_WIDTH, OnChipConfig
from fewmul.nn import onchip
from fewmul.nn.config import DataConfig
from fewmul.nn.data import load_dataset
from fewmul.nn.onchip import FloatTwin, Lfsr, OnChipNet, qbp_exponents, rshift_round, train_order


def test_lfsr_is_a_maximal_length_sequence_over_a_window():
    lfsr = Lfsr(1)
    states = set()
    for _ in range(100_000):
        lfsr.step()
        states.add(lfsr.state)
    assert len(states) == 100_000            # no repeated state in a long window
    bits = Lfsr(0xDEADBEEF).bits(32_000)
    assert abs(bin(bits).count("1") / 32_000 - 0.5) < 0.02


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
    floor = np.floor(np.log2(np.maximum(q, 1)))
    assert ((e == floor) | (e == floor + 1)).all()


@given(st.lists(st.integers(-5000, 5000), min_size=1, max_size=50), st.integers(0, 12))
def test_rshift_round_is_round_half_away_from_zero(values, shift):
    a = np.array(values)
    exact = a / 2.0 ** shift
    want = np.sign(exact) * np.floor(np.abs(exact) + 0.5)
    np.testing.assert_array_equal(rshift_round(a, shift), want)


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match=r"lr_shifts\[0\] must be at least input_bits=4"):
        OnChipConfig(lr_shifts=(3, 2))
    with pytest.raises(ValueError, match=r"sizes must be positive integers, not \(64, 0, 10\)"):
        OnChipConfig(sizes=(64, 0, 10))
    with pytest.raises(ValueError, match=f"lfsr_seed must be a non-zero {LFSR_WIDTH}-bit"):
        OnChipConfig(lfsr_seed=1 << LFSR_WIDTH)


def test_config_is_defined_once_and_round_trips():
    assert onchip.OnChipConfig is OnChipConfig      # the golden model's is the shared one
    cfg = OnChipConfig(inputs=12, hidden=9, lr_decay_steps=0, lfsr_seed=5)
    assert OnChipConfig(**cfg.to_dict()) == cfg     # as a build's train.json stores it
    assert cfg.max_lr_extra == 0 and OnChipConfig().max_lr_extra == 2
    assert (cfg.s1_bound, cfg.s2_bound, cfg.d2_bound, cfg.d1_bound) == (12 * 15, 9, 25, 250)


def _reference_step(cfg, w1, w2, q, label, exps, step):
    """An explicit loop version of one step, neuron by neuron and weight by weight."""
    w1, w2 = w1.copy(), w2.copy()
    sg = lambda v: 1 if v >= 0 else -1
    s1 = [sum(sg(w1[j, k]) * int(q[k]) for k in range(cfg.inputs)) for j in range(cfg.hidden)]
    h = [sg(s) for s in s1]
    s2 = [sum(sg(w2[i, j]) * h[j] for j in range(cfg.hidden)) for i in range(cfg.classes)]
    d2 = []
    for i in range(cfg.classes):
        t = 1 if i == label else -1
        d2.append(t * max(0, (1 << cfg.score_shift) - t * s2[i]))
    g = [sum(sg(w2[i, j]) * d2[i] for i in range(cfg.classes)) for j in range(cfg.hidden)]
    d1 = [g[j] if abs(s1[j]) < (1 << cfg.gate_shift) else 0 for j in range(cfg.hidden)]

    extra = min(step // cfg.lr_decay_steps, cfg.lr_decay_max)

    def shifted(d, s):
        mag = abs(d) / 2 ** (s + extra)
        return int(np.sign(d) * np.floor(mag + 0.5))

    for i in range(cfg.classes):
        for j in range(cfg.hidden):
            w2[i, j] = np.clip(w2[i, j] + h[j] * shifted(d2[i], cfg.lr_shift2), -cfg.w0, cfg.w0)
    for j in range(cfg.hidden):
        for k in range(cfg.inputs):
            if q[k]:
                w1[j, k] = np.clip(w1[j, k] + shifted(d1[j], cfg.lr_shift1 - exps[k]),
                                   -cfg.w0, cfg.w0)
    return w1, w2, d1, d2


def test_step_matches_an_explicit_loop_reference():
    cfg = OnChipConfig(inputs=12, hidden=9, classes=4, weight_bits=4, gate_shift=5,
                       lr_shift1=5, lr_shift2=1, score_shift=3, lr_decay_steps=7, lr_decay_max=2)
    net = OnChipNet.init(cfg)
    rng = np.random.default_rng(3)
    for step in range(30):
        q = rng.integers(0, 16, cfg.inputs)
        label = int(rng.integers(cfg.classes))
        w1, w2 = net.w1.copy(), net.w2.copy()
        trace = net.step(q, label)
        rw1, rw2, d1, d2 = _reference_step(cfg, w1, w2, q, label, trace.exponents, step)
        np.testing.assert_array_equal(trace.d2, d2)
        np.testing.assert_array_equal(trace.d1, d1)
        np.testing.assert_array_equal(net.w1, rw1)
        np.testing.assert_array_equal(net.w2, rw2)
        assert np.abs(net.w1).max() <= cfg.w0


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
    agree = np.mean(np.concatenate([((net.w1 >= 0) == (twin.w1 >= 0)).ravel(),
                                    ((net.w2 >= 0) == (twin.w2 >= 0)).ravel()]))
    assert agree > 0.7
    assert abs(twin.accuracy(data.test.x, data.test.y) - after) < 0.25
