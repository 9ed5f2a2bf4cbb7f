"""Building graphs of fully-connected layers."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .graph import Graph
from .ops import Argmax, MatVec, MultiThreshold, Scores
from .types import TensorType

__all__ = ["DenseLayer", "dense_layer", "dense_net"]


@dataclass
class DenseLayer:
    """The parameters of one fully-connected layer before it is placed in a graph: hidden
    layers have ``thresholds``, the output layer ``shifts`` and ``offsets``."""
    weights: np.ndarray
    input_kind: str
    input_bits: int
    weight_kind: str = "binary"
    thresholds: np.ndarray | None = None
    shifts: np.ndarray | None = None
    offsets: np.ndarray | None = None


def dense_layer(weights, input_kind: str, input_bits: int, *, thresholds=None, shifts=None,
                offsets=None, weight_kind: str = "binary") -> DenseLayer:
    """A fully-connected layer (see :class:`DenseLayer`)."""
    if (thresholds is None) == (shifts is None or offsets is None):
        raise ValueError("A layer has thresholds (hidden) or shifts and offsets (output), "
                         "not both or neither")
    return DenseLayer(np.asarray(weights), input_kind, int(input_bits), weight_kind,
                      None if thresholds is None else np.asarray(thresholds),
                      None if shifts is None else np.asarray(shifts),
                      None if offsets is None else np.asarray(offsets))


def dense_net(layers: list[DenseLayer]) -> Graph:
    """The graph ``MatVec -> MultiThreshold -> ... -> MatVec -> Scores -> Argmax``.

    Each layer's input type is its own ``input_kind`` and ``input_bits``; the graph checks that
    it is what the layer before outputs.
    """
    if not layers:
        raise ValueError("A network must have at least one layer")
    ops = []
    for index, layer in enumerate(layers):
        n = np.asarray(layer.weights).shape[1]
        matvec = MatVec(f"layer{index}.matvec",
                        TensorType.vector(n, layer.input_kind, layer.input_bits),
                        layer.weights, layer.weight_kind)
        ops.append(matvec)
        if layer.thresholds is not None:
            ops.append(MultiThreshold(f"layer{index}.threshold", matvec.out_type,
                                      layer.thresholds))
        else:
            ops.append(Scores(f"layer{index}.scores", matvec.out_type, layer.shifts,
                              layer.offsets))
    ops.append(Argmax("argmax", ops[-1].out_type))
    return Graph(ops)
