"""Lowering: a folded integer network and a folding plan -> gateware.

The folding plan (:mod:`fewmul.compiler.planner`) gives every layer ``pe``
(neurons computed in parallel) and ``simd`` (inputs per neuron per cycle).
"""

from __future__ import annotations

from fewmul.gateware import LayerParams, Network
from fewmul.nn.integer import IntegerNet

from .planner import DEFAULT_TARGET_CYCLES, LayerPlan, plan_folding

__all__ = ["DEFAULT_TARGET_CYCLES", "plan_folding", "lower", "LayerPlan"]


def lower(net: IntegerNet, plans: list[LayerPlan]) -> Network:
    """Build the Amaranth :class:`~fewmul.gateware.Network` for ``net``."""
    params = []
    for layer, plan in zip(net.layers, plans, strict=True):
        common = dict(weights=layer.weights, input_kind=layer.input_kind,
                      input_bits=layer.input_bits, pe=plan.pe, simd=plan.simd,
                      weight_kind=layer.weight_kind, pipeline=plan.pipeline,
                      popcount_style=plan.popcount_style)
        if layer.is_output:
            params.append(LayerParams(**common, shifts=layer.shifts.tolist(),
                                      offsets=layer.offsets.tolist()))
        else:
            params.append(LayerParams(**common, thresholds=layer.thresholds.tolist()))
    return Network(params)
