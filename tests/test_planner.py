"""The folding planner: PE and SIMD per layer from a cycle target or a LUT budget."""

import numpy as np
import pytest

from fewmul.compiler.planner import auto_pipeline, layer_plans, plan_folding
from fewmul.gateware import MatrixVectorUnit
from fewmul.gateware.popcount import popcount_levels
from fewmul.ir import dense_layer, dense_net


def paper_net(weight_kind="binary", act_bits=1, input_bits=8):
    """784-1024-1024-1024-10 with random parameters (only the shapes matter here)."""
    rng = np.random.default_rng(0)
    layers, n, kind, bits = [], 784, "unsigned", input_bits
    for index, m in enumerate([1024, 1024, 1024, 10]):
        w = (rng.integers(0, 2, (m, n)) if weight_kind == "binary"
             else rng.integers(-1, 2, (m, n))).astype(np.int8)
        if index < 3:
            t = np.zeros((m, (1 << act_bits) - 1), np.int64) if act_bits > 1 else \
                np.zeros(m, np.int64)
            layers.append(dense_layer(w, kind, bits, thresholds=t, weight_kind=weight_kind))
        else:
            layers.append(dense_layer(w, kind, bits, shifts=np.zeros(m, np.int64),
                                       offsets=np.zeros(m, np.int64), weight_kind=weight_kind))
        n = m
        kind, bits = ("bipolar", 1) if act_bits == 1 else ("unsigned", act_bits)
    return dense_net(layers)


@pytest.mark.parametrize("target", [1, 7, 64, 1000, 5000])
@pytest.mark.parametrize("variant", [("binary", 1), ("ternary", 2)])
def test_target_cycles_met_and_balanced(target, variant):
    net = paper_net(*variant)
    plans = plan_folding(net, "auto", target)
    assert max(p.cycles for p in plans) <= target
    for plan, layer in zip(plans, net.layers):
        assert layer.units % plan.pe == 0 and 1 <= plan.simd <= layer.inputs
        assert plan.cycles == layer.units // plan.pe * -(-layer.inputs // plan.simd)
    # The big layers are balanced: each is as folded as the target lets it be (within 2x).
    if target >= 64:
        assert all(p.cycles * 2 > target for p in plans[:3])


def test_cheaper_for_slower_targets():
    net = paper_net()
    luts = [sum(p.estimate().luts for p in plan_folding(net, "auto", t))
            for t in (16, 64, 256, 1024, 4096)]
    assert luts == sorted(luts, reverse=True) and luts[0] > 10 * luts[-1]


@pytest.mark.parametrize("budget", [20_000, 60_000, 200_000])
def test_lut_budget_gives_the_fastest_plan_that_fits(budget):
    net = paper_net()
    plans = plan_folding(net, "auto", max_luts=budget)
    cycles = max(p.cycles for p in plans)
    assert sum(p.estimate().luts for p in plans) <= budget
    # No faster target fits the budget.
    faster = plan_folding(net, "auto", cycles - 1)
    assert sum(p.estimate().luts for p in faster) > budget


def test_lut_budget_too_small():
    with pytest.raises(ValueError, match=r"LUT budget 100 is too small: the most folded plan "
                                         r"needs about \d+ LUTs"):
        plan_folding(paper_net(), "auto", max_luts=100)


def test_explicit_folding_and_errors():
    net = paper_net()
    plans = plan_folding(net, [16, 8, 8, 2], simd=[49, 64, 64, 1024])
    assert [p.cycles for p in plans] == [64 * 16, 128 * 16, 128 * 16, 5]
    assert [p.simd for p in plan_folding(net, 2)] == [784, 1024, 1024, 1024]
    assert plan_folding(net, 2, simd=100)[0].folds == 8      # 784 = 7 * 100 + 84: padded
    with pytest.raises(ValueError, match=r"layers\[3\]: pe=4 does not divide 10 units"):
        plan_folding(net, [4, 4, 4, 4])
    with pytest.raises(ValueError, match="needs pe 'auto'"):
        plan_folding(net, 4, 64)
    with pytest.raises(ValueError, match="either a cycle target or a LUT budget"):
        plan_folding(net, "auto", 64, max_luts=1000)
    with pytest.raises(ValueError, match="simd lists 2 entries but the network has 4 layers"):
        plan_folding(net, 2, simd=[1, 2])


def test_estimates_grow_with_parallelism():
    base = layer_plans(paper_net())[1]
    small = base.with_folding(pe=4, simd=64).estimate()
    big = base.with_folding(pe=16, simd=64).estimate()
    assert big.luts - small.luts >= 12 * 64 * 2     # 12 more PEs of 64-bit popcounts
    # 1 Mbit of weights needs at least 57 blocks of 18 Kbit.
    assert min(big.brams, small.brams) >= 1024 * 1024 // (18 * 1024)


def test_pipeline_stages_auto_list_and_errors():
    net = paper_net()
    plans = plan_folding(net, "auto", 1024, pipeline="auto")
    # one register on the memory output, one per 2 adder levels of a popcount over simd bits
    assert [p.pipeline for p in plans] == \
        [1 + -(-max(0, p.simd - 1).bit_length() // 2) for p in plans]
    assert all(p.pipeline >= 1 for p in plans)
    assert auto_pipeline(1) == 1 and auto_pipeline(8) == 3 and auto_pipeline(256) == 5
    # for a fast clock: memory and word, registers after 3 of every 4 popcount levels and after
    # each combining level, at least 5 (stall-free)
    assert auto_pipeline(64, clock_hz=40e6) == 4     # the iCE40's 40 MHz
    assert auto_pipeline(64, combine_levels=3, clock_hz=150e6) == 10     # 4-bit input layer
    assert auto_pipeline(256, clock_hz=150e6) == 8                        # XNOR layer
    assert auto_pipeline(4, clock_hz=150e6) == 5
    fast = plan_folding(net, "auto", 1024, pipeline="auto", clock_hz=150e6)
    assert [p.pipeline for p in fast] == [
        auto_pipeline(p.simd, combine_levels=p.widths.combine_levels, clock_hz=150e6)
        for p in fast]
    for plan in fast:   # the unit gives every combining level its register
        head = plan.layer.head
        dut = MatrixVectorUnit(np.ones((plan.units, plan.inputs), dtype=int),
                               input_kind=head.in_type.kind, input_bits=head.in_type.bits, pe=1,
                               simd=plan.simd, weight_kind=head.weight_kind, pipeline=plan.pipeline)
        assert dut.combine_stages == dut.combine_levels
        assert dut.tree_stages >= -(-popcount_levels(plan.simd) // 2)
    listed = plan_folding(net, "auto", 1024, pipeline=[3, 0, 1, 2])
    assert [p.pipeline for p in listed] == [3, 0, 1, 2]
    assert [p.pe for p in listed] == [p.pe for p in plans]
    with pytest.raises(ValueError, match="Pipeline stages must be 'auto', a non-negative"):
        plan_folding(net, "auto", 1024, pipeline=-1)
    with pytest.raises(ValueError, match="pipeline lists 1 entries"):
        plan_folding(net, "auto", 1024, pipeline=[1])
