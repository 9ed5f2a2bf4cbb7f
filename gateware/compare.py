"""Comparisons of signed values that map to a single carry chain."""

from amaranth.hdl import Cat, Const, Value, ValueLike

__all__ = ["greater"]


def _offset_bits(value: Value, width: int) -> Value:
    """``value + 2 ** (width - 1)`` as ``width`` unsigned bits: the value extended to ``width``
    bits, its sign bit inverted."""
    if value.shape().signed:
        bits = Cat(value, value[-1].replicate(width - len(value)))
    else:
        bits = Cat(value, Const(0, width - len(value)))
    return Cat(bits[:-1], ~bits[-1])


def greater(a: ValueLike, b: ValueLike, *, or_equal: bool = False) -> Value:
    """``a > b`` (``a >= b`` with ``or_equal``) for signed or unsigned operands.

    Both operands are offset by the same power of two, which makes them unsigned and keeps
    their order, so the comparison is one subtraction's carry out: Yosys' signed comparison
    adds logic after the carry chain to correct for the signs (on the ECP5 a second chain and
    two multiplexer levels for 14-bit scores).
    """
    a, b = Value.cast(a), Value.cast(b)
    width = 1 + max(len(a) - a.shape().signed, len(b) - b.shape().signed)
    a, b = _offset_bits(a, width), _offset_bits(b, width)
    return a >= b if or_equal else a > b
