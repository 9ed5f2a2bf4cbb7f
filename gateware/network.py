"""A whole fully-connected binary network ending in an argmax."""

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from amaranth.hdl import Module, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .activation import ScoreUnit, ThresholdUnit
from .argmax import Argmax
from .collector import Collector
from .mvu import MatrixVectorUnit, check_pe, sum_bound, weight_values
from .skid import SkidBuffer

__all__ = ["LayerParams", "Network"]


@dataclass
class LayerParams:
    """Parameters of one layer.

    Hidden layers have ``thresholds``; the output layer has ``shifts`` and ``offsets``.

    Attributes
    ----------
    weights : numpy.ndarray
        Weights, shape ``(M, N)``: bits (1 for +1, 0 for -1), or -1/0/+1 if ternary.
    input_kind : str
        ``"bipolar"`` or ``"unsigned"``.
    input_bits : int
        Bits per input (1 for bipolar inputs).
    pe : int
        Neurons computed per cycle; must divide ``M``.
    thresholds : sequence of int, or of sequences of int, optional
        ``T_m``: neuron ``m`` outputs 1 when its sum ``s_m >= T_m`` (the next layer's inputs
        are bipolar); or ``2^k - 1`` thresholds per neuron for ``k``-bit outputs (the next
        layer's inputs are ``k``-bit unsigned), see :class:`ThresholdUnit`.
    shifts, offsets : sequence of int, optional
        Output scores ``(s_m << shifts[m]) + offsets[m]``.
    simd : int, optional
        Inputs per neuron per cycle (default: all).
    weight_kind : str
        ``"binary"`` or ``"ternary"``.
    pipeline : int
        Register stages in the popcount trees.
    popcount_style : str
        ``"adder"`` or ``"compressor"``.
    """
    weights: np.ndarray
    input_kind: str
    input_bits: int
    pe: int
    thresholds: Sequence[int] | None = None
    shifts: Sequence[int] | None = None
    offsets: Sequence[int] | None = None
    simd: int | None = None
    weight_kind: str = "binary"
    pipeline: int = 0
    popcount_style: str = "adder"


def _check_layers(layers, output_needed=True):
    """Check the layers and how they fit together, without building any hardware."""
    if not layers:
        raise ValueError("A network must have at least one layer")
    n_neurons = out_bits = None
    for index, layer in enumerate(layers):
        if not isinstance(layer, LayerParams):
            raise TypeError(f"Layer {index} must be a LayerParams, not {layer!r}")
        m, n = weight_values(layer.weights, layer.weight_kind).shape
        sum_bound(n, layer.input_kind, layer.input_bits)
        check_pe(m, layer.pe)
        if index > 0:
            if n != n_neurons:
                raise ValueError(f"Layer {index} has {n} inputs but layer {index - 1} has "
                                 f"{n_neurons} neurons")
            kind = "bipolar" if out_bits == 1 else "unsigned"
            if (layer.input_kind, layer.input_bits) != (kind, out_bits):
                raise ValueError(f"Layer {index} must have {kind} {out_bits}-bit inputs, as "
                                 f"layer {index - 1} outputs, not {layer.input_kind!r} "
                                 f"{layer.input_bits}-bit ones")
        if index < len(layers) - 1 or (not output_needed and layer.thresholds is not None):
            if layer.thresholds is None or layer.shifts is not None or \
                    layer.offsets is not None:
                raise ValueError(f"Hidden layer {index} must have thresholds and no shifts or "
                                 f"offsets")
            params = [layer.thresholds]
        else:
            if layer.shifts is None or layer.offsets is None or layer.thresholds is not None:
                raise ValueError(f"Output layer {index} must have shifts and offsets and no "
                                 f"thresholds")
            params = [layer.shifts, layer.offsets]
        if any(len(param) != m for param in params):
            raise ValueError(f"Layer {index} has {m} neurons but "
                             f"{'/'.join(str(len(param)) for param in params)} activation "
                             f"parameters")
        n_neurons = m
        first = layer.thresholds[0] if layer.thresholds is not None and len(layer.thresholds) \
            else 0
        out_bits = len(first).bit_length() if hasattr(first, "__len__") else 1


def layer_units(layer: LayerParams):
    """The :class:`MatrixVectorUnit`, activation unit and :class:`Collector` of one layer."""
    mvu = MatrixVectorUnit(layer.weights, input_kind=layer.input_kind,
                           input_bits=layer.input_bits, pe=layer.pe, simd=layer.simd,
                           weight_kind=layer.weight_kind, pipeline=layer.pipeline,
                           popcount_style=layer.popcount_style)
    if layer.thresholds is not None:
        act = ThresholdUnit(layer.thresholds, sum_bound=mvu.sum_bound, pe=layer.pe)
        out_shape = act.out_shape
    else:
        act = ScoreUnit(layer.shifts, layer.offsets, sum_bound=mvu.sum_bound, pe=layer.pe)
        out_shape = act.score_shape
    return mvu, act, Collector(out_shape, layer.pe, mvu.n_neurons)


def _chain(m, units, upstream, prefix=""):
    """Add ``units`` (mvu, act, collector) to ``m`` after ``upstream``; returns their output.

    A :class:`SkidBuffer` between the activation and the collector ends the combinational
    paths there: the matrix-vector unit's clock enable and the activation's beat counter come
    from registers, ``ready`` never crosses a layer, and the comparison of the activation does
    not share a cycle with the collector's write.
    """
    mvu, act, collector = units
    skid = SkidBuffer(act.o.payload.shape())
    for name, unit in zip(("mvu", "act", "skid", "collect"), (mvu, act, skid, collector)):
        m.submodules[f"{prefix}{name}"] = unit
    wiring.connect(m, upstream, mvu.i)
    wiring.connect(m, mvu.o, act.i)
    wiring.connect(m, act.o, skid.i)
    wiring.connect(m, skid.o, collector.i)
    return collector.o


class LayerUnit(wiring.Component):
    """One layer on its own (matrix-vector unit, activation, collector), e.g. to synthesize
    layers one at a time.

    Members
    -------
    i : input vectors, as :class:`MatrixVectorUnit`'s ``i``
    o : output vectors, as :class:`Collector`'s ``o``
    """

    def __init__(self, layer: LayerParams):
        _check_layers([layer], output_needed=False)
        self.units = layer_units(layer)
        super().__init__({"i": self.units[0].signature.members["i"],
                          "o": self.units[2].signature.members["o"]})

    def elaborate(self, platform):
        m = Module()
        out = _chain(m, self.units, wiring.flipped(self.i))
        wiring.connect(m, out, wiring.flipped(self.o))
        return m


class Network(wiring.Component):
    """Chain of layers, each a :class:`MatrixVectorUnit`, an activation and a :class:`Collector`,
    followed by an :class:`Argmax`.

    Submodules are named ``layer{L}_mvu``, ``layer{L}_act``, ``layer{L}_skid``,
    ``layer{L}_collect`` and ``argmax``.

    Timing, with ``G_L = M_L / pe_L`` beats of ``F_L`` folds in layer ``L``, the input always
    valid and the output always ready: an input is accepted every ``cycles_per_inference =
    max(max_L G_L F_L, A)`` cycles in the steady state (the slowest :class:`MatrixVectorUnit`,
    or the argmax's ``A`` cycles), and a
    result is valid ``latency_cycles = sum_L (latency_L + (G_L - 1) F_L + 2) + A`` cycles
    after its input was transferred into an idle network (per layer: the unit's latency to its
    first beat, ``G_L - 1`` more beats, 1 cycle in the skid buffer and 1 in the collector; then
    ``A = 2 max(1, ceil(log2 M)) + 1`` cycles of the argmax over the ``M`` scores, two per
    round). The argmax's output register is the network's: its consumer (the host link) answers
    ``ready`` from a register.

    Parameters
    ----------
    layers : list of LayerParams
        Layers from input to output. Layer ``L + 1`` has as many inputs as layer ``L`` has
        neurons, and takes what it outputs (bipolar bits after one threshold per neuron,
        ``k``-bit unsigned levels after ``2^k - 1``); every layer but the last has thresholds,
        the last has shifts and offsets.

    Attributes
    ----------
    mvus, activations, collectors : list
        Each layer's units.
    argmax : Argmax
        Final unit.
    cycles_per_inference, latency_cycles : int
        Predicted timing, see above.

    Members
    -------
    i : ``In(stream.Signature(ArrayLayout(unsigned(input_bits), N)))``
        Input vectors of the first layer.
    o : ``Out(stream.Signature(StructLayout({"label": ..., "scores": ...})))``
        Label and scores, as produced by :class:`Argmax`.
    """

    def __init__(self, layers: Sequence[LayerParams]):
        layers = list(layers)
        _check_layers(layers)  # before creating any unit, so none is left unused on error
        self.layers = layers
        self.mvus, self.activations, self.collectors = [], [], []
        for layer in layers:
            mvu, act, collector = layer_units(layer)
            self.mvus.append(mvu)
            self.activations.append(act)
            self.collectors.append(collector)
        out_shape = self.collectors[-1].o.payload.shape().elem_shape
        self.argmax = Argmax(self.mvus[-1].n_neurons, out_shape)

        self.cycles_per_inference = max(self.argmax.cycles_per_vector,
                                        *(mvu.cycles_per_vector for mvu in self.mvus))
        self.latency_cycles = self.argmax.latency + sum(
            mvu.latency + (mvu.groups - 1) * mvu.folds + SkidBuffer.latency + collector.latency
            for mvu, collector in zip(self.mvus, self.collectors))
        super().__init__({
            "i": In(stream.Signature(data.ArrayLayout(unsigned(layers[0].input_bits),
                                                      self.mvus[0].n_inputs))),
            "o": Out(self.argmax.o.signature),
        })

    def elaborate(self, platform):
        m = Module()
        upstream = wiring.flipped(self.i)
        for index, units in enumerate(zip(self.mvus, self.activations, self.collectors)):
            upstream = _chain(m, units, upstream, f"layer{index}_")
        m.submodules.argmax = self.argmax
        wiring.connect(m, upstream, self.argmax.i)
        wiring.connect(m, self.argmax.o, wiring.flipped(self.o))
        return m
