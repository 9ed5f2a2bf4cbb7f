"""The folding planner: PE and SIMD per layer, from a cycle target or a LUT budget.

A layer with ``M`` neurons, ``N`` inputs, ``pe`` PEs and ``simd`` inputs per PE per
cycle takes ``M / pe * ceil(N / simd)`` cycles per input vector (see
:class:`fewmul.gateware.MatrixVectorUnit`); layers run as a pipeline, so the
slowest one sets the rate. The planner gives every layer the cheapest folding
(by the area estimate of :meth:`LayerPlan.estimate`) that meets a common cycle
target, so the layers are balanced; with a LUT budget it looks for the smallest
cycle target whose cheapest plan fits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from fewmul.gateware.popcount import popcount_levels, register_levels
from fewmul.gateware.widths import Widths
from fewmul.nn.integer import IntegerNet

__all__ = ["DEFAULT_TARGET_CYCLES", "LayerPlan", "Estimate", "plan_folding", "layer_plans"]

#: Cycles per inference aimed at when nothing else is said.
DEFAULT_TARGET_CYCLES = 64

#: Area model constants, in 4-input-LUT equivalents per bit (LUT4s, the two LUT4s of each CCU2C
#: carry cell included), fitted to Yosys synth_ecp5 runs of a 1024x1024 binary layer at five
#: foldings and of its pieces alone (bench/area.py, bench/results/area.md; within 4 %).
#: Popcount of one XNOR/AND bit, by popcount style: on 4-input LUTs the adder tree is the
#: cheaper (the compressor's full adders take 6 inputs; on 6-input LUTs it is the other way).
LUT_PER_POPCOUNT_BIT = {"adder": 2.5, "compressor": 2.7}
#: Accumulator and output register, per bit of each lane.
LUT_PER_ACC_BIT = 0.55
#: Fold-selection multiplexer, per latched input bit, times ``1 - 1 / folds``.
LUT_PER_MUX_BIT = 0.7
#: Threshold compare and its per-group constant, per bit of each lane, times
#: ``1 + groups / THRESHOLD_GROUPS_PER_BIT`` (the constants are multiplexed by the group).
LUT_PER_THRESHOLD_BIT = 1.0
THRESHOLD_GROUPS_PER_BIT = 10
LUT_CONTROL = 40
#: Block RAM geometries (depth, width) of one 18 Kbit block.
BRAM_GEOMETRIES = ((512, 36), (1024, 18), (2048, 9), (4096, 4), (8192, 2), (16384, 1))
#: Memories smaller than this many bits are left to LUT RAM or registers.
BRAM_MIN_BITS = 2048


@dataclass(frozen=True)
class Estimate:
    luts: int
    ffs: int
    brams: int


@dataclass
class LayerPlan:
    """A layer and its folding."""
    units: int
    inputs: int
    pe: int
    simd: int | None = None          # None: all inputs in one cycle
    input_kind: str = "bipolar"
    input_bits: int = 1
    weight_kind: str = "binary"
    out_levels: int = 1              # thresholds per neuron (0 for the output layer's scores)
    pipeline: int = 0
    popcount_style: str = "adder"

    def __post_init__(self):
        if self.simd is None:
            self.simd = self.inputs

    @property
    def groups(self) -> int:
        return self.units // self.pe

    @property
    def folds(self) -> int:
        return -(-self.inputs // self.simd)

    @property
    def cycles(self) -> int:
        return self.groups * self.folds

    @property
    def widths(self) -> Widths:
        return Widths(self.inputs, self.simd, self.input_kind, self.input_bits, self.weight_kind)

    def estimate(self) -> Estimate:
        """Rough LUT, flip-flop and 18 Kbit block RAM counts of the layer's units."""
        k, masks = self.input_bits, 2 if self.weight_kind == "ternary" else 1
        acc = self.widths.acc_shape.width
        shared = k * self.simd if self.weight_kind == "binary" and self.input_kind == "unsigned" \
            else 0
        count_bits = self.pe * k * masks * self.simd + shared
        levels = max(self.out_levels, 1)
        luts = (LUT_PER_POPCOUNT_BIT[self.popcount_style] * count_bits
                + LUT_PER_ACC_BIT * self.pe * acc * (2 if self.folds > 1 else 1)
                + LUT_PER_MUX_BIT * self.inputs * k * (1 - 1 / self.folds)
                # each lane compares with its neuron's constant, multiplexed by the group
                + LUT_PER_THRESHOLD_BIT * self.pe * levels * acc
                * (1 + self.groups / THRESHOLD_GROUPS_PER_BIT)
                + LUT_CONTROL)
        # the first pipeline register holds the memory word and the input slices, the others
        # sit in the popcount trees
        width, depth = self.pe * self.simd * masks, self.groups * self.folds
        pipe = sum(math.ceil(self.simd / 2 ** level) * (min(level, 12) + 1)
                   for level in register_levels(self.simd, max(0, self.pipeline - 1), "adder"))
        word = width + self.simd * k if self.pipeline else 0
        out_bits = levels.bit_length() if self.out_levels else acc + 8
        ffs = (self.inputs * k + self.simd * k + word + pipe * (count_bits // max(self.simd, 1))
               + self.pe * acc * (2 if self.folds > 1 else 1) + self.units * out_bits + 32)
        if width * depth < BRAM_MIN_BITS:
            brams = 0
        else:
            brams = min(math.ceil(width / w) * math.ceil(depth / d) for d, w in BRAM_GEOMETRIES)
        return Estimate(round(luts), ffs, brams)


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def _simd_candidates(n: int) -> list[int]:
    """Every SIMD width that gives a distinct fold count, the narrowest for each."""
    by_folds = {}
    for simd in range(1, n + 1):
        by_folds.setdefault(-(-n // simd), simd)
    return sorted(by_folds.values())


def layer_plans(net: IntegerNet, pipeline: int = 0,
                popcount_style: str = "adder") -> list[LayerPlan]:
    """Unfolded plans (``pe = 1``, all inputs) describing each layer of ``net``."""
    plans = []
    for layer in net.layers:
        levels = 0 if layer.is_output else (1 << layer.output_bits) - 1
        plans.append(LayerPlan(layer.units, layer.inputs, 1, None, layer.input_kind,
                               layer.input_bits, layer.weight_kind, levels, pipeline,
                               popcount_style))
    return plans


def _frontier(base: LayerPlan) -> list[tuple[int, int, LayerPlan]]:
    """``(cycles, luts, plan)`` of the cheapest plan for each achievable cycle count, keeping
    only those cheaper than every faster plan, sorted by cycles."""
    best: dict[int, tuple[int, LayerPlan]] = {}
    for pe in _divisors(base.units):
        for simd in _simd_candidates(base.inputs):
            plan = LayerPlan(**{**base.__dict__, "pe": pe, "simd": simd})
            luts = plan.estimate().luts
            if plan.cycles not in best or luts < best[plan.cycles][0]:
                best[plan.cycles] = (luts, plan)
    out, cheapest = [], None
    for cycles in sorted(best):
        luts, plan = best[cycles]
        if cheapest is None or luts < cheapest:
            out.append((cycles, luts, plan))
            cheapest = luts
    return out


def _cheapest(frontier, target: int) -> tuple[int, LayerPlan] | None:
    fits = [(luts, plan) for cycles, luts, plan in frontier if cycles <= target]
    return min(fits, key=lambda item: item[0]) if fits else None


def _per_layer(value, n_layers: int, name: str) -> list:
    if isinstance(value, (list, tuple)):
        if len(value) != n_layers:
            raise ValueError(f"{name} lists {len(value)} entries but the network has {n_layers} "
                             f"layers")
        return list(value)
    return [value] * n_layers


#: Adder levels of a popcount tree between two registers with ``pipeline="auto"``.
AUTO_LEVELS_PER_STAGE = 2
#: Clock frequencies from which ``pipeline="auto"`` builds the deep, stall-free datapath.
FAST_CLOCK_HZ = 100e6


def auto_pipeline(simd: int, popcount_style: str = "adder", *, combine_levels: int = 0,
                  clock_hz: float | None = None) -> int:
    """Pipeline stages for clock speed.

    For a clock below :data:`FAST_CLOCK_HZ` (or None): one on the weight memory's output,
    then one every :data:`AUTO_LEVELS_PER_STAGE` logic levels of the popcount trees over
    ``simd`` bits. From that clock on, the stall-free datapath of
    :class:`~fewmul.gateware.MatrixVectorUnit` with registers after three of every four
    popcount levels (the lowest levels, which count a few bits each, share a stage) and after
    every level of the ``combine_levels`` adders that combine the popcounts: two stages for the
    memory's output and its word, ``ceil(3 levels / 4) + combine_levels`` more (at least 5 in
    all). On the ECP5, two popcount levels per stage measured 145 MHz; this, 157 MHz.
    """
    levels = popcount_levels(simd, popcount_style)
    if clock_hz is None or clock_hz < FAST_CLOCK_HZ:
        return 1 + math.ceil(levels / AUTO_LEVELS_PER_STAGE)
    return max(5, 2 + math.ceil(3 * levels / 4) + combine_levels)


def plan_folding(net: IntegerNet, pe="auto", target_cycles: int | None = None, *,
                 simd="auto", max_luts: int | None = None, pipeline: int | str = 0,
                 popcount_style: str = "adder", clock_hz: float | None = None) -> list[LayerPlan]:
    """Choose ``pe`` and ``simd`` per layer (see :func:`_plan_folding` for the parameters).

    ``pipeline`` is a number of stages for every layer, a list of one per layer, or ``"auto"``
    for :func:`auto_pipeline` stages in each layer, for a clock of ``clock_hz`` (None: a slow
    one).
    """
    stages = _per_layer(pipeline, len(net.layers), "pipeline") if pipeline != "auto" else []
    if any(not isinstance(p, int) or isinstance(p, bool) or p < 0 for p in stages):
        raise ValueError(f"Pipeline stages must be 'auto', a non-negative integer or a list, "
                         f"not {pipeline!r}")
    plans = _plan_folding(net, pe, target_cycles, simd=simd, max_luts=max_luts,
                          popcount_style=popcount_style)
    if pipeline == "auto":
        stages = [auto_pipeline(plan.simd, plan.popcount_style, clock_hz=clock_hz,
                                combine_levels=plan.widths.combine_levels) for plan in plans]
    return [replace(plan, pipeline=p) for plan, p in zip(plans, stages)]


def _plan_folding(net: IntegerNet, pe="auto", target_cycles: int | None = None, *,
                  simd="auto", max_luts: int | None = None, pipeline: int = 0,
                  popcount_style: str = "adder") -> list[LayerPlan]:
    """Choose ``pe`` and ``simd`` per layer.

    Parameters
    ----------
    net : IntegerNet
        The folded network.
    pe, simd : "auto", int or list of int
        ``"auto"`` lets the planner choose; an integer applies to every layer (capped at the
        layer's size); a list gives one value per layer. An explicit ``pe`` with ``simd``
        ``"auto"`` computes all inputs in one cycle (``simd = N``), as before SIMD folding.
    target_cycles : int, optional
        Cycles per inference to meet with the cheapest plan (default
        :data:`DEFAULT_TARGET_CYCLES`, unless ``max_luts`` is given).
    max_luts : int, optional
        LUT budget: the fastest balanced plan whose estimate fits.
    pipeline : int
        Register stages between each weight memory and its accumulators.
    popcount_style : str
        ``"adder"`` or ``"compressor"`` (see :mod:`fewmul.gateware.popcount`).
    """
    bases = layer_plans(net, pipeline, popcount_style)
    n = len(bases)
    auto = pe == "auto"
    if not auto and (target_cycles is not None or max_luts is not None):
        raise ValueError("A cycle target or a LUT budget needs pe 'auto'")
    if target_cycles is not None and max_luts is not None:
        raise ValueError("Give either a cycle target or a LUT budget, not both")
    if auto:
        if simd != "auto":
            raise ValueError("With pe 'auto' the planner also chooses simd; give both or neither")
        if target_cycles is not None and (not isinstance(target_cycles, int)
                                          or target_cycles < 1):
            raise ValueError(f"Target cycles must be a positive integer, not {target_cycles!r}")
        frontiers = [_frontier(base) for base in bases]
        if max_luts is None:
            target = target_cycles or DEFAULT_TARGET_CYCLES
            return [_cheapest(f, target)[1] for f in frontiers]
        targets = sorted({cycles for f in frontiers for cycles, _, _ in f})
        for target in targets:
            picks = [_cheapest(f, target) for f in frontiers]
            if all(picks) and sum(luts for luts, _ in picks) <= max_luts:
                return [plan for _, plan in picks]
        smallest = sum(f[-1][1] for f in frontiers)
        raise ValueError(f"LUT budget {max_luts} is too small: the most folded plan needs about "
                         f"{smallest} LUTs")
    pes = _per_layer(pe, n, "pe")
    simds = _per_layer(None if simd == "auto" else simd, n, "simd")
    plans = []
    for index, (base, p, s) in enumerate(zip(bases, pes, simds)):
        if not isinstance(p, int) or p <= 0:
            raise ValueError(f"pe must be 'auto', a positive integer or a list, not {pe!r}")
        p = p if isinstance(pe, list) else min(p, base.units)
        if base.units % p:
            raise ValueError(f"layers[{index}]: pe={p} does not divide {base.units} units; "
                             f"valid values are {_divisors(base.units)}")
        if s is not None:
            if not isinstance(s, int) or s <= 0:
                raise ValueError(f"simd must be 'auto', a positive integer or a list, not "
                                 f"{simd!r}")
            s = s if isinstance(simd, list) else min(s, base.inputs)
            if s > base.inputs:
                raise ValueError(f"layers[{index}]: simd={s} exceeds its {base.inputs} inputs")
        plans.append(LayerPlan(**{**base.__dict__, "pe": p, "simd": s or base.inputs}))
    return plans
