"""Lowering: a folded integer network and a folding plan -> gateware.

The folding planner picks ``pe`` (neurons computed in parallel) per layer. A
layer with ``M`` neurons and ``pe`` PEs takes ``M / pe + 1`` cycles per input
vector (see :class:`fewmul.gateware.MatrixVectorUnit`); the slowest layer sets
the network's rate.
"""

from __future__ import annotations

from dataclasses import dataclass

from fewmul.gateware import LayerParams, Network
from fewmul.nn.integer import IntegerNet

__all__ = ["DEFAULT_TARGET_CYCLES", "plan_folding", "lower", "LayerPlan"]

#: Cycles per inference aimed at when the spec says ``pe: auto``.
DEFAULT_TARGET_CYCLES = 64


@dataclass
class LayerPlan:
    units: int
    inputs: int
    pe: int

    @property
    def cycles(self) -> int:
        return self.units // self.pe + 1


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def plan_folding(net: IntegerNet, pe="auto", target_cycles: int | None = None) -> list[LayerPlan]:
    """Choose ``pe`` per layer.

    ``pe`` may be ``"auto"`` (meet ``target_cycles``, default
    :data:`DEFAULT_TARGET_CYCLES`, with the fewest PEs), one integer for every
    layer (capped at the layer's size), or a list with one entry per layer.
    """
    units = [layer.units for layer in net.layers]
    if isinstance(pe, list):
        if len(pe) != len(units):
            raise ValueError(f"pe lists {len(pe)} entries but the network has {len(units)} layers")
        chosen = pe
    elif pe == "auto":
        target = target_cycles or DEFAULT_TARGET_CYCLES
        if target < 2:
            raise ValueError(f"Target cycles must be at least 2, not {target!r}")
        chosen = [next(d for d in _divisors(m) if m // d + 1 <= target or d == m) for m in units]
    elif isinstance(pe, int) and pe > 0:
        chosen = [min(pe, m) for m in units]
    else:
        raise ValueError(f"pe must be 'auto', a positive integer or a list, not {pe!r}")
    plans = []
    for index, (m, p) in enumerate(zip(units, chosen)):
        if m % p:
            raise ValueError(f"layers[{index}]: pe={p} does not divide {m} units; "
                             f"valid values are {_divisors(m)}")
        plans.append(LayerPlan(m, net.layers[index].inputs, p))
    return plans


def lower(net: IntegerNet, plans: list[LayerPlan]) -> Network:
    """Build the Amaranth :class:`~fewmul.gateware.Network` for ``net``."""
    params = []
    for layer, plan in zip(net.layers, plans):
        common = dict(weights=layer.weights, input_kind=layer.input_kind,
                      input_bits=layer.input_bits, pe=plan.pe)
        if layer.is_output:
            params.append(LayerParams(**common, shifts=layer.shifts.tolist(),
                                      offsets=layer.offsets.tolist()))
        else:
            params.append(LayerParams(**common, thresholds=layer.thresholds.tolist()))
    return Network(params)
