"""The op kinds of the network IR, one module each."""

from .argmax import Argmax
from .matvec import MatVec
from .scores import Scores
from .threshold import MultiThreshold

__all__ = ["MatVec", "MultiThreshold", "Scores", "Argmax"]
