# amaranth: UnusedElaboratable=no
"""Amaranth-simulator tests of the on-chip training units against NumPy."""

import numpy as np
import pytest
from amaranth.hdl import Fragment, Module, Signal, signed
from amaranth.lib import data
from amaranth.sim import Simulator

from fewmul.arith.onchip import LFSR_TAPS, LFSR_WIDTH, OnChipConfig
from fewmul.gateware.training import (BarrelShifter, BatchApply, DeltaBackprop, HingeError,
                                      Lfsr, OnChipTrainer, QbpRounder, RowDot, RowSweep,
                                      WeightUpdate, clip, round_shift,
                                      round_shift_magnitude, step_cycles, weight_masks)
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


def _bits(values) -> int:
    return int(sum(int(b) << j for j, b in enumerate(values)))


def _effective(w, kind, w0):
    """T(w) of hidden weights: the sign, or the ternarization at W0/2 (strict)."""
    if kind == "binary":
        return np.where(w >= 0, 1, -1)
    return np.where(np.abs(w) > w0 // 2, np.sign(w), 0)


@pytest.mark.parametrize("kind,bits,weights,stages", [
    ("bipolar", 1, "binary", 0), ("unsigned", 1, "binary", 1), ("unsigned", 4, "binary", 2),
    ("bipolar", 1, "ternary", 2), ("unsigned", 8, "ternary", 0), ("unsigned", 8, "ternary", 3)])
def test_row_dot_matches_numpy(kind, bits, weights, stages):
    n = 23
    dut = RowDot(n, input_kind=kind, input_bits=bits, weight_kind=weights, stages=stages)
    rng = np.random.default_rng(bits)
    rows = []
    for _ in range(100):
        w = rng.integers(-1, 2, n) if weights == "ternary" else 2 * rng.integers(0, 2, n) - 1
        x = rng.integers(0, 1 << bits, n)
        rows.append((w, x, int(w @ (2 * x - 1 if kind == "bipolar" else x))))

    async def testbench(ctx):
        # A new row every cycle: its sum comes out `stages` cycles later.
        for cycle in range(len(rows) + stages):
            if cycle < len(rows):
                w, x, _ = rows[cycle]
                masks = [w == 1] if weights == "binary" else [w == 1, w == -1]
                ctx.set(dut.masks, [_bits(mask) for mask in masks])
                ctx.set(dut.x, [int(v) for v in x])
            if cycle >= stages:
                assert ctx.get(dut.sum) == rows[cycle - stages][2], cycle
            if stages:
                await ctx.tick()

    run(dut, testbench, clocked=stages > 0)


def test_row_dot_rejects_bad_stages():
    with pytest.raises(TypeError, match="Stages must be a non-negative integer, not -1"):
        RowDot(4, input_kind="bipolar", input_bits=1, stages=-1)


@pytest.mark.parametrize("kind", ["binary", "ternary"])
def test_weight_masks_are_the_effective_weights(kind):
    wbits = 3
    w0 = 1 << wbits
    w = np.arange(-w0, w0 + 1)
    row = Signal(data.ArrayLayout(signed(wbits + 2), len(w)))
    masks = weight_masks(row, len(w), kind, wbits)
    m = Module()
    outs = [Signal(len(w), name=f"mask{i}") for i in range(len(masks))]
    m.d.comb += [o.eq(mask) for o, mask in zip(outs, masks)]

    async def testbench(ctx):
        ctx.set(row, [int(v) for v in w])
        got = np.array([[(ctx.get(o) >> k) & 1 for k in range(len(w))] for o in outs])
        t = _effective(w, kind, w0)
        assert got[0].tolist() == (t == 1).astype(int).tolist()
        if kind == "ternary":
            assert got[1].tolist() == (t == -1).astype(int).tolist()

    run(m, testbench)


@pytest.mark.parametrize("width,shift", [(5, 0), (5, 1), (9, 3), (12, 7)])
def test_round_shift_matches_numpy(width, shift):
    value = Signal(signed(width))
    m = Module()
    out = Signal(signed(width + 1))
    m.d.comb += out.eq(round_shift(value, shift))
    lo, hi = -(1 << (width - 1)), 1 << (width - 1)

    async def testbench(ctx):
        for v in range(lo, hi):
            ctx.set(value, v)
            assert ctx.get(out) == int(rshift_round(v, shift)), v

    run(m, testbench)


def test_hinge_error_matches_numpy():
    dut = HingeError(64, 4)

    async def testbench(ctx):
        for s in range(-64, 65):
            for target in (0, 1):
                ctx.set(dut.score, s)
                ctx.set(dut.target, target)
                t = 1 if target else -1
                want = t * max(0, 16 - t * s)
                assert ctx.get(dut.delta) == want
                assert ctx.get(dut.magnitude) == abs(want)
                assert ctx.get(dut.negative) == (not target)

    run(dut, testbench)


@pytest.mark.parametrize("kind", ["binary", "ternary"])
def test_delta_backprop_matches_numpy(kind):
    units, rows, bound = 17, 10, 80
    dut = DeltaBackprop(units, delta_bound=bound, rows=rows, weight_kind=kind)
    rng = np.random.default_rng(1)

    async def testbench(ctx):
        for trial in range(5):
            if kind == "binary":
                w = 2 * rng.integers(0, 2, (rows, units)) - 1
            else:
                w = rng.integers(-1, 2, (rows, units))
            delta = rng.integers(-bound, bound + 1, rows)
            if trial == 0:
                delta[:], w[:] = bound, 1               # the extreme sum
            ctx.set(dut.clear, 1)
            await ctx.tick()
            ctx.set(dut.clear, 0)
            for i in range(rows):
                ctx.set(dut.en, 1)
                masks = [w[i] == 1] if kind == "binary" else [w[i] == 1, w[i] == -1]
                ctx.set(dut.masks, [_bits(mask) for mask in masks])
                ctx.set(dut.delta, int(delta[i]))
                await ctx.tick()
                ctx.set(dut.en, 0)
                if rng.random() < 0.3:               # idle cycles keep the sums
                    await ctx.tick()
            want = (w.T @ delta).tolist()
            assert ctx.get(dut.acc) == want
            for j in range(units):                   # read out in order by shifting
                assert ctx.get(dut.head) == want[j]
                ctx.set(dut.shift, 1)
                await ctx.tick()
                ctx.set(dut.shift, 0)
                if rng.random() < 0.3:
                    await ctx.tick()
            assert ctx.get(dut.acc) == [0] * units

    run(dut, testbench, clocked=True)


@pytest.mark.parametrize("max_shift,min_shift,exponents",
                         [(0, 0, 0), (3, 0, 3), (7, 2, 4), (3, 1, 0), (4, 0, 0), (9, 1, 8)])
def test_weight_update_matches_numpy(max_shift, min_shift, exponents):
    lanes, bound = 13, 800
    dut = WeightUpdate(lanes, delta_bound=bound, max_shift=max_shift, min_shift=min_shift,
                       exponents=exponents)
    assert dut.step_bound == int(rshift_round(bound, min_shift))
    assert len(dut.shifters) == exponents + 1
    rng = np.random.default_rng(max_shift)

    async def testbench(ctx):
        for trial in range(150):
            delta = int(rng.integers(-bound, bound + 1)) >> int(rng.integers(0, 8))
            amount = int(rng.integers(min_shift + exponents, max_shift + 1))
            exponent = rng.integers(0, exponents + 1, lanes)
            if trial < 2:                    # the largest steps
                delta, amount, exponent[:] = (bound, -bound)[trial], min_shift + exponents, \
                    exponents
            negate, skip = rng.integers(0, 2, lanes), rng.integers(0, 2, lanes)
            ctx.set(dut.magnitude, abs(delta))
            ctx.set(dut.negative, delta < 0)
            ctx.set(dut.amount, amount)
            await ctx.tick()                 # the shifted magnitudes are registered
            ctx.set(dut.magnitude, 0)        # what the first stage sees next does not matter
            if exponents:
                ctx.set(dut.exponent, [int(v) for v in exponent])
            ctx.set(dut.negate, _bits(negate))
            ctx.set(dut.skip, _bits(skip))
            sign = np.where(negate == 1, -1, 1) * np.where(skip == 1, 0, 1)
            step = sign * rshift_round(delta, amount - exponent)
            assert ctx.get(dut.step_magnitude) == np.abs(step).tolist()
            negative = (delta < 0) ^ (negate == 1)
            assert ctx.get(dut.step_negative) == _bits(negative)

    run(dut, testbench, clocked=True)


def test_weight_update_rejects_bad_exponents():
    with pytest.raises(TypeError, match=r"Exponents must be an integer in 0\.\.3, not 4"):
        WeightUpdate(4, delta_bound=10, max_shift=5, min_shift=2, exponents=4)


@pytest.mark.parametrize("width,shift", [(6, 0), (6, 2), (9, 4)])
def test_round_shift_magnitude_and_clip_match_numpy(width, shift):
    value = Signal(signed(width))
    negative, magnitude, clipped = Signal(), Signal(width), Signal(signed(width))
    m = Module()
    bound = 1 << (width - 3)
    neg, mag = round_shift_magnitude(value, shift)
    m.d.comb += [negative.eq(neg), magnitude.eq(mag), clipped.eq(clip(value, bound))]

    async def testbench(ctx):
        for v in range(-(1 << (width - 1)), 1 << (width - 1)):
            ctx.set(value, v)
            assert ctx.get(negative) == (v < 0)
            assert ctx.get(magnitude) == abs(int(rshift_round(v, shift))), v
            assert ctx.get(clipped) == int(np.clip(v, -bound, bound))

    run(m, testbench)


@pytest.mark.parametrize("batch_shift", [1, 2, 3])
def test_batch_apply_matches_numpy(batch_shift):
    lanes, wbits, step_bound = 11, 4, 40
    dut = BatchApply(lanes, weight_bits=wbits, step_bound=step_bound, batch_shift=batch_shift)
    w0, batch = 1 << wbits, 1 << batch_shift
    rng = np.random.default_rng(batch_shift)

    async def testbench(ctx):
        for trial in range(200):
            w = rng.integers(-w0, w0 + 1, lanes)
            step = rng.integers(-step_bound, step_bound + 1, lanes)
            acc = rng.integers(-(batch - 1) * step_bound, (batch - 1) * step_bound + 1, lanes)
            if trial < 2:                               # the extreme sums
                step[:] = (step_bound, -step_bound)[trial]
                acc[:] = step * (batch - 1)
            apply = int(rng.integers(0, 2))
            ctx.set(dut.weights, [int(v) for v in w])
            ctx.set(dut.acc, [int(v) for v in acc])
            ctx.set(dut.step, [int(v) for v in step])
            ctx.set(dut.apply, apply)
            total = acc + step
            assert ctx.get(dut.acc_next) == (0 * total if apply else total).tolist()
            want = np.clip(w + rshift_round(total, batch_shift), -w0, w0)
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


@pytest.mark.parametrize("depth,stages", [(1, 1), (4, 3), (5, 8)])
def test_row_sweep_follows_rows_down_the_stages(depth, stages):
    dut = RowSweep(depth, stages=stages)

    async def testbench(ctx):
        seen = {s: [] for s in range(stages + 1)}
        busy = []
        for cycle in range(3 * depth + stages + 6):
            start = cycle in (1, depth + 2)              # two sweeps, writing and not
            ctx.set(dut.start, start)
            ctx.set(dut.write, cycle == 1)
            if start:
                assert ctx.get(dut.addr) == 0
            for s in range(stages + 1):
                row = ctx.get(dut.rows[s])
                if row.valid:
                    seen[s].append((cycle - s, row.index, row.last, row.write))
            busy.append(ctx.get(dut.busy))
            await ctx.tick()
            ctx.set(dut.write, 0)
        # The start is registered: each sweep's first address goes out the cycle after it.
        for s in range(stages + 1):
            want = [(first + 1 + r, r, int(r == depth - 1), write)
                    for first, write in ((1, 1), (depth + 2, 0)) for r in range(depth)]
            assert seen[s] == want, s
        end = depth + 3 + depth - 1 + stages              # the second sweep's last row leaves
        assert not busy[1] and busy[2]
        assert busy[depth + 3:end + 1] == [1] * (end - depth - 2)
        assert not any(busy[end + 1:])

    run(dut, testbench, clocked=True)


def _config(sizes=(12, 8, 3), **overrides) -> OnChipConfig:
    """A small trainer configuration: quick to simulate, scales that make every path busy."""
    layers = len(sizes) - 1
    settings = dict(sizes=sizes, weight_bits=4, score_shift=2, gate_shifts=(5,) * (layers - 1),
                    backprop_shifts=(1,) * (layers - 1),
                    lr_shifts=(overrides.get("input_bits", 4) + 1,) + (1,) * (layers - 1),
                    lr_decay_steps=4, lr_decay_max=2)
    settings.update(overrides)
    return OnChipConfig(**settings)


def _initial_weights(cfg):
    rng = np.random.default_rng(cfg.seed)
    return [rng.integers(-cfg.w0, cfg.w0 + 1, size=shape).astype(np.int64)
            for shape in cfg.shapes]


def golden_net(cfg, weights):
    """The integer golden model starting from ``weights``."""
    return OnChipNet(cfg, [w.copy() for w in weights], GoldenLfsr(cfg.lfsr_seed))


def test_step_cycles_formula():
    # Forward sweeps 4 cycles apart, backward sweeps 2, the result 11 cycles after layer 1's
    # last backward row (10 stages and a cycle), an inference 6 after the output layer's last.
    # Every sweep's first address goes out a cycle after its start is decided.
    assert step_cycles((64, 64, 10)) == (139 + 3 + 11, 139 + 3 + 12, 74 + 3 + 6)
    assert step_cycles((64, 128, 128, 10)) == (522 + 8 + 11, 522 + 8 + 12, 266 + 6 + 6)
    # N + 2 QBP cycles longer than the forward and backward sweeps before layer 1's.
    assert step_cycles((100, 4, 3)) == (102 + 4 + 10, 102 + 4 + 11, 7 + 3 + 6)


def test_trainer_is_sized_from_the_config():
    cfg = _config((20, 6, 5, 4), input_bits=3, lr_shifts=(3, 2, 1), batch_shift=2,
                  weights="ternary")
    dut = OnChipTrainer(cfg, _initial_weights(cfg))
    assert [f.bound for f in dut.fwd] == list(cfg.s_bounds)
    assert dut.hinge.delta_bound == cfg.d_bounds[-1]
    assert [b.acc_bound for b in dut.backprop] == list(cfg.e_bounds)
    assert [u.step_bound for u in dut.update] == list(cfg.update_bounds)
    assert [b.acc_bound for b in dut.batch] == list(cfg.acc_bounds)
    assert dut.max_extra == cfg.max_lr_extra == 2
    assert dut.lfsr.width == LFSR_WIDTH and dut.lfsr.taps == LFSR_TAPS
    assert dut.lfsr.seed == cfg.lfsr_seed and dut.lfsr.n_bits == cfg.random_bits
    assert {role for _, role in dut.units.values()} == {"forward", "backward", "control"}
    assert sorted(name for name in dut.units if name.startswith("update")) == \
        ["update1", "update2", "update3"]
    Fragment.get(dut, None)


def test_trainer_rejects_a_bad_config_or_weights():
    cfg = _config((12, 8, 3), weight_bits=6)
    w1, w2 = _initial_weights(cfg)
    with pytest.raises(TypeError, match="Configuration must be an OnChipConfig, not"):
        OnChipTrainer(cfg.to_dict(), [w1, w2])
    with pytest.raises(ValueError, match="Weights must be a list of 2 arrays"):
        OnChipTrainer(cfg, [w1])
    with pytest.raises(ValueError, match=r"w1 must have shape \(8, 12\), not \(8, 11\)"):
        OnChipTrainer(cfg, [w1[:, 1:], w2])
    with pytest.raises(ValueError, match=r"w2 must have shape \(3, 8\), not \(4, 8\)"):
        OnChipTrainer(cfg, [w1, np.concatenate([w2, w2[:1]])])
    with pytest.raises(ValueError, match=r"w2 must lie in \[-64, 64\], found 65"):
        OnChipTrainer(cfg, [w1, np.where(w2 == w2.max(), 65, w2)])


def run_trainer(cfg, requests, *, reads=0.3, seed=0):
    """Drive an :class:`OnChipTrainer` with ``requests`` ``(pixels, label, train)`` and check it
    against the golden model after each: the prediction, the weights followed through ``wb``,
    the cycles; between requests, rows read out through ``rd_req``/``rd`` (probability
    ``reads``) must be the golden model's. Returns the golden model."""
    weights = _initial_weights(cfg)
    dut = OnChipTrainer(cfg, weights)
    net = golden_net(cfg, weights)
    rng = np.random.default_rng(seed)
    checked = {"reads": 0, "writes": 0}

    async def read_row(ctx, layer, row):
        ctx.set(dut.rd_req.valid, 1)
        ctx.set(dut.rd_req.payload, {"layer": layer, "row": row})
        await ctx.tick().until(dut.rd_req.ready)
        ctx.set(dut.rd_req.valid, 0)
        ctx.set(dut.rd.ready, 0)
        for _ in range(int(rng.integers(0, 3))):        # a slow reader: the row must stay
            await ctx.tick()
        ctx.set(dut.rd.ready, 1)
        valid = False
        while not valid:
            _, _, valid, payload = await ctx.tick().sample(dut.rd.valid, dut.rd.payload)
        ctx.set(dut.rd.ready, 0)
        return [payload.weights[k] for k in range(cfg.shapes[layer][1])]

    async def testbench(ctx):
        hw = [w.copy() for w in weights]
        ctx.set(dut.o.ready, 1)
        for q, label, train in requests:
            while rng.random() < reads:
                layer = int(rng.integers(cfg.layers))
                row = int(rng.integers(cfg.shapes[layer][0]))
                assert await read_row(ctx, layer, row) == net.weights[layer][row].tolist()
                checked["reads"] += 1
            ctx.set(dut.i.valid, 1)
            ctx.set(dut.i.payload, {"pixels": [int(v) for v in q], "label": label,
                                    "train": train})
            await ctx.tick().until(dut.i.ready)
            ctx.set(dut.i.valid, 0)
            prediction = net.step(q, label).prediction if train else net.infer(q)
            cycles = 1
            while not ctx.get(dut.o.valid):
                if ctx.get(dut.wb.valid):
                    row = ctx.get(dut.wb.payload)
                    target = hw[row.layer]
                    target[row.row] = [row.weights[k] for k in range(target.shape[1])]
                    checked["writes"] += 1
                await ctx.tick()
                cycles += 1
            assert cycles == (dut.latency if train else dut.inference_latency)
            assert ctx.get(dut.o.payload.prediction) == prediction
            for mine, want in zip(hw, net.weights):
                np.testing.assert_array_equal(mine, want)
            await ctx.tick()

    run(dut, testbench, clocked=True)
    assert checked["writes"] > 0 and (reads == 0 or checked["reads"] > 0)
    return net


def _requests(cfg, count, seed, p_infer=0.25):
    rng = np.random.default_rng(seed)
    n, top = cfg.sizes[0], (1 << cfg.input_bits) - 1
    return [(rng.integers(0, top + 1, n) * (rng.random(n) < 0.7), int(rng.integers(cfg.sizes[-1])),
             int(rng.random() >= p_infer)) for _ in range(count)]


@pytest.mark.parametrize("sizes,kind,batch_shift,input_bits", [
    ((12, 8, 3), "binary", 0, 4),
    ((20, 6, 4), "ternary", 0, 1),
    ((10, 7, 5, 3), "binary", 2, 8),
    ((10, 6, 5, 4, 3), "ternary", 2, 4),
    ((9, 6, 5, 3), "ternary", 0, 8),
    ((16, 5, 6, 4), "binary", 1, 1),
    ((4, 3, 2), "binary", 0, 1),        # sweeps so short that the next starts while the
    ((3, 2, 2, 2), "ternary", 1, 1),    # layer's previous one is still in the pipeline
])
def test_trainer_matches_golden_model_step_by_step(sizes, kind, batch_shift, input_bits):
    cfg = _config(sizes, weights=kind, batch_shift=batch_shift, input_bits=input_bits,
                  seed=len(sizes) + batch_shift)
    run_trainer(cfg, _requests(cfg, 14, seed=sum(sizes)), seed=input_bits)
