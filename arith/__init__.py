"""fewmul.arith: the arithmetic that the golden model and the gateware share.

Nothing here knows of Amaranth: these are the integer formulas (the popcount form of a dot
product, its bounds) and the on-chip trainer's configuration (its scales, derived bounds and
LFSR) that :mod:`fewmul.nn`, the network IR and :mod:`fewmul.gateware` all compute with,
written once.
"""

from .dot import INPUT_KINDS, WEIGHT_KINDS, DotProduct, Term, check_input, sum_bound
from .onchip import LFSR_TAPS, LFSR_WIDTH, OnChipConfig

__all__ = ["INPUT_KINDS", "WEIGHT_KINDS", "DotProduct", "Term", "check_input", "sum_bound",
           "LFSR_TAPS", "LFSR_WIDTH", "OnChipConfig"]
