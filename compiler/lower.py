"""Lowering: the network IR and a folding plan -> gateware.

The lowering walks the graph: each op's binding builds its unit (``layer{L}_{role}``) with its
layer's folding, and where a layer's beats meet an op that takes whole vectors (the next
layer's matrix-vector unit, the argmax), a :class:`~fewmul.gateware.SkidBuffer` and a
:class:`~fewmul.gateware.Collector` join them (``layer{L}_skid``, ``layer{L}_collect``; the
collector's output is the layer's probe). A next layer with an input memory
(:mod:`~fewmul.compiler.input_memory`) takes the beats as they come, after the skid buffer
alone, which is then the probe. The folding plan (:mod:`fewmul.compiler.planner`)
gives every layer ``pe`` (neurons computed in parallel) and ``simd`` (inputs per neuron per
cycle).
"""

from __future__ import annotations

from dataclasses import dataclass

from fewmul.gateware import Collector, Network, SkidBuffer, StreamFIFO
from fewmul.ir import Folding, Graph, Layer, Op

from .input_memory import check_input_beats
from .planner import DEFAULT_TARGET_CYCLES, LayerPlan, plan_folding

__all__ = ["DEFAULT_TARGET_CYCLES", "plan_folding", "lower", "unit_name", "layer_stages",
           "layer_unit", "LayerPlan", "Probe", "probes", "consumers", "collected", "input_beats"]


@dataclass(frozen=True)
class Probe:
    """A layer's output stream as the testbench watches it: ``vectors`` vectors of ``units``
    elements per image (a fully-connected layer's output is one vector; a convolution's, one
    per pixel, or one for the whole image before a fully-connected layer)."""
    name: str
    path: str
    units: int
    element_bits: int
    signed: bool
    vectors: int = 1


def unit_name(layer: Layer, role: str) -> str:
    """The submodule name of a layer's unit: ``layer{L}_{role}`` (an op's binding's role, or
    ``skid`` and ``collect`` for the units that gather its beats)."""
    return f"{layer.name}_{role}"


def collected(layer: Layer, consumer: Op | None, folding: Folding | None = None) -> int:
    """Elements per vector that the collector of ``layer`` gathers: what each input transfer
    of the op after it takes (a pixel of a sliding window, a fully-connected layer's whole
    input, or, when its ``folding`` has an :attr:`~fewmul.ir.Folding.input_beat`, that many
    elements), or the layer's channels if nothing follows."""
    if consumer is None:
        return layer.out_type.channels
    if folding is not None and folding.input_beat:
        return folding.input_beat
    return consumer.in_type.channels


def _queue_depth(consumer: Op | None) -> int:
    return consumer.binding.input_queue() if consumer is not None else 0


def _joined(plan: LayerPlan, consumer: Op | None, folding: Folding | None) -> tuple[int, bool]:
    """Elements per transfer into ``consumer``, and whether a collector gathers them (not
    when ``consumer`` takes the layer's beats as they are into its input memory)."""
    count = collected(plan.layer, consumer, folding)
    beat = plan.layer.last.binding.stream(plan.folding).elements
    return count, not (folding is not None and folding.input_beat == beat)


def layer_stages(plan: LayerPlan, consumer: Op | None = None,
                 consumer_folding: Folding | None = None) -> list[tuple[str, object]]:
    """The units of one layer (its ops', then the skid buffer and collector that gather its
    beats into the transfers ``consumer``, folded by ``consumer_folding``, takes, and the
    queue ``consumer`` asks for), named by :func:`unit_name`."""
    layer = plan.layer
    stages = []
    for op in layer.ops:
        unit = op.binding.build(plan.folding)
        if op.binding.buffered_input:
            stages.append((unit_name(layer, f"{op.binding.role}_skid"),
                           SkidBuffer(unit.i.payload.shape())))
        stages.append((unit_name(layer, op.binding.role), unit))
    out_shape = stages[-1][1].o.payload.shape()
    stages.append((unit_name(layer, "skid"), SkidBuffer(out_shape)))
    count, collect = _joined(plan, consumer, consumer_folding)
    if collect:
        stages.append((unit_name(layer, "collect"),
                       Collector(out_shape.elem_shape, plan.pe, count)))
    depth = _queue_depth(consumer)
    if depth:
        shape = stages[-1][1].o.payload.shape()
        stages.append((unit_name(layer, "fifo"), StreamFIFO(shape, depth)))
    return stages


def _layer_latency(plan: LayerPlan, consumer: Op | None = None,
                   consumer_folding: Folding | None = None) -> int:
    depth = _queue_depth(consumer)
    _, collect = _joined(plan, consumer, consumer_folding)
    return (sum(op.binding.latency(plan.folding)
                + (SkidBuffer.latency if op.binding.buffered_input else 0)
                for op in plan.layer.ops)
            + SkidBuffer.latency + (Collector.latency if collect else 0)
            + (StreamFIFO.latency_of(depth) if depth else 0))


def layer_unit(plan: LayerPlan) -> Network:
    """One layer on its own (its units, skid buffer and collector), e.g. to synthesize layers
    one at a time."""
    return Network(layer_stages(plan), cycles_per_inference=plan.cycles,
                   latency_cycles=_layer_latency(plan))


def consumers(net: Graph) -> list[Op | None]:
    """The op after each layer of ``net`` (``None`` after the last op)."""
    following = dict(zip((op.name for op in net.ops), net.ops[1:]))
    return [following.get(layer.last.name) for layer in net.layers]


def _joins(net: Graph, plans: list[LayerPlan]) -> list[tuple[Op | None, Folding | None]]:
    """The op after each layer and its folding (that of the next layer, None for the tail)."""
    foldings = [plan.folding for plan in plans[1:]] + [None]
    return list(zip(consumers(net), foldings))


def probes(net: Graph, plans: list[LayerPlan]) -> list[Probe]:
    """Each layer's output as the op after it takes it: the collector's vectors, or the skid
    buffer's beats when the next layer takes them into its input memory."""
    out = []
    for plan, (consumer, folding) in zip(plans, _joins(net, plans)):
        layer = plan.layer
        stream = layer.last.binding.stream(plan.folding)
        count, collect = _joined(plan, consumer, folding)
        out.append(Probe(layer.name, unit_name(layer, "collect" if collect else "skid"), count,
                         stream.element_bits, stream.signed, layer.units // count))
    return out


def input_beats(net: Graph, plans: list[LayerPlan]) -> int:
    """Transfers of an image into the network: a transfer per pixel, or, when the first
    layer takes its vector into an input memory, per :attr:`~fewmul.ir.Folding.input_beat`."""
    beat = plans[0].folding.input_beat if plans else None
    return net.in_type.pixels * (net.in_type.channels // beat if beat else 1)


def lower(net: Graph, plans: list[LayerPlan]) -> Network:
    """Build the Amaranth :class:`~fewmul.gateware.Network` for ``net`` with ``plans`` (one
    per layer)."""
    if len(plans) != len(net.layers):
        raise ValueError(f"{len(plans)} plans for {len(net.layers)} layers")
    check_input_beats(plans)
    stages, cycles, latency = [], 0, 0
    for layer, plan, (consumer, folding) in zip(net.layers, plans, _joins(net, plans)):
        if plan.layer is not layer:
            raise ValueError(f"The plan of {layer.name} is for another layer")
        stages += layer_stages(plan, consumer, folding)
        cycles = max(cycles, plan.cycles)
        latency += _layer_latency(plan, consumer, folding)
    for op in net.tail:
        binding = op.binding
        stages.append((binding.role, binding.build(None)))
        cycles = max(cycles, binding.cycles(None))
        latency += binding.latency(None)
    beats = input_beats(net, plans)
    if plans and plans[0].folding.input_beat:
        latency += beats - 1        # the first transfers arrive one a cycle at most
    return Network(stages, cycles_per_inference=cycles, latency_cycles=latency,
                   input_beats=beats)
