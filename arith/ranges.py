"""Integer ranges and the bits that hold them."""

from __future__ import annotations

__all__ = ["signed_width", "divisors"]


def signed_width(lo: int, hi: int) -> int:
    """Bits of the narrowest two's-complement integer holding every value of ``[lo, hi]``."""
    return max((x if x >= 0 else ~x).bit_length() + 1 for x in (int(lo), int(hi)))


def divisors(n: int) -> list[int]:
    """The positive divisors of ``n``, ascending (the lane counts that fold ``n`` outputs
    evenly)."""
    return [d for d in range(1, n + 1) if n % d == 0]
