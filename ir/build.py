"""Building graphs: the ops of one layer with weights, and nets of fully-connected layers."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .graph import Graph
from .ops import Argmax, MatVec, MultiThreshold, Scores
from .types import TensorType

__all__ = ["DenseLayer", "dense_layer", "dense_net", "weighted_ops"]


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


def weighted_ops(prefix: str, in_type: TensorType, weights, weight_kind: str, *,
                 thresholds=None, shifts=None, offsets=None) -> list:
    """``MatVec`` then ``MultiThreshold`` (given ``thresholds``) or ``Scores`` (given ``shifts``
    and ``offsets``), named ``{prefix}.matvec`` and ``{prefix}.threshold`` or ``.scores``."""
    matvec = MatVec(f"{prefix}.matvec", in_type, weights, weight_kind)
    if thresholds is not None:
        return [matvec, MultiThreshold(f"{prefix}.threshold", matvec.out_type, thresholds)]
    return [matvec, Scores(f"{prefix}.scores", matvec.out_type, shifts, offsets)]


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
        ops += weighted_ops(f"layer{index}", TensorType.vector(n, layer.input_kind,
                                                               layer.input_bits),
                            layer.weights, layer.weight_kind, thresholds=layer.thresholds,
                            shifts=layer.shifts, offsets=layer.offsets)
    ops.append(Argmax("argmax", ops[-1].out_type))
    return Graph(ops)
