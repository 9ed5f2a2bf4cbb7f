"""fewmul.gateware.training: multiplier-free units that train a binary or ternary network on chip.

The forward pass adds and subtracts, the error is back-propagated through the
binary weights by adding and subtracting, and the weight update is the error
shifted by a barrel shifter (quantized back-propagation with a power-of-two
learning rate). Stochastic rounding draws its bits from an LFSR.
:class:`OnChipTrainer` takes the :class:`fewmul.arith.onchip.OnChipConfig` that the
integer golden model reads too.
"""

from .shifter import BarrelShifter
from .lfsr import Lfsr
from .qbp import QbpRounder
from .forward import RowDot
from .delta import HingeError, DeltaBackprop
from .update import WeightUpdate
from .batch import BatchApply
from .fixed import clip, round_shift, round_shift_magnitude, weight_masks
from .sweep import RowSweep
from .top import OnChipTrainer, step_cycles

__all__ = [
    "BarrelShifter", "Lfsr", "QbpRounder", "RowDot", "HingeError", "DeltaBackprop",
    "WeightUpdate", "BatchApply", "RowSweep", "OnChipTrainer", "step_cycles", "round_shift",
    "round_shift_magnitude", "clip", "weight_masks",
]
