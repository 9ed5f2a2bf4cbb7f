"""Population counts: balanced adder trees or Wallace trees, optionally pipelined.

:func:`pipelined_popcount` builds a tree inline; :class:`Popcount` wraps it as a unit that a
Verilog emission platform turns into one shared module per distinct tree (for the adder
tree, the ``$countones`` form of :func:`adder_tree_verilog`).
"""

import functools

from amaranth.hdl import (ClockSignal, Cat, Const, Instance, Module, ResetSignal, Signal,
                          Value, ValueLike)
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["POPCOUNT_STYLES", "Popcount", "popcount", "pipelined_popcount", "popcount_levels",
           "register_levels", "spread_registers", "adder_tree_verilog"]


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


def _counter_blocks(n_bits: int, first: bool) -> list[tuple[int, int]]:
    """How one level of a Wallace tree splits a column of ``n_bits`` bits: ``(arity, k)``
    pairs, ``k`` counters of ``arity`` inputs each, taking the column's bits in order; the bits
    left over pass to the next level. The first level uses full adders only; later ones 6:3
    counters, and a full adder for 3 to 5 leftover bits."""
    blocks, index = [], 0
    for arity in (3,) if first else (6, 3):
        k = (n_bits - index) // arity
        if k:
            blocks.append((arity, k))
            index += arity * k
    return blocks


#: Output bits (of weights 1, 2, 4, ...) of a counter of each arity.
_COUNTER_OUTPUTS = {3: 2, 6: 3}


def _compress(columns: list[Value], first: bool) -> list[Value]:
    """One level of a Wallace tree over ``columns`` (column ``c``: bits of weight 2^c).

    The counters of a column take its bits in contiguous blocks (counter ``j`` of ``k`` full
    adders adds bits ``j``, ``k + j`` and ``2k + j``), so every level is a handful of
    operations on whole vectors: the netlist is the same bit-level logic, but Amaranth converts
    it and Verilator simulates it a word at a time.
    """
    out = [[] for _ in range(len(columns) + 2)]
    for c, column in enumerate(columns):
        index = 0
        for arity, k in _counter_blocks(len(column), first):
            blocks = [column[index + j * k:index + (j + 1) * k] for j in range(arity)]
            counter = _counter_6_3 if arity == 6 else _full_adder
            for weight, bits in enumerate(counter(*blocks)):
                out[c + weight].append(bits)
            index += arity * k
        out[c].append(column[index:])
    columns = [Cat(*pieces) for pieces in out]
    while columns and not len(columns[-1]):
        columns.pop()
    return columns


def _compressed_lengths(lengths: list[int], first: bool) -> list[int]:
    """Column lengths after one level of :func:`_compress`."""
    out = [0] * (len(lengths) + 2)
    for c, n_bits in enumerate(lengths):
        for arity, k in _counter_blocks(n_bits, first):
            for weight in range(_COUNTER_OUTPUTS[arity]):
                out[c + weight] += k
            n_bits -= arity * k
        out[c] += n_bits
    while out and not out[-1]:
        out.pop()
    return out


@functools.lru_cache(maxsize=None)
def popcount_levels(n_bits: int, style: str = "adder") -> int:
    """Logic levels of a popcount of ``n_bits`` bits (where pipeline registers may go)."""
    if style not in POPCOUNT_STYLES:
        raise ValueError(f"Popcount style must be one of {POPCOUNT_STYLES!r}, not {style!r}")
    if style == "adder":
        return max(0, n_bits - 1).bit_length()
    lengths, levels = [n_bits], 0
    while max(lengths, default=0) > 2:
        lengths, levels = _compressed_lengths(lengths, levels == 0), levels + 1
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
    return spread_registers(popcount_levels(n_bits, style), stages)


def spread_registers(levels: int, stages: int) -> list[int]:
    """Levels after which ``stages`` registers sit when spread evenly over ``levels`` levels of
    logic, the last one on the result (level ``levels``)."""
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


#: ``$countones`` covers at most ``2 ** COUNTONES_LEVELS`` bits (one machine word in Verilator;
#: Yosys' front end expands it recursively and runs out of stack on a 1024-bit one).
COUNTONES_LEVELS = 6


def adder_tree_verilog(name: str, n_bits: int, stages: int) -> str:
    """Verilog module ``name`` of the pipelined ``adder`` tree, counting words with
    ``$countones``.

    Node ``j`` after ``l`` levels of the adder tree (:func:`pipelined_popcount`) is the count of
    bits ``j * 2^l`` to ``(j + 1) * 2^l - 1``. This module computes the nodes of up to
    :data:`COUNTONES_LEVELS` levels as ``$countones`` of their ranges and every node above as
    the sum of its two children, and registers the nodes where the pipeline does
    (:func:`register_levels`): the same values in the same registers, cycle for cycle. Yosys
    expands ``$countones`` to an adder tree (on 256 bits as small as the explicit one on ECP5
    and Xilinx 7); Verilator counts a machine word at a time, an order of magnitude faster than
    it evaluates the explicit tree.

    Ports: ``clk``, ``rst`` (synchronous, clears the registers), ``en`` (clock enable), ``i``
    (``n_bits``) and ``o`` (the count, ``n_bits.bit_length()`` bits); no ``clk`` and ``rst``
    without stages.
    """
    out_bits = n_bits.bit_length()
    ports = (["clk", "rst"] if stages else []) + ["en", "i", "o"]
    lines = [f"// {name}: population count of {n_bits} bits, {stages} register stage(s) "
             f"(adder tree). Generated by fewmul.gateware.popcount.",
             f"module {name}({', '.join(ports)});"]
    lines += ["  input clk;", "  input rst;"] if stages else []
    lines += ["  input en;", f"  input [{n_bits - 1}:0] i;", f"  output [{out_bits - 1}:0] o;"]

    def count(lo, level):   # the range of bits [lo, lo + 2^level), clipped to n_bits
        return f"$countones(i[{min(lo + (1 << level), n_bits) - 1}:{lo}])"

    def node(level, j, base):
        """Expression of node ``j`` at ``level`` over ``base``: (level, names) of registered
        nodes, or None for the input bits."""
        if base is None and level <= COUNTONES_LEVELS:
            return count(j << level, level)
        if base is not None and level == base[0]:
            return base[1][j]
        left = node(level - 1, 2 * j, base)
        if (2 * j + 1) << (level - 1) >= n_bits:    # no right child: carried up unchanged
            return left
        return f"({left} + {node(level - 1, 2 * j + 1, base)})"

    loads, clears, base = [], [], None
    for stage, level in enumerate(register_levels(n_bits, stages, "adder")):
        size, names = 1 << level, []
        for j, lo in enumerate(range(0, n_bits, size)):
            reg, width = f"r{stage}_{j}", (min(lo + size, n_bits) - lo).bit_length()
            lines.append(f"  reg [{width - 1}:0] {reg} = {width}'d0;")
            loads.append(f"      {reg} <= {node(level, j, base)};")
            clears.append(f"      {reg} <= {width}'d0;")
            names.append(reg)
        base = (level, names)
    if stages:
        lines += ["  always @(posedge clk) begin", "    if (en) begin", *loads, "    end",
                  "    if (rst) begin", *clears, "    end", "  end"]
    levels = popcount_levels(n_bits, "adder")
    lines += [f"  assign o = {node(levels, 0, base)};", "endmodule", ""]
    return "\n".join(lines)


class Popcount(wiring.Component):
    """A pipelined population count, as a unit of its own.

    The same tree as :func:`pipelined_popcount`. A design usually holds many equal trees (one
    per lane and bit-plane); when it is elaborated for Verilog with a platform that has a
    ``shared(key, verilog)`` method (:class:`~.rom.RomFiles`), each distinct tree becomes one
    Verilog module (:meth:`verilog`) and every unit an instance of it. A board build
    (a platform with ``add_file``) gets the same module for an adder tree, so the bitstream
    is built from the Verilog that was simulated.

    Parameters
    ----------
    width : int
        Bits to count.
    stages : int
        Register stages (see :func:`register_levels`); their clock enable is ``en``.
    style : str
        See :data:`POPCOUNT_STYLES`.

    Members
    -------
    i : ``In(width)``
        Bits to count.
    en : ``In(1)``
        Clock enable of the pipeline registers.
    o : ``Out(width.bit_length())``
        The count of the bits of ``i`` ``stages`` enabled cycles earlier.
    """

    def __init__(self, width: int, *, stages: int = 0, style: str = "adder"):
        if not isinstance(width, int) or isinstance(width, bool) or width <= 0:
            raise TypeError(f"Popcount width must be a positive integer, not {width!r}")
        register_levels(width, stages, style)   # checks stages and style
        self.width, self.stages, self.style = width, stages, style
        super().__init__({"i": In(width), "en": In(1), "o": Out(width.bit_length())})

    @property
    def key(self) -> str:
        """Names the tree: equal keys, equal logic."""
        return f"popcount{self.width}_{self.style}_s{self.stages}"

    def verilog(self, name: str) -> str:
        """This tree as Verilog module ``name``: :func:`adder_tree_verilog` for the adder
        style, else Amaranth's conversion of the tree."""
        if self.style == "adder":
            return adder_tree_verilog(name, self.width, self.stages)
        from amaranth.back import verilog
        tree = Popcount(self.width, stages=self.stages, style=self.style)
        return verilog.convert(tree, name=name, emit_src=False)

    def elaborate(self, platform):
        m = Module()
        shared = getattr(platform, "shared", None)
        name = None
        if shared is not None:
            name = shared(self.key, self.verilog)
        elif self.style == "adder" and hasattr(platform, "add_file"):
            # A board build (amaranth.build) reads the module Verilator simulated in top.v.
            name = f"fewmul_{self.key}"
            platform.add_file(f"{name}.v", self.verilog(name))
        if name is not None:
            ports = {"i_i": self.i, "i_en": self.en, "o_o": self.o}
            if self.stages:
                ports.update(i_clk=ClockSignal("sync"),
                             i_rst=ResetSignal("sync", allow_reset_less=True))
            m.submodules.tree = Instance(name, **ports)
        else:
            m.d.comb += self.o.eq(pipelined_popcount(m, self.i, stages=self.stages,
                                                     enable=self.en, name="count",
                                                     style=self.style))
        return m
