"""Input memories: which layers take their input vector into block RAM, and in what beats.

A fully-connected layer's matrix-vector unit either latches its whole input vector in
registers (with a collector before it that gathers the layer before's beats), or, with an
:attr:`~fewmul.ir.Folding.input_beat`, takes the vector as the layer before produces it into a
two-bank block RAM (:class:`~fewmul.gateware.vector_memory.VectorMemory`) and reads each fold's
slices from it. On a small device the registers decide whether a network fits: on the
iCE40UP5K a 256-input layer (simd 16) takes 320 LUT4 and 592 flip-flops with a collector and
latched planes, 207 and 132 with an input memory, for one more 4 kbit EBR.

A hidden layer takes the beats of the layer before as they are (no collector then); the first
layer takes the largest beat that divides its inputs and its ``simd`` (the link shifts the
image to it a beat at a time).
"""

from __future__ import annotations

import math
from typing import Sequence

from .planner import LayerPlan

__all__ = ["INPUT_MEMORY_CHOICES", "input_beat", "with_input_memory", "check_input_beats",
           "memory_layers"]

#: ``input_memory`` choices besides a list of layers.
INPUT_MEMORY_CHOICES = ("none", "all")


def _producer_beat(plans: Sequence[LayerPlan], index: int) -> int | None:
    """Elements per beat of the layer before layer ``index`` (None for the first)."""
    if index == 0:
        return None
    before = plans[index - 1]
    return before.layer.last.binding.stream(before.folding).elements


def _unit_takes(plan: LayerPlan, beat: int) -> bool:
    """Whether the layer's unit can hold its input in block RAM, ``beat`` elements a
    transfer: its head is its first op (no window before it) and allows it."""
    layer = plan.layer
    return layer.ops[0] is layer.head and layer.head.binding.beat_allowed(plan.folding, beat)


def _fits(plans: Sequence[LayerPlan], index: int, beat: int) -> bool:
    """Whether layer ``index`` can take its input ``beat`` elements a transfer: its unit can,
    and after the first layer the beat is a whole number of the layer before's."""
    producer = _producer_beat(plans, index)
    return _unit_takes(plans[index], beat) and (producer is None or beat % producer == 0)


def input_beat(plans: Sequence[LayerPlan], index: int) -> int | None:
    """The beat in which layer ``index`` can take its input into an input memory: the beats
    of the layer before, or for the first layer the largest that divides its inputs and its
    ``simd``; None if its head cannot (a convolution's, or a beat that does not divide
    ``simd``)."""
    plan = plans[index]
    beat = _producer_beat(plans, index) or math.gcd(plan.inputs, plan.simd)
    return beat if _fits(plans, index, beat) else None


def memory_layers(plans: Sequence[LayerPlan], choice="none") -> list[int]:
    """The layers of a choice: ``"none"``, ``"all"`` (every layer that can) or a list of
    layers (indices from 0), each checked.

    Raises
    ------
    ValueError
        If ``choice`` is none of these, or a listed layer cannot take an input memory.
    """
    if isinstance(choice, str):
        if choice not in INPUT_MEMORY_CHOICES:
            raise ValueError(f"Input memory choice must be one of "
                             f"{', '.join(INPUT_MEMORY_CHOICES)} or a list of layers, not "
                             f"{choice!r}")
        if choice == "none":
            return []
        return [i for i in range(len(plans)) if input_beat(plans, i) is not None]
    layers = sorted({int(i) for i in choice})
    for index in layers:
        if not 0 <= index < len(plans):
            raise ValueError(f"Input memory layers must be between 0 and {len(plans) - 1}, "
                             f"not {list(choice)!r}")
        if input_beat(plans, index) is None:
            raise ValueError(_refusal(plans, index))
    return layers


def _refusal(plans: Sequence[LayerPlan], index: int) -> str:
    plan = plans[index]
    producer = _producer_beat(plans, index)
    if not _unit_takes(plan, 1):
        why = "only a fully-connected layer's unit has one"
    elif producer is None:
        why = f"no beat divides both its {plan.inputs} inputs and its simd {plan.simd}"
    else:
        why = (f"its simd {plan.simd} is not a multiple of the {producer} elements a beat of "
               f"layers[{index - 1}] carries")
    return f"layers[{index}] cannot take its input into an input memory: {why}"


def with_input_memory(plans: Sequence[LayerPlan], layers: Sequence[int]) -> list[LayerPlan]:
    """``plans`` with an input memory in each of ``layers`` (see :func:`memory_layers`)."""
    plans = list(plans)
    for index in sorted(set(layers)):
        beat = input_beat(plans, index)
        if beat is None:
            raise ValueError(_refusal(plans, index))
        plans[index] = plans[index].with_folding(input_beat=beat)
    return plans


def check_input_beats(plans: Sequence[LayerPlan]) -> None:
    """Check that every layer with an input memory can take its ``input_beat``: its unit
    allows it and, after the first layer, it is a whole number of the layer before's beats.

    Raises
    ------
    ValueError
        If one cannot.
    """
    for index, plan in enumerate(plans):
        beat = plan.folding.input_beat
        if beat is None or _fits(plans, index, beat):
            continue
        fits = input_beat(plans, index)
        raise ValueError(f"layers[{index}] cannot take its input {beat} elements a beat into "
                         f"an input memory"
                         + (f"; {fits} would do" if fits is not None else
                            f" ({_refusal(plans, index).split(': ', 1)[1]})"))
