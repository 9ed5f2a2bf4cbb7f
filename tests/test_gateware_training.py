# amaranth: UnusedElaboratable=no
"""Amaranth-simulator tests of the on-chip training units against NumPy."""

import numpy as np
import pytest
from amaranth.hdl import Fragment, Module
from amaranth.sim import Simulator

from fewmul.arith.onchip import LFSR_TAPS, LFSR_WIDTH, OnChipConfig
from fewmul.gateware.training import (BarrelShifter, DeltaBackprop, HingeError, Lfsr,
                                      OnChipTrainer, QbpRounder, RowDot, RowSweep, WeightUpdate)
from fewmul.nn.onchip import Lfsr as GoldenLfsr
from fewmul.nn.onchip import OnChipNet, qbp_exponents, rshift_round


def run(dut, testbench, clocked=False):
    sim = Simulator(dut)
    if clocked:
        sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()


@pytest.mark.parametrize("width,max_shift", [(1, 0), (5, 3), (11, 7), (8, 12)])
def test_barrel_shifter_rounds_to_nearest(width, max_shift):
    dut = BarrelShifter(width, max_shift)
    rng = np.random.default_rng(width)
    values = rng.integers(0, 1 << width, 300)
    amounts = rng.integers(0, max_shift + 1, 300)

    async def testbench(ctx):
        for v, a in zip(values, amounts):
            ctx.set(dut.value, int(v))
            ctx.set(dut.amount, int(a))
            assert ctx.get(dut.result) == int(rshift_round(v, a)), (v, a)

    run(dut, testbench)


def test_barrel_shifter_rejects_bad_width():
    with pytest.raises(TypeError, match="Width must be a positive integer, not 0"):
        BarrelShifter(0, 3)
    with pytest.raises(TypeError, match="Maximum shift must be a non-negative integer"):
        BarrelShifter(4, -1)


def test_lfsr_matches_golden_sequence():
    dut = Lfsr(width=LFSR_WIDTH, taps=LFSR_TAPS, seed=0x1234567, bits=3)
    golden = GoldenLfsr(0x1234567)
    rng = np.random.default_rng(0)

    async def testbench(ctx):
        for _ in range(200):
            advance = bool(rng.random() < 0.7)
            ctx.set(dut.advance, advance)
            if advance:
                assert ctx.get(dut.bits) == golden.bits(3)
            await ctx.tick()

    run(dut, testbench, clocked=True)


@pytest.mark.parametrize("bits", [1, 3, 4])
def test_qbp_rounder_matches_numpy(bits):
    dut = QbpRounder(bits)

    async def testbench(ctx):
        for q in range(1 << bits):
            for r in range(1 << max(bits - 1, 1)):
                ctx.set(dut.q, q)
                ctx.set(dut.random, r)
                assert ctx.get(dut.zero) == (q == 0)
                if q:
                    assert ctx.get(dut.exponent) == int(qbp_exponents([q], [r])[0])

    run(dut, testbench)


@pytest.mark.parametrize("kind,bits", [("bipolar", 1), ("unsigned", 1), ("unsigned", 4)])
def test_row_dot_matches_numpy(kind, bits):
    n = 23
    dut = RowDot(n, input_kind=kind, input_bits=bits)
    rng = np.random.default_rng(bits)

    async def testbench(ctx):
        for _ in range(100):
            signs = rng.integers(0, 2, n)
            x = rng.integers(0, 1 << bits, n)
            ctx.set(dut.signs, int(sum(int(b) << j for j, b in enumerate(signs))))
            ctx.set(dut.x, [int(v) for v in x])
            xv = 2 * x - 1 if kind == "bipolar" else x
            assert ctx.get(dut.sum) == int((2 * signs - 1) @ xv)

    run(dut, testbench)


def test_hinge_error_matches_numpy():
    dut = HingeError(64, 4)

    async def testbench(ctx):
        for s in range(-64, 65):
            for target in (0, 1):
                ctx.set(dut.score, s)
                ctx.set(dut.target, target)
                t = 1 if target else -1
                assert ctx.get(dut.delta) == t * max(0, 16 - t * s)

    run(dut, testbench)


def test_delta_backprop_matches_numpy():
    units, rows, bound = 17, 10, 80
    dut = DeltaBackprop(units, delta_bound=bound, rows=rows)
    rng = np.random.default_rng(1)

    async def testbench(ctx):
        for trial in range(5):
            signs = rng.integers(0, 2, (rows, units))
            delta = rng.integers(-bound, bound + 1, rows)
            if trial == 0:
                delta[:], signs[:] = bound, 1           # the extreme sum
            ctx.set(dut.clear, 1)
            await ctx.tick()
            ctx.set(dut.clear, 0)
            for i in range(rows):
                ctx.set(dut.en, 1)
                ctx.set(dut.signs, int(sum(int(b) << j for j, b in enumerate(signs[i]))))
                ctx.set(dut.delta, int(delta[i]))
                await ctx.tick()
                ctx.set(dut.en, 0)
                if rng.random() < 0.3:               # idle cycles keep the sums
                    await ctx.tick()
            assert ctx.get(dut.acc) == ((2 * signs - 1).T @ delta).tolist()

    run(dut, testbench, clocked=True)


@pytest.mark.parametrize("max_shift,shared", [(0, False), (3, False), (7, False), (3, True)])
def test_weight_update_matches_numpy(max_shift, shared):
    lanes, wbits, bound = 13, 6, 800
    dut = WeightUpdate(lanes, weight_bits=wbits, delta_bound=bound, max_shift=max_shift,
                       shared=shared)
    w0 = 1 << wbits
    rng = np.random.default_rng(max_shift)

    async def testbench(ctx):
        for _ in range(150):
            w = rng.integers(-w0, w0 + 1, lanes)
            delta = int(rng.integers(-bound, bound + 1)) >> int(rng.integers(0, 8))
            amount = rng.integers(0, max_shift + 1, lanes)
            if shared:
                amount[:] = amount[0]
            negate, skip = rng.integers(0, 2, lanes), rng.integers(0, 2, lanes)
            ctx.set(dut.weights, [int(v) for v in w])
            ctx.set(dut.delta, delta)
            ctx.set(dut.amount, int(amount[0]) if shared else [int(v) for v in amount])
            ctx.set(dut.negate, int(sum(int(b) << k for k, b in enumerate(negate))))
            ctx.set(dut.skip, int(sum(int(b) << k for k, b in enumerate(skip))))
            sign = np.where(negate == 1, -1, 1) * np.where(skip == 1, 0, 1)
            want = np.clip(w + sign * rshift_round(delta, amount), -w0, w0)
            assert ctx.get(dut.result) == want.tolist()

    run(dut, testbench)


def test_row_sweep_timing():
    dut = RowSweep(4)

    async def testbench(ctx):
        await ctx.tick()
        ctx.set(dut.start, 1)
        assert ctx.get(dut.addr) == 0
        await ctx.tick()
        ctx.set(dut.start, 0)
        seen = []
        for cycle in range(6):
            if ctx.get(dut.valid):
                seen.append((ctx.get(dut.index), ctx.get(dut.last)))
            await ctx.tick()
        assert seen == [(0, 0), (1, 0), (2, 0), (3, 1)]

    run(dut, testbench, clocked=True)


def test_trainer_is_sized_from_the_config():
    cfg = OnChipConfig(inputs=20, hidden=6, classes=4, input_bits=3, lr_shift1=3,
                       score_shift=2, lr_decay_steps=5, lr_decay_max=2)
    net = OnChipNet.init(cfg)
    dut = OnChipTrainer(cfg, net.w1, net.w2)
    assert dut.fwd1.bound == cfg.s1_bound and dut.fwd2.bound == cfg.s2_bound
    assert dut.hinge.delta_bound == cfg.d2_bound and dut.backprop.acc_bound == cfg.d1_bound
    assert dut.max_extra == cfg.max_lr_extra == 2
    assert dut.lfsr.width == LFSR_WIDTH and dut.lfsr.taps == LFSR_TAPS
    assert dut.lfsr.seed == cfg.lfsr_seed and dut.lfsr.n_bits == cfg.random_bits
    Fragment.get(dut, None)


def test_trainer_rejects_a_bad_config_or_weights():
    cfg = OnChipConfig(inputs=12, hidden=8, classes=3)
    net = OnChipNet.init(cfg)
    with pytest.raises(TypeError, match="Configuration must be an OnChipConfig, not"):
        OnChipTrainer(cfg.to_dict(), net.w1, net.w2)
    with pytest.raises(ValueError, match=r"w1 must have shape \(8, 12\), not \(8, 11\)"):
        OnChipTrainer(cfg, net.w1[:, 1:], net.w2)
    with pytest.raises(ValueError, match=r"w2 must have shape \(3, 8\), not \(4, 8\)"):
        OnChipTrainer(cfg, net.w1, np.concatenate([net.w2, net.w2[:1]]))
    with pytest.raises(ValueError, match=r"w2 must lie in \[-64, 64\], found 65"):
        OnChipTrainer(cfg, net.w1, np.where(net.w2 == net.w2.max(), 65, net.w2))


@pytest.mark.parametrize("inputs,hidden,classes", [(12, 8, 3), (20, 6, 4)])
def test_trainer_matches_golden_model_step_by_step(inputs, hidden, classes):
    cfg = OnChipConfig(inputs=inputs, hidden=hidden, classes=classes, weight_bits=4,
                       gate_shift=5, lr_shift1=5, lr_shift2=1, score_shift=2,
                       lr_decay_steps=4, lr_decay_max=2)
    net = OnChipNet.init(cfg)
    dut = OnChipTrainer(cfg, net.w1, net.w2)
    rng = np.random.default_rng(inputs)
    samples = [(rng.integers(0, 16, inputs) * (rng.random(inputs) < 0.7),
                int(rng.integers(classes))) for _ in range(12)]

    async def testbench(ctx):
        hw1, hw2 = net.w1.copy(), net.w2.copy()
        ctx.set(dut.o.ready, 1)
        for q, label in samples:
            ctx.set(dut.i.valid, 1)
            ctx.set(dut.i.payload, {"pixels": [int(v) for v in q], "label": label})
            await ctx.tick().until(dut.i.ready)
            ctx.set(dut.i.valid, 0)
            trace = net.step(q, label)
            cycles = 1
            while not ctx.get(dut.o.valid):
                if ctx.get(dut.wb.valid):
                    row = ctx.get(dut.wb.payload)
                    target = hw2 if row.layer else hw1
                    target[row.row] = [row.weights[k] for k in range(target.shape[1])]
                await ctx.tick()
                cycles += 1
            assert cycles == dut.latency
            assert ctx.get(dut.o.payload.prediction) == trace.prediction
            np.testing.assert_array_equal(hw1, net.w1)
            np.testing.assert_array_equal(hw2, net.w2)
            await ctx.tick()

    run(dut, testbench, clocked=True)
