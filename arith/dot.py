"""The popcount form of a dot product, for every kind of weights and inputs.

A neuron with ``N`` inputs computes ``s = sum_j w_j x_j`` without a multiplier. Its inputs
are either bipolar bits (1 means +1, 0 means -1) or ``k``-bit unsigned integers, taken
bit-plane by bit-plane (plane ``i`` holds bit ``i`` of every input); its weights are binary
(one mask, bit 1 for +1) or ternary (a positive mask ``P`` and a negative mask ``Q``). For each
plane the sum needs at most two popcounts, of a *positive* and a *negative* operand::

    s = init + sum_i 2^i ((popcount(pos_i) << pos_shift) - popcount(neg_i))

==========  ========  ============================  ====================  =========  ======
weights     inputs    pos_i                         neg_i                 pos_shift  init
==========  ========  ============================  ====================  =========  ======
binary      bipolar   ``XNOR(a, w)``                --                    1          ``-N``
binary      unsigned  ``q_i AND w``                 ``q_i`` (shared)      1          0
ternary     bipolar   ``(a AND P) OR (~a AND Q)``   the other way round   0          0
ternary     unsigned  ``q_i AND P``                 ``q_i AND Q``         0          0
==========  ========  ============================  ====================  =========  ======

:class:`DotProduct` chooses the row; every consumer is written against its :class:`Term`\\ s,
so this table is the only place the four cases are told apart:

* the golden model evaluates the terms on batches with :meth:`Term.count` (matrix products of
  0/1 arrays, exact in float64);
* the gateware builds the terms' bit vectors with :meth:`Term.bits` on Amaranth values (the
  same Python operators work on NumPy boolean arrays, which the tests use to check that both
  forms agree) and counts them with popcount trees;
* the width proofs take :meth:`DotProduct.partial_range` and :meth:`DotProduct.init`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

__all__ = ["INPUT_KINDS", "WEIGHT_KINDS", "check_input", "sum_bound", "Term", "DotProduct"]

#: ``bipolar``: 1-bit inputs meaning -1/+1; ``unsigned``: ``input_bits``-bit integers.
INPUT_KINDS = ("bipolar", "unsigned")
#: ``binary``: weights -1/+1 (stored as bits 0/1); ``ternary``: weights -1/0/+1 (two masks).
WEIGHT_KINDS = ("binary", "ternary")


def check_input(input_kind, input_bits) -> None:
    """Check an input kind and its bits per input."""
    if input_kind not in INPUT_KINDS:
        raise ValueError(f"Input kind must be one of {INPUT_KINDS!r}, not {input_kind!r}")
    if not isinstance(input_bits, int) or isinstance(input_bits, bool):
        raise TypeError(f"Input bits must be an integer, not {input_bits!r}")
    if input_kind == "bipolar" and input_bits != 1:
        raise ValueError(f"Bipolar inputs must have 1 input bit, not {input_bits!r}")
    if not 1 <= input_bits <= 8:
        raise ValueError(f"Input bits must be between 1 and 8, not {input_bits!r}")


def sum_bound(n_inputs: int, input_kind: str, input_bits: int) -> int:
    """Bound ``S`` on the magnitude of a neuron's sum: ``|s| <= S``.

    Parameters
    ----------
    n_inputs : int
        Number of inputs ``N``.
    input_kind : str
        ``"bipolar"`` or ``"unsigned"``.
    input_bits : int
        Bits per input ``k`` (1 for bipolar inputs).

    Returns
    -------
    int
        ``N`` for bipolar inputs, ``N * (2**k - 1)`` for unsigned ones (binary or ternary
        weights alike).
    """
    if not isinstance(n_inputs, (int, np.integer)) or isinstance(n_inputs, bool) or n_inputs <= 0:
        raise TypeError(f"Number of inputs must be a positive integer, not {n_inputs!r}")
    check_input(input_kind, input_bits)
    return int(n_inputs) * ((1 << input_bits) - 1)


def _dot(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``x @ w.T`` of 0/1 arrays, exactly: the counts are far below 2**53, so the product runs
    in float64 (BLAS) and converts back without rounding."""
    return (x.astype(np.float64) @ w.T.astype(np.float64)).astype(np.int64)


@dataclass(frozen=True)
class Term:
    """One popcount operand: a bitwise function of an input bit-plane and the weight masks.

    Attributes
    ----------
    name : str
        Short name, used for the popcount units that count it.
    bits : callable
        ``bits(x, masks)``: the operand's bit vector from one plane ``x`` and the masks, with
        ``&``, ``|``, ``^`` and ``~`` only (Amaranth values or NumPy boolean arrays).
    count : callable
        ``count(x, masks)``: ``popcount(bits(x, masks))`` for a batch, ``x`` of shape
        ``(n, N)`` and each mask ``(M, N)``, all 0/1 integers; shape ``(n, M)``, or ``(n, 1)``
        for a term that reads no mask.
    uses_weights : bool
        False for a term that is the same for every neuron (one popcount serves them all).
    """
    name: str
    bits: Callable
    count: Callable
    uses_weights: bool = True


XNOR = Term("match", lambda x, m: ~(x ^ m[0]),
            lambda x, m: _dot(x, m[0]) + _dot(1 - x, 1 - m[0]))
AND = Term("and", lambda x, m: x & m[0], lambda x, m: _dot(x, m[0]))
PLANE = Term("ones", lambda x, m: x, lambda x, m: x.sum(1, keepdims=True), uses_weights=False)
AGREE = Term("agree", lambda x, m: (x & m[0]) | (~x & m[1]),
             lambda x, m: _dot(x, m[0]) + _dot(1 - x, m[1]))
DISAGREE = Term("disagree", lambda x, m: (~x & m[0]) | (x & m[1]),
                lambda x, m: _dot(1 - x, m[0]) + _dot(x, m[1]))
POS = Term("pos", lambda x, m: x & m[0], lambda x, m: _dot(x, m[0]))
NEG = Term("neg", lambda x, m: x & m[1], lambda x, m: _dot(x, m[1]))

#: (weight kind, input kind) -> (positive term, negative term, positive shift)
_TERMS = {
    ("binary", "bipolar"): (XNOR, None, 1),
    ("binary", "unsigned"): (AND, PLANE, 1),
    ("ternary", "bipolar"): (AGREE, DISAGREE, 0),
    ("ternary", "unsigned"): (POS, NEG, 0),
}


@dataclass(frozen=True)
class DotProduct:
    """The dot product of ``input_kind`` inputs of ``input_bits`` bits with ``weight_kind``
    weights, as popcounts (see the module's table).

    Parameters
    ----------
    input_kind : str
        See :data:`INPUT_KINDS`.
    input_bits : int
        Bits per input ``k`` (1 for bipolar inputs).
    weight_kind : str
        See :data:`WEIGHT_KINDS`.

    Attributes
    ----------
    positive, negative : Term
        The two operands counted per plane (``negative`` is None for binary weights on bipolar
        inputs, whose sum is one popcount).
    positive_shift : int
        The positive popcount's weight, ``2**positive_shift``.
    """
    input_kind: str
    input_bits: int
    weight_kind: str

    def __post_init__(self):
        check_input(self.input_kind, self.input_bits)
        if self.weight_kind not in WEIGHT_KINDS:
            raise ValueError(f"Weight kind must be one of {WEIGHT_KINDS!r}, not "
                             f"{self.weight_kind!r}")

    @property
    def _terms(self):
        return _TERMS[self.weight_kind, self.input_kind]

    @property
    def positive(self) -> Term:
        return self._terms[0]

    @property
    def negative(self) -> Term | None:
        return self._terms[1]

    @property
    def positive_shift(self) -> int:
        return self._terms[2]

    @property
    def planes(self) -> int:
        """Input bit-planes: ``k`` for unsigned inputs, 1 for bipolar ones."""
        return self.input_bits

    @property
    def masks(self) -> int:
        """Weight bits stored per weight: 1 (binary) or 2 (ternary: ``P`` and ``Q``)."""
        return 2 if self.weight_kind == "ternary" else 1

    @property
    def pad_bit(self) -> int:
        """Mask bit of the padding past the last input, so that a zero input there adds
        nothing: 1 for XNOR (a mismatch, which :meth:`init` expects), else 0."""
        return int(self.negative is None)

    def init(self, n_inputs: int) -> int:
        """Value the sum starts from: ``-N`` for a single XNOR popcount, else 0."""
        return -n_inputs if self.negative is None else 0

    def sum_bound(self, n_inputs: int) -> int:
        """See :func:`sum_bound`."""
        return sum_bound(n_inputs, self.input_kind, self.input_bits)

    def partial_range(self, n_inputs: int) -> tuple[int, int]:
        """Range of ``s - init`` over ``n_inputs`` inputs (a fold's partial sum)."""
        if self.negative is None:
            return 0, 2 * n_inputs
        top = n_inputs * ((1 << self.input_bits) - 1)
        return -top, top

    @property
    def combine_levels(self) -> int:
        """Adder levels that combine the popcounts into the sum: none for a single popcount;
        else a difference per plane, then the planes' differences, shifted, added pairwise."""
        if self.negative is None:
            return 0
        return 1 + (self.planes - 1).bit_length()

    @property
    def lane_counts(self) -> int:
        """Popcounts per neuron per input: the terms that read the weights, over all planes."""
        terms = [t for t in (self.positive, self.negative) if t is not None and t.uses_weights]
        return self.planes * len(terms)

    @property
    def shared_counts(self) -> int:
        """Popcounts per input shared by all neurons (terms that read no weight)."""
        terms = [t for t in (self.positive, self.negative) if t is not None
                 and not t.uses_weights]
        return self.planes * len(terms)

    def weight_masks(self, weights) -> list[np.ndarray]:
        """The masks of a ``(M, N)`` weight array: ``[w]`` of binary weights (bits, 1 for +1),
        ``[w == 1, w == -1]`` of ternary ones (-1/0/+1); 0/1 ``int64`` arrays."""
        w = np.asarray(weights).astype(np.int64)
        if self.weight_kind == "binary":
            return [w]
        return [(w == 1).astype(np.int64), (w == -1).astype(np.int64)]

    def sums(self, x, weights) -> np.ndarray:
        """Exact sums ``(n, M)`` of a batch of inputs ``x`` ``(n, N)`` (bits for bipolar
        inputs, integers for unsigned ones) with ``weights`` ``(M, N)`` (see
        :meth:`weight_masks`), by the same popcounts as the gateware."""
        masks = self.weight_masks(weights)
        return self.masked_sums(x, masks, masks[0].shape[1])

    def masked_sums(self, x, masks: list[np.ndarray], n_inputs: int) -> np.ndarray:
        """:meth:`sums` from the weight masks, for ``n_inputs`` real inputs (the masks and
        ``x`` may be padded past them, as the gateware pads its last fold)."""
        x = np.asarray(x).astype(np.int64)
        s = np.full((len(x), masks[0].shape[0]), self.init(n_inputs), np.int64)
        for i in range(self.planes):
            plane = (x >> i) & 1
            part = self.positive.count(plane, masks) << self.positive_shift
            if self.negative is not None:
                part = part - self.negative.count(plane, masks)
            s += part << i
        return s
