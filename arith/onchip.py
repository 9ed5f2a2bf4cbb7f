"""The on-chip trainer's configuration: its sizes, fixed-point scales and LFSR, written once.

The integer golden model (:mod:`fewmul.nn.onchip`) and the trainer's gateware
(:mod:`fewmul.gateware.training`) both read an :class:`OnChipConfig`: the golden model to
compute a training step, the gateware to size its registers and shifters from the bounds
derived here, so that the two cannot disagree on a scale, a bound or the random sequence.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from .dot import sum_bound

__all__ = ["LFSR_TAPS", "LFSR_WIDTH", "OnChipConfig"]

#: Taps (1-based, as in the usual tables) of the 32-bit maximal-length LFSR
#: ``x^32 + x^22 + x^2 + x + 1`` that draws the stochastic rounding bits.
LFSR_TAPS = (32, 22, 2, 1)
#: State bits of that LFSR.
LFSR_WIDTH = 32


@dataclass(frozen=True)
class OnChipConfig:
    """Sizes and fixed-point scales of the on-chip trainer.

    Attributes
    ----------
    inputs, hidden, classes : int
        ``N``, ``M`` and ``C``.
    input_bits : int
        Bits per unsigned input pixel ``k``.
    weight_bits : int
        Hidden weights are clipped to ``[-W0, W0]``, ``W0 = 2**weight_bits``.
    score_shift : int
        The hinge margin is ``2**score_shift`` in units of the output sum ``s2``.
    gate_shift : int
        The straight-through gate of hidden unit ``j`` is open when ``|s1_j| < 2**gate_shift``.
    lr_shift1, lr_shift2 : int
        Right shifts of the error in the updates of layer 1 and layer 2 (a power-of-two
        learning rate); ``lr_shift1 >= input_bits`` so that no QBP exponent makes it negative.
    lr_decay_steps, lr_decay_max : int
        Both shifts grow by one every ``lr_decay_steps`` steps (0: never), at most
        ``lr_decay_max`` times.
    seed : int
        Seed of the initial hidden weights (uniform in ``[-W0, W0]``).
    lfsr_seed : int
        Non-zero initial state of the LFSR (:data:`LFSR_WIDTH` bits, taps :data:`LFSR_TAPS`).
    """
    inputs: int = 64
    hidden: int = 64
    classes: int = 10
    input_bits: int = 4
    weight_bits: int = 6
    score_shift: int = 4
    gate_shift: int = 6
    lr_shift1: int = 6
    lr_shift2: int = 2
    lr_decay_steps: int = 300
    lr_decay_max: int = 2
    seed: int = 0
    lfsr_seed: int = 0x1D872B41

    def __post_init__(self):
        for name in ("inputs", "hidden", "classes", "input_bits", "weight_bits"):
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, not {value!r}")
        for name in ("score_shift", "gate_shift", "lr_shift1", "lr_shift2", "lr_decay_steps",
                     "lr_decay_max"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a non-negative integer, not {value!r}")
        if self.input_bits > 8:
            raise ValueError(f"input_bits must be between 1 and 8, not {self.input_bits!r}")
        if self.lr_shift1 < self.input_bits:
            raise ValueError(f"lr_shift1 must be at least input_bits={self.input_bits} (the "
                             f"largest QBP exponent), not {self.lr_shift1!r}")
        if not 0 < self.lfsr_seed < (1 << LFSR_WIDTH):
            raise ValueError(f"lfsr_seed must be a non-zero {LFSR_WIDTH}-bit integer, not "
                             f"{self.lfsr_seed!r}")

    @property
    def w0(self) -> int:
        """Clip bound ``W0 = 2**weight_bits`` of the hidden weights."""
        return 1 << self.weight_bits

    @property
    def random_bits(self) -> int:
        """LFSR bits drawn per input pixel for its QBP rounding (``input_bits - 1``)."""
        return self.input_bits - 1

    def lr_extra(self, steps_done: int) -> int:
        """Extra shift of both updates in the step after ``steps_done`` steps."""
        if not self.lr_decay_steps:
            return 0
        return min(steps_done // self.lr_decay_steps, self.lr_decay_max)

    @property
    def max_lr_extra(self) -> int:
        """Largest value of :meth:`lr_extra`: ``lr_decay_max``, or 0 without decay."""
        return self.lr_decay_max if self.lr_decay_steps else 0

    @property
    def max_exponent(self) -> int:
        """Largest QBP exponent, ``input_bits`` (a pixel ``2**k - 1`` may round up to ``2**k``)."""
        return self.input_bits

    # Bounds the hardware sizes its registers with.
    @property
    def s1_bound(self) -> int:
        """``|s1| <= s1_bound``: ``N (2**k - 1)``."""
        return sum_bound(self.inputs, "unsigned", self.input_bits)

    @property
    def s2_bound(self) -> int:
        """``|s2| <= s2_bound``: ``M`` (a sum of ``M`` terms ``±1``)."""
        return sum_bound(self.hidden, "bipolar", 1)

    @property
    def d2_bound(self) -> int:
        """``|d2| <= d2_bound``: the margin ``2**score_shift`` plus :attr:`s2_bound`."""
        return (1 << self.score_shift) + self.s2_bound

    @property
    def d1_bound(self) -> int:
        """``|d1| <= d1_bound``: ``C`` times :attr:`d2_bound`."""
        return self.classes * self.d2_bound

    def to_dict(self) -> dict:
        """The fields by name; ``OnChipConfig(**config.to_dict())`` is ``config`` again."""
        return {f.name: getattr(self, f.name) for f in fields(self)}
