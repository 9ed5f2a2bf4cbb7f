"""Fixed-point helpers of the trainer: effective weights as masks, rounding shifts by constants.

Both are small expressions, inlined where they are used (no unit of their own):
:func:`weight_masks` turns a row of hidden weights into the masks of
:class:`~fewmul.arith.dot.DotProduct` (compares with constants), :func:`round_shift`
divides by a constant power of two, rounding to nearest with ties away from zero, as
:func:`fewmul.nn.onchip.rshift_round` does (wiring, one negation each way and one increment;
:func:`round_shift_magnitude` stops before the negation back), :func:`clip` bounds the new
weights.
"""

from amaranth.hdl import Cat, Mux, Value

__all__ = ["weight_masks", "round_shift", "round_shift_magnitude", "clip"]

#: Effective-weight kinds: ``binary`` ``T(w) = +1 if w >= 0 else -1``; ``ternary``
#: ``T(w) = sign(w) if |w| > W0 / 2 else 0``.
WEIGHT_KINDS = ("binary", "ternary")


def weight_masks(row, lanes: int, kind: str, weight_bits: int) -> list[Value]:
    """The masks of the effective weights ``T(w)`` of a row of hidden weights.

    Parameters
    ----------
    row : array view
        ``lanes`` signed hidden weights in ``[-W0, W0]``, ``W0 = 2**weight_bits``.
    lanes : int
        Weights in the row.
    kind : str
        ``"binary"``: one mask, bit ``k`` set where ``w_k >= 0`` (``T = +1``);
        ``"ternary"``: ``[w > W0/2, w < -W0/2]`` (``T = +1``, ``T = -1``; else ``T = 0``).

    Returns
    -------
    list of Value
        One ``lanes``-bit mask per :attr:`~fewmul.arith.dot.DotProduct.masks`.
    """
    if kind == "binary":
        return [Cat(~row[k][-1] for k in range(lanes))]
    if kind == "ternary":
        half = 1 << (weight_bits - 1)
        return [Cat(row[k] > half for k in range(lanes)),
                Cat(row[k] < -half for k in range(lanes))]
    raise ValueError(f"Weight kind must be one of {WEIGHT_KINDS!r}, not {kind!r}")


def round_shift_magnitude(value, shift: int) -> tuple[Value, Value]:
    """``(negative, magnitude)`` of :func:`round_shift`: the sign of ``value`` and
    ``round(|value| / 2**shift)``, with no negation back (an update needs the magnitude)."""
    value = Value.cast(value)
    if not isinstance(shift, int) or shift < 0:
        raise TypeError(f"Shift must be a non-negative integer, not {shift!r}")
    negative = value < 0
    magnitude = Mux(negative, -value, value)
    if shift:
        magnitude = ((magnitude + (1 << (shift - 1))) >> shift)
    return negative, magnitude[:len(value)]


def round_shift(value, shift: int) -> Value:
    """``value / 2**shift`` rounded to nearest, ties away from zero, for a constant ``shift``.

    The magnitude is shifted with one guard bit, ``(|v| + 2**(shift - 1)) >> shift``, and the
    sign put back; ``shift = 0`` is ``value`` itself. The result is signed and as wide as
    ``value`` plus one bit.
    """
    value = Value.cast(value)
    negative, magnitude = round_shift_magnitude(value, shift)
    if shift == 0:
        return value
    return Mux(negative, -magnitude, magnitude)


def clip(value, bound: int) -> Value:
    """``value`` clipped to ``[-bound, bound]`` (two comparisons with constants)."""
    return Mux(value > bound, bound, Mux(value < -bound, -bound, value))
