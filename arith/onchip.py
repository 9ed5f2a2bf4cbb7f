"""The on-chip trainer's configuration: its sizes, fixed-point scales and LFSR, written once.

The integer golden model (:mod:`fewmul.nn.onchip`) and the trainer's gateware
(:mod:`fewmul.gateware.training`) both read an :class:`OnChipConfig`: the golden model to
compute a training step, the gateware to size its registers and shifters from the bounds
derived here, so that the two cannot disagree on a scale, a bound or the random sequence.

The net is ``sizes = (N, M_1, ..., M_{L-1}, C)``: ``L >= 2`` layers with weights, every
hidden layer a sign layer, the last one linear class scores. Layer ``l`` (1-based in the
formulas, index ``l - 1`` in every per-layer tuple here) has hidden weights ``W_l`` of shape
``(M_l, M_{l-1})`` (``M_0 = N``, ``M_L = C``), integers in ``[-W0, W0]``. One training
sample, all in integers (see :mod:`fewmul.nn.onchip` for the full step):

* forward: ``s_l = T(W_l) x_{l-1}`` with ``x_0 = q`` (``k``-bit pixels) and
  ``x_l = sign(s_l)`` (``+1`` for ``s_l >= 0``); ``T`` is the sign (binary) or the
  ternarization ``sign(w) [|w| > W0/2]``;
* error: ``d_L = t max(0, 2**score_shift - t s_L)``; back-propagation
  ``d_l = [|s_l| < 2**gate_shifts[l-1]] rshift_round(T(W_{l+1})^T d_{l+1}, backprop_shifts[l-1])``;
* update: ``rshift_round(d_l, lr_shifts[l-1] + x - e)`` per weight (``e`` the QBP exponent of
  a pixel in layer 1, 0 for the ``±1`` inputs of the other layers), accumulated over a batch
  of ``2**batch_shift`` samples and applied as ``rshift_round(A, batch_shift)``, then clipped.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from .dot import sum_bound

__all__ = ["LFSR_TAPS", "LFSR_WIDTH", "WEIGHT_KINDS", "OnChipConfig", "rshift_round_int"]

#: Taps (1-based, as in the usual tables) of the 32-bit maximal-length LFSR
#: ``x^32 + x^22 + x^2 + x + 1`` that draws the stochastic rounding bits.
LFSR_TAPS = (32, 22, 2, 1)
#: State bits of that LFSR.
LFSR_WIDTH = 32
#: Effective weights the trainer can use: the sign of a hidden weight, or its ternarization.
WEIGHT_KINDS = ("binary", "ternary")

def rshift_round_int(a: int, shift: int) -> int:
    """``a / 2**shift`` rounded to nearest, ties away from zero (one integer).

    The same rounding as :func:`fewmul.nn.onchip.rshift_round`; the magnitude is monotone in
    ``|a|``, so a bound of ``|a|`` gives a bound of the result.
    """
    mag = (abs(int(a)) << 1) >> shift
    mag = (mag >> 1) + (mag & 1)
    return -mag if a < 0 else mag


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


@dataclass(frozen=True)
class OnChipConfig:
    """Sizes and fixed-point scales of the on-chip trainer.

    Per-layer tuples are indexed from 0 for the layer next to the input; lists are accepted
    (as JSON gives them back) and stored as tuples, so ``OnChipConfig(**cfg.to_dict()) == cfg``.

    Attributes
    ----------
    sizes : tuple of int
        ``(N, M_1, ..., M_{L-1}, C)``: inputs, the hidden layers' units, classes; at least one
        hidden layer.
    input_bits : int
        Bits per unsigned input pixel ``k``, 1 to 8.
    weights : {"binary", "ternary"}
        Effective weights of every layer: ``+1 if w >= 0 else -1``, or
        ``sign(w) if |w| > W0/2 else 0``.
    weight_bits : int
        Hidden weights are clipped to ``[-W0, W0]``, ``W0 = 2**weight_bits``.
    score_shift : int
        The hinge margin is ``2**score_shift`` in units of the output sum ``s_L``.
    gate_shifts : tuple of int
        One per hidden layer: the straight-through gate of a unit is open when
        ``|s_l| < 2**gate_shifts[l-1]``.
    backprop_shifts : tuple of int
        One per hidden layer: the back-propagated error ``T(W_{l+1})^T d_{l+1}`` is shifted
        right by this much (rounded) before the gate; 0 leaves it unchanged.
    lr_shifts : tuple of int
        One per layer: right shift of the error in that layer's update (a power-of-two
        learning rate); ``lr_shifts[0] >= input_bits`` so that no QBP exponent makes it
        negative.
    lr_decay_steps, lr_decay_max : int
        Every shift grows by one every ``lr_decay_steps`` training samples (0: never), at most
        ``lr_decay_max`` times.
    batch_shift : int
        Mini-batches of ``2**batch_shift`` samples: their updates are summed and the sum,
        shifted right by ``batch_shift``, is applied after the last one.
    seed : int
        Seed of the initial hidden weights (uniform in ``[-W0, W0]``, layer by layer).
    lfsr_seed : int
        Non-zero initial state of the LFSR (:data:`LFSR_WIDTH` bits, taps :data:`LFSR_TAPS`).
    """
    sizes: tuple[int, ...] = (64, 64, 10)
    input_bits: int = 4
    weights: str = "binary"
    weight_bits: int = 6
    score_shift: int = 4
    gate_shifts: tuple[int, ...] = (6,)
    backprop_shifts: tuple[int, ...] = (0,)
    lr_shifts: tuple[int, ...] = (6, 2)
    lr_decay_steps: int = 300
    lr_decay_max: int = 2
    batch_shift: int = 0
    seed: int = 0
    lfsr_seed: int = 0x1D872B41

    def __post_init__(self):
        def store(name, value):
            object.__setattr__(self, name, value)

        for name in ("sizes", "gate_shifts", "backprop_shifts", "lr_shifts"):
            value = getattr(self, name)
            if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
                raise ValueError(f"{name} must be a tuple or list of integers, not {value!r}")
            value = tuple(value)
            if not all(_is_int(v) for v in value):
                raise ValueError(f"{name} must be a tuple or list of integers, not {value!r}")
            store(name, tuple(int(v) for v in value))
        for name in ("input_bits", "weight_bits", "score_shift", "lr_decay_steps",
                     "lr_decay_max", "batch_shift", "seed", "lfsr_seed"):
            value = getattr(self, name)
            if not _is_int(value):
                raise ValueError(f"{name} must be an integer, not {value!r}")
            store(name, int(value))
        if len(self.sizes) < 3:
            raise ValueError(f"sizes must be (inputs, hidden units..., classes) with at least one "
                             f"hidden layer, not {self.sizes!r}")
        if any(v <= 0 for v in self.sizes):
            raise ValueError(f"sizes must be positive integers, not {self.sizes!r}")
        if self.sizes[-1] < 2:
            raise ValueError(f"sizes must end with at least 2 classes, not {self.sizes!r}")
        if not 1 <= self.input_bits <= 8:
            raise ValueError(f"input_bits must be between 1 and 8, not {self.input_bits!r}")
        if self.weights not in WEIGHT_KINDS:
            raise ValueError(f"weights must be one of {', '.join(WEIGHT_KINDS)}, not "
                             f"{self.weights!r}")
        if self.weight_bits <= 0:
            raise ValueError(f"weight_bits must be a positive integer, not {self.weight_bits!r}")
        for name in ("score_shift", "lr_decay_steps", "lr_decay_max", "batch_shift", "seed"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be a non-negative integer, not "
                                 f"{getattr(self, name)!r}")
        hidden = self.layers - 1
        for name, count, what in (("gate_shifts", hidden, "hidden layer"),
                                  ("backprop_shifts", hidden, "hidden layer"),
                                  ("lr_shifts", self.layers, "layer with weights")):
            value = getattr(self, name)
            if len(value) != count:
                raise ValueError(f"{name} must have one entry per {what} ({count} for sizes "
                                 f"{self.sizes!r}), not {value!r}")
            if any(v < 0 for v in value):
                raise ValueError(f"{name} must be non-negative integers, not {value!r}")
        if self.lr_shifts[0] < self.input_bits:
            raise ValueError(f"lr_shifts[0] must be at least input_bits={self.input_bits} (the "
                             f"largest QBP exponent), not {self.lr_shifts[0]!r}")
        if not 0 < self.lfsr_seed < (1 << LFSR_WIDTH):
            raise ValueError(f"lfsr_seed must be a non-zero {LFSR_WIDTH}-bit integer, not "
                             f"{self.lfsr_seed!r}")

    # -- the net ---------------------------------------------------------------
    @property
    def layers(self) -> int:
        """``L``, the number of layers with weights (hidden layers plus the output layer)."""
        return len(self.sizes) - 1

    @property
    def shapes(self) -> tuple[tuple[int, int], ...]:
        """Shape ``(M_l, M_{l-1})`` of each layer's weights (row ``j``: unit ``j``'s inputs)."""
        return tuple((self.sizes[i + 1], self.sizes[i]) for i in range(self.layers))

    @property
    def w0(self) -> int:
        """Clip bound ``W0 = 2**weight_bits`` of the hidden weights."""
        return 1 << self.weight_bits

    @property
    def ternary_threshold(self) -> int:
        """``W0 / 2``: a ternary effective weight is non-zero where ``|w|`` exceeds it."""
        return self.w0 >> 1

    @property
    def batch(self) -> int:
        """Samples per mini-batch, ``2**batch_shift``."""
        return 1 << self.batch_shift

    @property
    def random_bits(self) -> int:
        """LFSR bits drawn per input pixel for its QBP rounding (``input_bits - 1``)."""
        return self.input_bits - 1

    def lr_extra(self, samples_done: int) -> int:
        """Extra shift of every update of the training sample after ``samples_done`` samples."""
        if not self.lr_decay_steps:
            return 0
        return min(samples_done // self.lr_decay_steps, self.lr_decay_max)

    @property
    def max_lr_extra(self) -> int:
        """Largest value of :meth:`lr_extra`: ``lr_decay_max``, or 0 without decay."""
        return self.lr_decay_max if self.lr_decay_steps else 0

    @property
    def max_exponent(self) -> int:
        """Largest QBP exponent, ``input_bits`` (a pixel ``2**k - 1`` may round up to ``2**k``)."""
        return self.input_bits

    # -- bounds the hardware sizes its registers with (one entry per layer) -----
    @property
    def s_bounds(self) -> tuple[int, ...]:
        """``|s_l| <= s_bounds[l-1]``: ``N (2**k - 1)`` for layer 1, ``M_{l-1}`` after it."""
        first = sum_bound(self.sizes[0], "unsigned", self.input_bits)
        return (first, *(sum_bound(m, "bipolar", 1) for m in self.sizes[1:-1]))

    @property
    def e_bounds(self) -> tuple[int, ...]:
        """One per hidden layer: ``|T(W_{l+1})^T d_{l+1}| <= M_{l+1} d_bounds[l]``."""
        return self._error_bounds()[1]

    @property
    def d_bounds(self) -> tuple[int, ...]:
        """``|d_l| <= d_bounds[l-1]``; the output layer's is the margin plus its ``s`` bound."""
        return self._error_bounds()[0]

    def _error_bounds(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        d = [0] * self.layers
        e = [0] * (self.layers - 1)
        d[-1] = (1 << self.score_shift) + self.s_bounds[-1]
        for i in range(self.layers - 2, -1, -1):
            e[i] = self.sizes[i + 2] * d[i + 1]
            d[i] = rshift_round_int(e[i], self.backprop_shifts[i])
        return tuple(d), tuple(e)

    @property
    def update_shift_ranges(self) -> tuple[tuple[int, int], ...]:
        """``(least, most)`` right shift of each layer's update over every sample.

        Layer 1: ``lr_shifts[0] - input_bits`` (the largest QBP exponent, no decay) to
        ``lr_shifts[0] + max_lr_extra`` (exponent 0, fully decayed); the others:
        ``lr_shifts[i]`` to ``lr_shifts[i] + max_lr_extra``.
        """
        lows = (self.lr_shifts[0] - self.max_exponent, *self.lr_shifts[1:])
        return tuple((lo, s + self.max_lr_extra) for lo, s in zip(lows, self.lr_shifts))

    @property
    def update_bounds(self) -> tuple[int, ...]:
        """``|U_l| <= update_bounds[l-1]``: one sample's update of one weight."""
        return tuple(rshift_round_int(d, lo)
                     for d, (lo, _) in zip(self.d_bounds, self.update_shift_ranges))

    @property
    def acc_bounds(self) -> tuple[int, ...]:
        """``|A_l| <= acc_bounds[l-1]``: a batch's sum of updates of one weight (``B U``)."""
        return tuple(self.batch * u for u in self.update_bounds)

    def to_dict(self) -> dict:
        """The fields by name, JSON-able (tuples as lists); ``OnChipConfig(**d) == config``."""
        return {f.name: (list(v) if isinstance(v := getattr(self, f.name), tuple) else v)
                for f in fields(self)}
