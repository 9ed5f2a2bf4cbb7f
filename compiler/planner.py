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

from fewmul.arith.ranges import divisors
from fewmul.gateware.popcount import popcount_levels
from fewmul.gateware.widths import Widths
from fewmul.ir import Estimate, Folding, Graph, Layer

__all__ = ["DEFAULT_TARGET_CYCLES", "LayerPlan", "Estimate", "plan_folding", "layer_plans",
           "auto_pipeline", "FAST_CLOCK_HZ"]

#: Cycles per inference aimed at when nothing else is said.
DEFAULT_TARGET_CYCLES = 64


@dataclass(frozen=True)
class LayerPlan:
    """A layer of the network IR and its folding.

    Attributes
    ----------
    layer : Layer
        The IR layer (its ops).
    folding : Folding
        ``pe``, ``simd``, ``pipeline`` and ``popcount_style``, shared by the layer's ops.
    """
    layer: Layer
    folding: Folding

    def with_folding(self, **changes) -> "LayerPlan":
        return LayerPlan(self.layer, replace(self.folding, **changes))

    @property
    def pe(self) -> int:
        return self.folding.pe

    @property
    def simd(self) -> int:
        return self.folding.simd or self.inputs

    @property
    def pipeline(self) -> int:
        return self.folding.pipeline

    @property
    def popcount_style(self) -> str:
        return self.folding.popcount_style

    @property
    def units(self) -> int:
        return self.layer.units

    @property
    def neurons(self) -> int:
        """Neurons of the head (a convolution's filters), which ``pe`` divides."""
        return self.layer.head.out_type.channels

    @property
    def inputs(self) -> int:
        return self.layer.inputs

    @property
    def folds(self) -> int:
        return self.layer.head.binding.folds(self.folding)

    @property
    def cycles(self) -> int:
        """Cycles per image in the steady state: the slowest op's, where the ops that feed the
        head (a sliding window) are paced by the head taking one vector at a time."""
        folding, head = self.folding, self.layer.head
        per_vector = head.binding.cycles(folding) // head.in_type.pixels
        return max(op.binding.paced_cycles(folding, per_vector)
                   if op.binding_class.feeds_layer else op.binding.cycles(folding)
                   for op in self.layer.ops)

    @property
    def widths(self) -> Widths:
        return self.layer.head.binding.widths(self.folding)

    def estimate(self) -> Estimate:
        """Rough LUT, flip-flop and 18 Kbit block RAM counts of the layer's units: the sum of
        its ops' estimates (LUTs rounded)."""
        total = sum((op.binding.estimate(self.folding) for op in self.layer.ops), Estimate())
        return Estimate(round(total.luts), total.ffs, total.brams, total.memories)


def layer_plans(net: Graph, pipeline: int = 0,
                popcount_style: str = "adder") -> list[LayerPlan]:
    """Unfolded plans (``pe = 1``, all inputs) of each layer of ``net``."""
    return [LayerPlan(layer, Folding(1, layer.inputs, pipeline, popcount_style))
            for layer in net.layers]


def _frontier(base: LayerPlan) -> list[tuple[int, int, LayerPlan]]:
    """``(cycles, luts, plan)`` of the cheapest plan for each achievable cycle count, keeping
    only those cheaper than every faster plan, sorted by cycles."""
    best: dict[int, tuple[int, LayerPlan]] = {}
    for folding in base.layer.head.binding.foldings(base.folding):
        plan = LayerPlan(base.layer, folding)
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


def plan_folding(net: Graph, pe="auto", target_cycles: int | None = None, *,
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
    return [plan.with_folding(pipeline=p) for plan, p in zip(plans, stages)]


def _plan_folding(net: Graph, pe="auto", target_cycles: int | None = None, *,
                  simd="auto", max_luts: int | None = None, pipeline: int = 0,
                  popcount_style: str = "adder") -> list[LayerPlan]:
    """Choose ``pe`` and ``simd`` per layer.

    Parameters
    ----------
    net : Graph
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
            fastest = [f[0][0] for f in frontiers]
            if max(fastest) > target:
                slow = fastest.index(max(fastest))
                raise ValueError(f"Target of {target} cycles per inference is below what "
                                 f"layers[{slow}] can reach: {max(fastest)} cycles at its "
                                 f"fastest (e.g. one per position of its sliding window)")
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
        p = p if isinstance(pe, list) else min(p, base.neurons)
        if base.neurons % p:
            raise ValueError(f"layers[{index}]: pe={p} does not divide {base.neurons} units; "
                             f"valid values are {divisors(base.neurons)}")
        if s is not None:
            if not isinstance(s, int) or s <= 0:
                raise ValueError(f"simd must be 'auto', a positive integer or a list, not "
                                 f"{simd!r}")
            s = s if isinstance(simd, list) else min(s, base.inputs)
            if s > base.inputs:
                raise ValueError(f"layers[{index}]: simd={s} exceeds its {base.inputs} inputs")
        plans.append(base.with_folding(pe=p, simd=s or base.inputs))
    return plans
