"""Widths of a matrix-vector unit's datapath, derived from its size, and a proof they suffice.

The arithmetic itself (which popcounts make a sum, where it starts, the range of a fold's
partial sum) is :class:`fewmul.arith.DotProduct`'s; this module turns it into Amaranth shapes.
"""

from dataclasses import dataclass

from amaranth.hdl import Shape, signed

from fewmul.arith import INPUT_KINDS, WEIGHT_KINDS, DotProduct, check_input, sum_bound

__all__ = ["INPUT_KINDS", "WEIGHT_KINDS", "check_input", "sum_bound", "signed_shape", "Widths"]


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
    fewer, the rest being padding that contributes 0), made of the popcounts of
    :attr:`dot` (:class:`~fewmul.arith.DotProduct`); the accumulator starts at
    ``dot.init(N)``.

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
        self.dot   # checks the kinds and the bits per input
        if not isinstance(self.simd, int) or self.simd <= 0:
            raise TypeError(f"SIMD width must be a positive integer, not {self.simd!r}")
        sum_bound(self.n_inputs, self.input_kind, self.input_bits)

    @property
    def dot(self) -> DotProduct:
        """The popcount form of each neuron's dot product."""
        return DotProduct(self.input_kind, self.input_bits, self.weight_kind)

    @property
    def folds(self) -> int:
        return -(-self.n_inputs // self.simd)

    @property
    def sum_bound(self) -> int:
        return sum_bound(self.n_inputs, self.input_kind, self.input_bits)

    @property
    def acc_init(self) -> int:
        """Value the accumulator starts from."""
        return self.dot.init(self.n_inputs)

    @property
    def combine_levels(self) -> int:
        """Adder levels that combine a lane's popcounts into its partial sum, see
        :attr:`~fewmul.arith.DotProduct.combine_levels`."""
        return self.dot.combine_levels

    @property
    def popcount_bits(self) -> int:
        return self.simd.bit_length()

    def partial_range(self, n: int | None = None) -> tuple[int, int]:
        """Range of a fold's partial sum over ``n`` real inputs (default ``simd``)."""
        return self.dot.partial_range(self.simd if n is None else n)

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
