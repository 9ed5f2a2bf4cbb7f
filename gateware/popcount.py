"""Population counts as balanced adder trees, optionally pipelined."""

from amaranth.hdl import Const, Module, Signal, Value, ValueLike

__all__ = ["popcount", "pipelined_popcount", "register_levels"]


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


def register_levels(n_bits: int, stages: int) -> list[int]:
    """Tree levels after which the ``stages`` registers of a pipelined popcount sit.

    A popcount of ``n`` bits has ``L = ceil(log2 n)`` adder levels; the registers are spread
    evenly over them, level ``l`` meaning "after ``l`` levels of adders" (0: on the inputs, ``L``:
    on the result), the last one on the result. More stages than levels put several registers
    on the same level.
    """
    if not isinstance(stages, int) or stages < 0:
        raise TypeError(f"Pipeline stages must be a non-negative integer, not {stages!r}")
    levels = max(0, n_bits - 1).bit_length()
    return [-(-levels * (j + 1) // (stages + 1)) for j in range(stages)]


def pipelined_popcount(m: Module, value: ValueLike, *, stages: int, enable: ValueLike,
                       name: str) -> Value:
    """Count the bits of ``value`` through a balanced adder tree with ``stages`` registers.

    The registers (see :func:`register_levels`) load only while ``enable`` is high, so a stalled
    pipeline holds its contents. The count is valid ``stages`` enabled cycles after its bits.

    Parameters
    ----------
    m : Module
        Module that receives the adders and registers.
    value : value-like
        Bits to count; should be a signal (slicing a signal keeps the netlist linear in size).
    stages : int
        Number of register stages, 0 for a combinational tree.
    enable : value-like
        Clock enable of the registers.
    name : str
        Prefix of the registers' names.

    Returns
    -------
    :class:`~amaranth.hdl.Value`
        Unsigned count of width ``len(value).bit_length()``.
    """
    value = Value.cast(value)
    marks = register_levels(len(value), stages)
    items = [(value[i], 1) for i in range(len(value))] or [(Const(0, 0), 0)]
    count = 0

    def register(items, level):
        nonlocal count
        for _ in range(marks.count(level)):
            regs = []
            for index, (expr, bound) in enumerate(items):
                reg = Signal(bound.bit_length(), name=f"{name}_r{count}_{index}")
                with m.If(enable):
                    m.d.sync += reg.eq(expr)
                regs.append((reg, bound))
            items, count = regs, count + 1
        return items

    level = 0
    items = register(items, level)
    while len(items) > 1:
        paired = []
        for index in range(0, len(items) - 1, 2):
            (a, ca), (b, cb) = items[index], items[index + 1]
            paired.append(((a + b)[:(ca + cb).bit_length()], ca + cb))
        if len(items) % 2:
            paired.append(items[-1])
        items, level = paired, level + 1
        items = register(items, level)
    return items[0][0]
