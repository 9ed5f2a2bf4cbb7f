"""Population counts as balanced adder trees, optionally pipelined."""

from amaranth.hdl import Cat, Const, Module, Signal, Value, ValueLike

__all__ = ["POPCOUNT_STYLES", "popcount", "pipelined_popcount", "popcount_levels",
           "register_levels"]


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


#: ``adder``: a balanced tree of adders (Yosys maps them to carry chains and LUTs).
#: ``compressor``: a Wallace tree of full adders (first level, which absorbs the XNOR/AND of
#: the operands in 6-input LUTs) and 6:3 counters written as logic, then one carry-propagate
#: adder of the two remaining rows.
POPCOUNT_STYLES = ("adder", "compressor")


def _full_adder(x, y, z):
    """3:2 counters, bitwise over vectors: ``x + y + z = s + 2 c`` in every bit position."""
    return x ^ y ^ z, (x & y) | (x & z) | (y & z)


def _counter_6_3(a, b, c, d, e, f):
    """6:3 counters, bitwise over six vectors: the count of the six bits in each position as
    three bits. Each output bit depends on its six inputs only, so it maps to one 6-input
    LUT."""
    (sa, ca), (sb, cb) = _full_adder(a, b, c), _full_adder(d, e, f)
    carry = sa & sb
    return sa ^ sb, ca ^ cb ^ carry, (ca & cb) | (ca & carry) | (cb & carry)


def _compress(columns: list[Value], first: bool) -> list[Value]:
    """One level of a Wallace tree over ``columns`` (column ``c``: bits of weight 2^c).

    The first level uses full adders only; later ones 6:3 counters, and a full adder for 3 to
    5 leftover bits. The counters of a column take its bits in contiguous blocks (counter
    ``j`` of ``k`` full adders adds bits ``j``, ``k + j`` and ``2k + j``), so every level is a
    handful of operations on whole vectors: the netlist is the same bit-level logic, but
    Amaranth converts it and Verilator simulates it a word at a time.
    """
    out = [[] for _ in range(len(columns) + 2)]
    for c, column in enumerate(columns):
        index, n = 0, len(column)
        for arity, counter in ([] if first else [(6, _counter_6_3)]) + [(3, _full_adder)]:
            k = (n - index) // arity
            if k:
                blocks = [column[index + j * k:index + (j + 1) * k] for j in range(arity)]
                for weight, bits in enumerate(counter(*blocks)):
                    out[c + weight].append(bits)
                index += arity * k
        out[c].append(column[index:])
    columns = [Cat(*pieces) for pieces in out]
    while columns and not len(columns[-1]):
        columns.pop()
    return columns


def popcount_levels(n_bits: int, style: str = "adder") -> int:
    """Logic levels of a popcount of ``n_bits`` bits (where pipeline registers may go)."""
    if style not in POPCOUNT_STYLES:
        raise ValueError(f"Popcount style must be one of {POPCOUNT_STYLES!r}, not {style!r}")
    if style == "adder":
        return max(0, n_bits - 1).bit_length()
    columns, levels = [Const(0, n_bits)], 0   # constants of the right widths: only lengths count
    while max(map(len, columns), default=0) > 2:
        columns, levels = _compress(columns, levels == 0), levels + 1
    return levels + 1


def register_levels(n_bits: int, stages: int, style: str = "adder") -> list[int]:
    """Levels after which the ``stages`` registers of a pipelined popcount sit.

    A popcount of ``n`` bits has ``L`` logic levels (:func:`popcount_levels`: ``ceil(log2 n)``
    for an adder tree); the registers are spread evenly over them, level ``l`` meaning "after
    ``l`` levels" (0: on the inputs, ``L``: on the result), the last one on the result. More
    stages than levels put several registers on the same level.
    """
    if not isinstance(stages, int) or stages < 0:
        raise TypeError(f"Pipeline stages must be a non-negative integer, not {stages!r}")
    levels = popcount_levels(n_bits, style)
    return [-(-levels * (j + 1) // stages) for j in range(stages)]


def pipelined_popcount(m: Module, value: ValueLike, *, stages: int, enable: ValueLike,
                       name: str, style: str = "adder") -> Value:
    """Count the bits of ``value`` through a tree of ``style`` with ``stages`` registers.

    The registers (see :func:`register_levels`) load only while ``enable`` is high, so a stalled
    pipeline holds its contents. The count is valid ``stages`` enabled cycles after its bits.

    Parameters
    ----------
    m : Module
        Module that receives the logic and registers.
    value : value-like
        Bits to count; should be a signal (slicing a signal keeps the netlist linear in size).
    stages : int
        Number of register stages, 0 for a combinational tree.
    enable : value-like
        Clock enable of the registers.
    name : str
        Prefix of the registers' names.
    style : str
        See :data:`POPCOUNT_STYLES`.

    Returns
    -------
    :class:`~amaranth.hdl.Value`
        Unsigned count of width ``len(value).bit_length()``.
    """
    value = Value.cast(value)
    n = len(value)
    marks = register_levels(n, stages, style)
    count = 0

    def register(items, level, width):
        """``items``: values; ``width(item)`` gives the register width of each."""
        nonlocal count
        for _ in range(marks.count(level)):
            regs = []
            for index, item in enumerate(items):
                reg = Signal(width(item), name=f"{name}_r{count}_{index}")
                with m.If(enable):
                    m.d.sync += reg.eq(item[0] if isinstance(item, tuple) else item)
                regs.append((reg, item[1]) if isinstance(item, tuple) else reg)
            items, count = regs, count + 1
        return items

    if style == "compressor":
        # Each column is driven onto a signal after every level (registered or not): the
        # counters use each bit several times, and nested expressions would grow exponentially.
        def reg_columns(columns, level):
            packed = []
            for c, column in enumerate(columns):
                wire = Signal(len(column), name=f"{name}_l{level}_c{c}")
                m.d.comb += wire.eq(column)
                packed.append(wire)
            return register(packed, level, len)

        columns, level = reg_columns([value], 0), 0
        while max(map(len, columns), default=0) > 2:
            columns, level = _compress(columns, level == 0), level + 1
            columns = reg_columns(columns, level)
        rows = [Cat(*(column[r] if len(column) > r else Const(0, 1) for column in columns))
                for r in range(2)]
        total = (rows[0] + rows[1])[:n.bit_length()]
        return register([total], level + 1, lambda _: n.bit_length())[0]

    items = [(value[i], 1) for i in range(n)] or [(Const(0, 0), 0)]
    width = lambda item: item[1].bit_length()
    level = 0
    items = register(items, level, width)
    while len(items) > 1:
        paired = []
        for index in range(0, len(items) - 1, 2):
            (a, ca), (b, cb) = items[index], items[index + 1]
            paired.append(((a + b)[:(ca + cb).bit_length()], ca + cb))
        if len(items) % 2:
            paired.append(items[-1])
        items, level = paired, level + 1
        items = register(items, level, width)
    return items[0][0]
