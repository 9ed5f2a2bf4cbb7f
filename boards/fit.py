"""Whether a design fits its board, and which folding would make it fit.

The suggestion scales the measured use of the overfull resource with the
planner's area estimate when the planner takes a LUT budget (its fastest plan
under the budget, calibrated by this build's measured use), else the "PE
work" of a folding, ``sum_L pe_L * simd_L * input_bits_L`` (the XNOR / AND
gates and popcount inputs computed per cycle). Registers that do not shrink
with the folding (input and output latches, the link's frames, a convolution's
window registers and line buffers) make both optimistic for heavily folded
designs; the message says it is an estimate.

A layer's folding divides its head's neurons (a convolution's filters, not the
elements of its output image), and its cycles are those of its head at each
``pe`` (a convolution's: a pass over the windows of the image per group of
``pe`` filters).
"""

from __future__ import annotations

import inspect
import re
from dataclasses import replace
from pathlib import Path

from fewmul.arith.ranges import divisors
from fewmul.compiler.input_memory import input_beat, memory_layers
from fewmul.compiler.lower import LayerPlan, plan_folding
from fewmul.compiler.planner import layer_plans
from fewmul.ir import Graph
from fewmul.ir.op import block_rams

from .nets import fastest_cycles
from .targets import Board

__all__ = ["FitError", "check_fit", "check_estimate", "estimated_brams", "estimated_sprams",
           "weight_memory", "spram_layers", "SPRAM_CHOICES", "suggest_folding",
           "pe_work", "cycle_targets",
           "pnr_utilisation_from_log"]

KIND_NAMES = {"lut": "LUTs", "ff": "flip-flops", "bram": "block RAMs", "dsp": "DSP blocks",
              "spram": "SPRAM blocks"}
#: ``spram_layers`` choices besides a list of layers.
SPRAM_CHOICES = ("auto", "none", "all")
#: Use of a resource aimed at when suggesting a folding (routing needs slack).
FILL_TARGET = 0.85


class FitError(ValueError):
    """The design needs more of a resource than the board's device has.

    Attributes
    ----------
    resource : str
        ``"lut"``, ``"ff"``, ``"bram"`` or ``"dsp"``.
    used, available : float
        Need and capacity.
    suggestion : str
        The folding (or smaller network) estimated to fit.
    """

    def __init__(self, message: str, *, resource: str, used: float, available: float,
                 suggestion: str):
        super().__init__(message)
        self.resource, self.used, self.available = resource, used, available
        self.suggestion = suggestion


def pe_work(net: Graph, plans: list[LayerPlan]) -> int:
    """``sum_L pe_L * simd_L * input_bits_L``: the logic that grows with the folding.

    ``simd_L`` (inputs per neuron per cycle) is all the layer's inputs for plans without it; a
    convolution's inputs are its window's ``K * K * C`` elements, the bits those of its image.
    """
    return sum(p.pe * (getattr(p, "simd", None) or p.inputs) * layer.head.in_type.bits
               for p, layer in zip(plans, net.layers))


def cycle_targets(net: Graph) -> list[int]:
    """Cycles per inference to try, fastest first: each layer's head's cycles at every ``pe``
    that divides its neurons (all its inputs per cycle), from the fastest any folding of the
    network reaches."""
    floor = fastest_cycles(net)
    cycles = {base.layer.head.binding.cycles(replace(base.folding, pe=pe))
              for base in layer_plans(net) for pe in divisors(base.neurons)}
    return sorted({max(c, floor) for c in cycles})


def _pe_text(plans) -> str:
    """The command-line options of a folding: ``--pe`` and, when inputs are folded, ``--simd``."""
    text = ",".join(str(p.pe) for p in plans)
    simds = [getattr(p, "simd", None) or p.inputs for p in plans]
    if any(s != p.inputs for s, p in zip(simds, plans)):
        text += " --simd " + ",".join(map(str, simds))
    return text


def _cycles(plans) -> int:
    return max(p.cycles for p in plans)


def _cycles_text(candidate, plans) -> str:
    """The rate of a suggested folding, against the build's (a convolution's window may set
    both)."""
    new, old = _cycles(candidate), _cycles(plans)
    return (f"{new} cycles/inference instead of {old}" if new != old else
            f"still {new} cycles/inference")


def suggest_folding(net: Graph, plans: list[LayerPlan], used: float, available: float,
                    unit: str = "", kind: str = "lut") -> tuple[str, list[LayerPlan] | None]:
    """The fastest folding whose estimated use is at most :data:`FILL_TARGET` of ``available``.

    Returns the advice and the plans (None when even one PE per layer is estimated too big).
    """
    planned = _planner_suggestion(net, plans, used, available, unit) if kind == "lut" else None
    if planned is not None:
        return planned
    work = pe_work(net, plans)
    per_work = used / work
    for target in cycle_targets(net):
        candidate = plan_folding(net, "auto", target)
        estimate = per_work * pe_work(net, candidate)
        if estimate <= FILL_TARGET * available and pe_work(net, candidate) < work:
            return (f"--pe {_pe_text(candidate)} ({_cycles_text(candidate, plans)}) is "
                    f"estimated to need about {estimate:.0f} {unit}", candidate)
    smallest = plan_folding(net, 1)
    estimate = per_work * pe_work(net, smallest)
    shrink = FILL_TARGET * available / estimate
    return (f"even --pe 1 ({_cycles(smallest)} cycles/inference) is estimated to need about "
            f"{estimate:.0f} {unit}; use a smaller network (about {100 * shrink:.0f} % of the weights of "
            f"the layers, e.g. fewer hidden units or filters) or a larger board such as "
            f"--board ulx3s", None)


def _planner_suggestion(net, plans, used, available, unit):
    """With a planner that takes a LUT budget: its fastest plan under the budget, the planner's
    estimates calibrated by this build's measured use."""
    if "max_luts" not in inspect.signature(plan_folding).parameters or \
            not all(hasattr(p, "estimate") for p in plans):
        return None
    planned = sum(p.estimate().luts for p in plans)
    if planned <= 0:
        return None
    ratio = used / planned
    try:
        candidate = plan_folding(net, "auto", max_luts=int(FILL_TARGET * available / ratio))
    except ValueError:
        return None
    estimate = ratio * sum(p.estimate().luts for p in candidate)
    return (f"--pe {_pe_text(candidate)} ({_cycles_text(candidate, plans)}) is estimated to "
            f"need about {estimate:.0f} {unit}", candidate)


def weight_memory(plan: LayerPlan) -> tuple[int, int]:
    """``(depth, width)`` of a layer's weight memory: a word of ``pe * simd`` weights (two
    masks each if ternary) per group of ``pe`` neurons and fold."""
    head, folding = plan.layer.head, plan.folding
    binding = head.binding
    return (binding.groups(folding) * binding.folds(folding),
            folding.pe * plan.simd * head.dot.masks)


def _block_memories(plans: list[LayerPlan], spram=()) -> list[tuple[int, int]]:
    """The planner's memories, less the weight memories of the ``spram`` layers."""
    memories = []
    for index, plan in enumerate(plans):
        listed = list(plan.estimate().memories)
        if index in spram and weight_memory(plan) in listed:
            listed.remove(weight_memory(plan))
        memories += listed
    return memories


def estimated_brams(board: Board, plans: list[LayerPlan], spram=()) -> int:
    """Block RAMs of ``board`` that the planner's memories take, in the units of its
    capacity (each memory in the cheapest of the device's block configurations); the weights of
    the ``spram`` layers are in SPRAM instead."""
    blocks = sum(block_rams(depth, width, board.bram_geometries)
                 for depth, width in _block_memories(plans, spram))
    return -(-blocks // board.blocks_per_bram)


def estimated_sprams(plans: list[LayerPlan], spram) -> int:
    """SPRAM blocks the weight memories of the ``spram`` layers take (16-bit blocks side by
    side, 16K words deep)."""
    from fewmul.gateware.spram import spram_blocks
    return sum(spram_blocks(width, depth)
               for depth, width in (weight_memory(plans[index]) for index in spram))


def spram_layers(board: Board, plans: list[LayerPlan], choice="auto") -> list[int]:
    """The layers whose weights go into the board's SPRAM, written at start-up over the link.

    Parameters
    ----------
    choice : "auto", "none", "all" or sequence of int
        ``"auto"``: none while the block RAM holds every memory by the planner's estimate, else
        the layers with the largest weight memories, largest first, each one whose blocks are
        still free, until the rest fits the block RAM (none on a board without SPRAM);
        ``"none"``; ``"all"``: every layer; or the layers (indices from 0), checked by the fit
        check (:func:`check_estimate`).
    """
    if isinstance(choice, str):
        if choice not in SPRAM_CHOICES:
            raise ValueError(f"SPRAM choice must be one of {', '.join(SPRAM_CHOICES)} or a list "
                             f"of layers, not {choice!r}")
        if choice == "none":
            return []
        if choice == "all":
            return list(range(len(plans)))
        free = board.spram_blocks
        if not free or estimated_brams(board, plans) <= board.capacity["bram"]:
            return []
        chosen: list[int] = []
        by_size = sorted(range(len(plans)), key=lambda i: -weight_memory(plans[i])[0]
                         * weight_memory(plans[i])[1])
        for index in by_size:
            need = estimated_sprams(plans, [index])
            if need <= free:
                chosen.append(index)
                free -= need
                if estimated_brams(board, plans, chosen) <= board.capacity["bram"]:
                    break
        return sorted(chosen)
    layers = sorted({int(i) for i in choice})
    if any(not 0 <= i < len(plans) for i in layers):
        raise ValueError(f"SPRAM layers must be between 0 and {len(plans) - 1}, not "
                         f"{list(choice)!r}")
    return layers


def _bram_suggestion(board: Board, net: Graph, plans: list[LayerPlan], used: float,
                     available: float, spram=()) -> str:
    """The fastest folding whose weight memories take at most ``available`` block RAMs (the
    weights' bits do not shrink with the folding, only how well they fill the blocks), the
    planner's count scaled by ``used`` / its count for ``plans``; SPRAM where the device has
    some."""
    advice = _bram_folding(board, net, plans, used, available, spram)
    if board.spram_blocks and not spram:
        return (f"{advice}; or the largest weights in the SPRAM (--spram auto, or the "
                f"layers)")
    return advice


def _bram_folding(board: Board, net: Graph, plans: list[LayerPlan], used: float,
                  available: float, spram) -> str:
    ratio = used / max(1, estimated_brams(board, plans, spram))
    for target in cycle_targets(net):
        candidate = plan_folding(net, "auto", target)
        estimate = ratio * estimated_brams(board, candidate, spram)
        if estimate <= available:
            return (f"--pe {_pe_text(candidate)} ({_cycles_text(candidate, plans)}) is "
                    f"estimated to need about {estimate:.0f} block RAMs")
    bits = sum(depth * width for depth, width in _block_memories(plans, spram))
    return (f"the weights and buffers ({bits / 1024:.0f} kbit in block RAM at any folding) "
            f"need a smaller network (fewer hidden units or filters) or a larger board such as "
            f"--board ulx3s")


def check_estimate(board: Board, net: Graph, plans: list[LayerPlan], spram=()) -> None:
    """Refuse, before any synthesis, a folding whose LUTs, flip-flops, block RAMs or SPRAM
    blocks (the weights of the ``spram`` layers) by the planner's estimate alone exceed the
    board's (the estimate leaves out the host link and most control logic, so it is below what
    synthesis finds: a design refused here cannot fit)."""
    estimates = [plan.estimate() for plan in plans]
    used = {"lut": sum(e.luts for e in estimates), "ff": sum(e.ffs for e in estimates),
            "bram": estimated_brams(board, plans, spram),
            "spram": estimated_sprams(plans, spram)}
    check_fit(board, used, net, plans, stage="the planner's estimate, before synthesis",
              kinds=("lut", "ff", "bram", "spram"), spram=spram)


def _spram_suggestion(board: Board, plans: list[LayerPlan], spram, have: int) -> str:
    """What to change when the ``spram`` layers' words take more SPRAM blocks than ``have``."""
    from fewmul.gateware.spram import SPRAM_WIDTH
    if not have:
        return (f"the {board.title} has no SPRAM: put the weights in block RAM (no SPRAM "
                f"layers) or use a board with SPRAM such as --board icebreaker")
    words = ", ".join(f"layer {i}: {weight_memory(plans[i])[1]}-bit words, "
                      f"{estimated_sprams(plans, [i])} block{'s' if estimated_sprams(plans, [i]) > 1 else ''}"
                      for i in spram)
    return (f"each SPRAM block reads {SPRAM_WIDTH} bits a cycle ({words}): fewer SPRAM layers "
            f"or narrower words (a smaller --pe or --simd of those layers)")


def check_fit(board: Board, used: dict, net: Graph, plans: list[LayerPlan], *,
              stage: str, kinds: tuple[str, ...] = ("lut", "ff", "bram", "dsp", "spram"),
              spram=()) -> None:
    """Raise :class:`FitError` for the first resource of ``used`` (of ``kinds``) over the
    board's capacity (``spram``: the layers whose weights are in SPRAM)."""
    for kind in kinds:
        have = board.spram_blocks if kind == "spram" else board.capacity.get(kind)
        need = used.get(kind)
        if have is None or need is None or need <= have:
            continue
        name = KIND_NAMES[kind]
        if kind == "spram":
            advice = _spram_suggestion(board, plans, spram, have)
            raise FitError(f"the design does not fit the {board.title}: it needs {need:g} "
                           f"{name} ({stage}) but the device has {have}. To fit: {advice}.",
                           resource=kind, used=need, available=have, suggestion=advice)
        if kind == "bram":
            advice = _bram_suggestion(board, net, plans, need, have, spram)
        else:
            advice, _ = suggest_folding(net, plans, need, have, name, kind)
            advice += _input_memory_advice(plans)
        message = (f"the design does not fit the {board.title}: it needs {need:g} {name} "
                   f"({stage}) but the device has {have}, {need - have:g} over "
                   f"({100 * need / have:.0f} %), with folding --pe {_pe_text(plans)} "
                   f"({_cycles(plans)} cycles/inference). To fit: {advice} (an estimate"
                   + (" scaled from this build)." if "estimate" not in stage else ")."))
        raise FitError(message, resource=kind, used=need, available=have, suggestion=advice)


def _input_memory_advice(plans: list[LayerPlan]) -> str:
    """The layers that could take their input vector into block RAM but latch it, as advice
    (their registers and collectors are much of a small device's logic cells)."""
    latched = [index for index, plan in enumerate(plans)
               if plan.folding.input_beat is None and input_beat(plans, index) is not None]
    if not latched:
        return ""
    have = [index for index, plan in enumerate(plans) if plan.folding.input_beat]
    layers = sorted(have + latched)
    choice = "all" if layers == memory_layers(plans, "all") else ",".join(map(str, layers))
    return (f"; or, at this folding, the input vectors of layers "
            f"{', '.join(map(str, latched))} in block RAM instead of registers (--input-memory "
            f"{choice}, a block RAM each)")


_UTIL = re.compile(r"^Info:\s+(\w+):\s+(\d+)/\s*(\d+)\s+\d+%", re.M)


def pnr_utilisation_from_log(board: Board, log: Path) -> dict:
    """Resource use from the "Device utilisation" table of a nextpnr log (kinds as keys)."""
    log = Path(log)
    if not log.exists():
        return {}
    kinds = {bel: kind for kind, bel in board.pnr_bels.items()}
    used = {}
    for bel, need, _ in _UTIL.findall(log.read_text(errors="replace")):
        if bel in kinds:
            used[kinds[bel]] = max(used.get(kinds[bel], 0), int(need))
    return used
