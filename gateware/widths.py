"""Widths of a matrix-vector unit's datapath, derived from its size, and a proof they suffice."""

from dataclasses import dataclass

from amaranth.hdl import Shape, signed

__all__ = ["INPUT_KINDS", "WEIGHT_KINDS", "check_input", "sum_bound", "signed_shape", "Widths"]

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
    if not isinstance(n_inputs, int) or n_inputs <= 0:
        raise TypeError(f"Number of inputs must be a positive integer, not {n_inputs!r}")
    check_input(input_kind, input_bits)
    return n_inputs * ((1 << input_bits) - 1)


def signed_shape(lo: int, hi: int) -> Shape:
    """Narrowest signed shape holding every integer of ``[lo, hi]``."""
    return signed(max((x if x >= 0 else ~x).bit_length() + 1 for x in (lo, hi)))


def _fits(shape: Shape, lo: int, hi: int) -> bool:
    if shape.signed:
        return -(1 << (shape.width - 1)) <= lo and hi < (1 << (shape.width - 1))
    return 0 <= lo and hi < (1 << shape.width)


@dataclass(frozen=True)
class Widths:
    """Every width of the datapath of a folded matrix-vector unit.

    Each output beat of ``pe`` sums is accumulated over ``folds = ceil(N / simd)`` cycles. In
    fold ``f``, each neuron adds a *partial* sum over ``simd`` inputs (the last fold may hold
    fewer, the rest being padding that contributes 0):

    * binary weights, bipolar inputs: ``2 * popcount(XNOR(a, w))``, the accumulator starting
      at ``-N``;
    * binary weights, unsigned inputs: ``sum_i (2 * popcount(q_i & w) - popcount(q_i)) << i``;
    * ternary weights (masks ``P``, ``Q``): ``sum_i (popcount(q_i & P) - popcount(q_i & Q)) << i``
      for unsigned inputs, ``popcount(agree) - popcount(disagree)`` for bipolar ones.

    Parameters
    ----------
    n_inputs, simd, input_bits : int
        ``N``, inputs per fold and bits per input ``k``.
    input_kind, weight_kind : str
        See :data:`INPUT_KINDS`, :data:`WEIGHT_KINDS`.
    """
    n_inputs: int
    simd: int
    input_kind: str
    input_bits: int
    weight_kind: str

    def __post_init__(self):
        check_input(self.input_kind, self.input_bits)
        if self.weight_kind not in WEIGHT_KINDS:
            raise ValueError(f"Weight kind must be one of {WEIGHT_KINDS!r}, not "
                             f"{self.weight_kind!r}")
        if not isinstance(self.simd, int) or self.simd <= 0:
            raise TypeError(f"SIMD width must be a positive integer, not {self.simd!r}")
        sum_bound(self.n_inputs, self.input_kind, self.input_bits)

    @property
    def folds(self) -> int:
        return -(-self.n_inputs // self.simd)

    @property
    def sum_bound(self) -> int:
        return sum_bound(self.n_inputs, self.input_kind, self.input_bits)

    @property
    def acc_init(self) -> int:
        """Value the accumulator starts from."""
        return -self.n_inputs if self._xnor else 0

    @property
    def _xnor(self) -> bool:
        return self.input_kind == "bipolar" and self.weight_kind == "binary"

    @property
    def combine_levels(self) -> int:
        """Adder levels that combine a lane's popcounts into its partial sum: none for one
        XNOR-popcount; else a difference per bit-plane (a positive and a negative count), then
        the planes' differences, shifted, added pairwise."""
        if self._xnor:
            return 0
        planes = self.input_bits if self.input_kind == "unsigned" else 1
        return 1 + (planes - 1).bit_length()

    @property
    def popcount_bits(self) -> int:
        return self.simd.bit_length()

    def partial_range(self, n: int | None = None) -> tuple[int, int]:
        """Range of a fold's partial sum over ``n`` real inputs (default ``simd``)."""
        n = self.simd if n is None else n
        if self._xnor:
            return 0, 2 * n
        return -n * ((1 << self.input_bits) - 1), n * ((1 << self.input_bits) - 1)

    @property
    def partial_shape(self) -> Shape:
        return signed_shape(*self.partial_range())

    @property
    def acc_shape(self) -> Shape:
        return signed_shape(-self.sum_bound, self.sum_bound)

    def prove(self) -> None:
        """Check by interval arithmetic that no intermediate value overflows its width.

        Walks the folds in order: the accumulator after fold ``f`` holds ``acc_init`` plus the
        partial sums of folds ``0..f``; its range is the sum of their ranges (the last fold's
        partial sum only spans its real inputs). Every adder's exact result lies in that range,
        so truncating it to :attr:`acc_shape` loses nothing. Raises :exc:`OverflowError` naming
        the first value that does not fit.
        """
        for shape, (lo, hi), what in [(Shape(self.popcount_bits), (0, self.simd), "popcount"),
                                      (self.partial_shape, self.partial_range(), "partial sum")]:
            if not _fits(shape, lo, hi):
                raise OverflowError(f"{what} range [{lo}, {hi}] does not fit {shape!r}")
        seen, lo, hi = 0, self.acc_init, self.acc_init
        for fold in range(self.folds):
            n = min(self.simd, self.n_inputs - seen)
            p_lo, p_hi = self.partial_range(n)
            lo, hi, seen = lo + p_lo, hi + p_hi, seen + n
            if not _fits(self.acc_shape, lo, hi):
                raise OverflowError(f"accumulator after fold {fold} ranges over [{lo}, {hi}], "
                                    f"which does not fit {self.acc_shape!r}")
        if not (-self.sum_bound <= lo and hi <= self.sum_bound):
            raise OverflowError(f"final sum range [{lo}, {hi}] exceeds the bound "
                                f"{self.sum_bound}")
