"""A wrapping counter that keeps its "last value" flag in a register."""

from amaranth.hdl import Module, Mux, Signal, ValueLike

__all__ = ["wrapping_counter"]


def wrapping_counter(m: Module, count: int, enable: ValueLike, name: str) -> tuple[Signal, Signal]:
    """Count ``0 .. count - 1`` and wrap, stepping in the cycles ``enable`` is high.

    The flag ``last`` (``value == count - 1``) is a register updated with the counter rather
    than a comparison of its value, so logic gated by it starts from a flip-flop.

    Parameters
    ----------
    m : Module
        Module that receives the registers.
    count : int
        Number of values, at least 1.
    enable : value-like
        Steps the counter.
    name : str
        Name of the counter; the flag is ``{name}_last``.

    Returns
    -------
    (Signal, Signal)
        The value and the ``last`` flag.
    """
    if not isinstance(count, int) or count <= 0:
        raise TypeError(f"Count must be a positive integer, not {count!r}")
    value = Signal(range(count), name=name)
    last = Signal(init=count == 1, name=f"{name}_last")
    with m.If(enable):
        m.d.sync += [
            value.eq(Mux(last, 0, value + 1)),
            last.eq(Mux(last, count == 1, value == count - 2)),
        ]
    return value, last
