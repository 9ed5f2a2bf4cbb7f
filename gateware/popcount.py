"""Population count as a balanced adder tree."""

from amaranth.hdl import Const, Value, ValueLike

__all__ = ["popcount"]


def popcount(value: ValueLike) -> Value:
    """Count the bits of ``value`` that are set.

    The bits are summed by a balanced tree of adders; every partial sum is truncated to the
    width its count of bits needs, so no adder is wider than necessary.

    Parameters
    ----------
    value : value-like
        Bits to count.

    Returns
    -------
    :class:`~amaranth.hdl.Value`
        Unsigned value of width ``len(value).bit_length()`` (0 for an empty ``value``).
    """
    value = Value.cast(value)

    def tree(lo: int, hi: int) -> Value:
        if hi - lo == 0:
            return Const(0, 0)
        if hi - lo == 1:
            return value[lo]
        mid = (lo + hi) // 2
        return (tree(lo, mid) + tree(mid, hi))[:(hi - lo).bit_length()]

    return tree(0, len(value))
