"""fewmul.gateware: multiplier-free Amaranth components for binary neural networks."""

from .activation import ScoreUnit, ThresholdUnit
from .argmax import Argmax
from .collector import Collector
from .mvu import INPUT_KINDS, MatrixVectorUnit, signed_shape, sum_bound
from .network import LayerParams, Network
from .popcount import popcount

__all__ = [
    "popcount", "INPUT_KINDS", "sum_bound", "signed_shape", "MatrixVectorUnit",
    "ThresholdUnit", "ScoreUnit", "Collector", "Argmax", "LayerParams", "Network",
]
