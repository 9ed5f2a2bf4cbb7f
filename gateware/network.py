"""A chain of stream units: the top of an emitted network."""

from typing import Sequence

from amaranth.hdl import Module
from amaranth.lib import wiring

__all__ = ["Network"]


class Network(wiring.Component):
    """Stream units in a chain, each one's ``o`` connected to the next one's ``i``.

    The compiler builds one from the network IR (see :func:`fewmul.compiler.lower.lower`):
    per layer ``L`` a :class:`~.mvu.MatrixVectorUnit` (``layer{L}_mvu``), an activation
    (``layer{L}_act``), a :class:`~.skid.SkidBuffer` (``layer{L}_skid``) and a
    :class:`~.collector.Collector` (``layer{L}_collect``), then an :class:`~.argmax.Argmax`
    (``argmax``). The skid buffer ends the combinational paths between layers: the
    matrix-vector unit's clock enable and the activation's beat counter come from registers,
    ``ready`` never crosses a layer.

    Parameters
    ----------
    stages : sequence of (str, Component)
        Submodule names and units, from input to output; each unit has an ``i`` and an ``o``
        stream, ``o`` of each matching ``i`` of the next.
    cycles_per_inference, latency_cycles : int
        The timing the compiler predicts for the chain: an input is accepted every
        ``cycles_per_inference`` cycles in the steady state, and its result is valid
        ``latency_cycles`` after it was transferred into an idle chain (at most that, for a
        convolutional network, whose layers start on the first pixels of the layer before).
    input_beats : int
        Transfers on ``i`` per image (a convolutional network takes its image pixel by pixel, a
        first layer with an input memory in its beats; 1 when each transfer is a whole image).

    Attributes
    ----------
    stages : dict of str to Component
        The units by submodule name.

    Members
    -------
    i : the first unit's ``i``
    o : the last unit's ``o``
    """

    def __init__(self, stages: Sequence[tuple[str, wiring.Component]], *,
                 cycles_per_inference: int, latency_cycles: int, input_beats: int = 1):
        stages = list(stages)
        if not stages:
            raise ValueError("A network must have at least one stage")
        names = [name for name, _ in stages]
        if len(set(names)) != len(names):
            raise ValueError(f"Stage names must be unique, not {names!r}")
        self.stages = dict(stages)
        self.cycles_per_inference = cycles_per_inference
        self.latency_cycles = latency_cycles
        if not isinstance(input_beats, int) or input_beats < 1:
            raise ValueError(f"Input beats must be a positive integer, not {input_beats!r}")
        self.input_beats = input_beats
        first, last = stages[0][1], stages[-1][1]
        super().__init__({"i": first.signature.members["i"],
                          "o": last.signature.members["o"]})

    def elaborate(self, platform):
        m = Module()
        upstream = wiring.flipped(self.i)
        for name, unit in self.stages.items():
            m.submodules[name] = unit
            wiring.connect(m, upstream, unit.i)
            upstream = unit.o
        wiring.connect(m, upstream, wiring.flipped(self.o))
        return m
