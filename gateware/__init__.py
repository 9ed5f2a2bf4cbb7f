"""fewmul.gateware: multiplier-free Amaranth components for binary neural networks."""

from .activation import ScoreUnit, ThresholdUnit
from .argmax import Argmax
from .collector import Collector
from .fifo import StreamFIFO
from .mvu import INPUT_KINDS, WEIGHT_KINDS, MatrixVectorUnit, pack_rows, signed_shape, sum_bound
from .network import Network
from .pool import MaxPool
from .popcount import pipelined_popcount, popcount
from .queue import CreditQueue
from .skid import SkidBuffer
from .vector_memory import VectorMemory
from .widths import Widths
from .window import SlidingWindow

__all__ = [
    "popcount", "pipelined_popcount", "INPUT_KINDS", "WEIGHT_KINDS", "Widths", "sum_bound",
    "signed_shape", "pack_rows", "MatrixVectorUnit",
    "ThresholdUnit", "ScoreUnit", "Collector", "SkidBuffer", "StreamFIFO", "CreditQueue", "Argmax", "Network",
    "SlidingWindow", "MaxPool", "VectorMemory",
]
