"""The op kinds of the network IR, one module each."""

from .argmax import Argmax
from .matvec import MatVec
from .maxpool import MaxPool
from .scores import Scores
from .threshold import MultiThreshold
from .window import SlidingWindow

__all__ = ["SlidingWindow", "MatVec", "MultiThreshold", "MaxPool", "Scores", "Argmax"]
