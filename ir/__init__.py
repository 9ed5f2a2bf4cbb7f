"""fewmul.ir: the network IR.

A :class:`Graph` of typed ops (:mod:`fewmul.ir.ops`), each with shapes, an exact NumPy forward
(the golden model is the graph executed) and a hardware binding (:class:`Binding`: cycles,
latency, area estimate, Amaranth component, output stream layout). :func:`fold` turns a
trained :mod:`fewmul.nn` model into one; the compiler plans, lowers and emits it.
"""

from .build import DenseLayer, dense_layer, dense_net
from .graph import FORMAT_VERSION, Graph, Layer
from .op import OP_KINDS, Binding, Estimate, Folding, Op, StreamLayout, register
from .ops import Argmax, MatVec, MaxPool, MultiThreshold, Scores, SlidingWindow
from .types import ELEMENT_KINDS, TensorType

__all__ = [
    "Graph", "Layer", "FORMAT_VERSION", "Op", "Binding", "Folding", "Estimate", "StreamLayout",
    "OP_KINDS", "register", "TensorType", "ELEMENT_KINDS", "SlidingWindow", "MatVec", "MultiThreshold",
    "MaxPool", "Scores", "Argmax", "DenseLayer", "dense_layer", "dense_net",
]
