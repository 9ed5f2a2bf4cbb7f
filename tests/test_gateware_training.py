# amaranth: UnusedElaboratable=no
"""Amaranth-simulator tests of the on-chip training units against NumPy."""

import numpy as np
import pytest
from amaranth.hdl import Module
from amaranth.sim import Simulator

from fewmul.gateware.training import (BarrelShifter, DeltaBackprop, HingeError, Lfsr,
                                      OnChipTrainer, QbpRounder, RowDot, RowSweep,
                                      TrainerParams, WeightUpdate)
from fewmul.nn.onchip import Lfsr as GoldenLfsr
from fewmul.nn.onchip import OnChipConfig, OnChipNet, qbp_exponents, rshift_round


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
    dut = Lfsr(width=32, taps=(32, 22, 2, 1), seed=0x1234567, bits=3)
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


@pytest.mark.parametrize("kind,bits", [("bipolar", 1), ("unsigned", 4)])
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


def params_of(cfg: OnChipConfig) -> TrainerParams:
    return TrainerParams(input_bits=cfg.input_bits, weight_bits=cfg.weight_bits,
                         score_shift=cfg.score_shift, gate_shift=cfg.gate_shift,
                         lr_shift1=cfg.lr_shift1, lr_shift2=cfg.lr_shift2,
                         lr_decay_steps=cfg.lr_decay_steps, lr_decay_max=cfg.lr_decay_max,
                         lfsr_seed=cfg.lfsr_seed)


@pytest.mark.parametrize("inputs,hidden,classes", [(12, 8, 3), (20, 6, 4)])
def test_trainer_matches_golden_model_step_by_step(inputs, hidden, classes):
    cfg = OnChipConfig(inputs=inputs, hidden=hidden, classes=classes, weight_bits=4,
                       gate_shift=5, lr_shift1=5, lr_shift2=1, score_shift=2,
                       lr_decay_steps=4, lr_decay_max=2)
    net = OnChipNet.init(cfg)
    dut = OnChipTrainer(net.w1, net.w2, params_of(cfg))
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
