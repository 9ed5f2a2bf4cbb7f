"""A read-only memory with a registered output: two cycles from address to data.

Block RAMs read in two steps, the memory array on the clock edge and an optional output
register on the next. On the ECP5 the array alone is slow (nextpnr's DP16KD model gives 5.6 ns
from clock to data without the output register), and Yosys does not move a register that follows
an inferred memory into the block RAM. So on the ECP5 this memory instantiates DP16KD blocks
with their output register (``REGMODE = OUTREG``); everywhere else (the Amaranth simulator,
Verilator, the other boards) it is a :class:`~.rom.WeightRom` followed by a register, with the
same cycle behaviour.
"""

from amaranth.hdl import ClockSignal, Const, Instance, Module, Signal, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .rom import WeightRom, check_rom

__all__ = ["RegisteredRom", "dp16kd_initvals", "DP16KD_DEPTH", "DP16KD_WIDTH"]

#: Words and bits of one ECP5 DP16KD in its widest (36-bit, pseudo dual-port) mode.
DP16KD_DEPTH, DP16KD_WIDTH = 512, 36


def dp16kd_initvals(words) -> dict[str, Const]:
    """The ``INITVAL_00`` .. ``INITVAL_3F`` parameters of a DP16KD holding ``words``.

    ``words`` are up to 512 words of 36 bits (36-bit mode). The array is 1024 entries of 18 bits
    (word ``w`` is entries ``2w``, low half, and ``2w + 1``); each parameter holds 16 entries, in
    20-bit fields. This is the layout Yosys writes when it maps a memory to a DP16KD.
    """
    words = [int(word) for word in words]
    if len(words) > DP16KD_DEPTH or any(word < 0 or word >> DP16KD_WIDTH for word in words):
        raise ValueError(f"A DP16KD holds at most {DP16KD_DEPTH} words of {DP16KD_WIDTH} bits")
    bits = 0
    for index, word in enumerate(words):
        bits |= word << (index * DP16KD_WIDTH)
    params = {}
    for row in range(64):
        value = 0
        for i in range(16):
            entry = (bits >> ((row * 16 + i) * 18)) & ((1 << 18) - 1)
            value |= entry << (i * 20)
        params[f"INITVAL_{row:02X}"] = Const(value, 320)
    return params


class RegisteredRom(wiring.Component):
    """A ``depth`` x ``width`` read-only memory whose read takes two clock edges.

    ``data`` is the word at the address ``addr`` had two clock edges earlier: the first edge
    reads the memory array, the second loads the output register. Neither has an enable.

    On an ECP5 platform (``platform.family == "ecp5"``) with ``depth <= 512`` the memory is
    ``ceil(width / 36)`` DP16KD blocks in 36-bit mode with their output registers; otherwise
    it is a :class:`~.rom.WeightRom` (so also a ``$readmemh`` ROM under
    :class:`~.rom.RomFiles`) and a register.

    Parameters
    ----------
    width, depth : int
        Word width and number of words.
    init : sequence of int
        Contents (missing words are 0).

    Attributes
    ----------
    width, depth : int
    shape : Shape
        ``unsigned(width)``.
    init : list of int
    latency : int
        2, clock edges from ``addr`` to ``data``.

    Members
    -------
    addr : ``In(range(depth))``
        Read address.
    data : ``Out(width)``
        The word read.
    """

    latency = 2

    def __init__(self, width: int, depth: int, init):
        self.width, self.depth, self.init = width, depth, check_rom(width, depth, init)
        self.shape = unsigned(width)
        super().__init__({"addr": In(range(depth)), "data": Out(width)})

    def elaborate(self, platform):
        m = Module()
        if getattr(platform, "family", None) == "ecp5" and self.depth <= DP16KD_DEPTH:
            self._dp16kd(m)
        else:   # the simulator, RomFiles, another board (block RAM there, see WeightRom)
            m.submodules.rom = rom = WeightRom(self.width, self.depth, self.init)
            m.d.comb += [rom.addr.eq(self.addr), rom.en.eq(1)]
            m.d.sync += self.data.eq(rom.data)
        return m

    def _dp16kd(self, m):
        words = self.init + [0] * (self.depth - len(self.init))
        addr = Signal(9)
        m.d.comb += addr.eq(self.addr)
        for tile in range(-(-self.width // DP16KD_WIDTH)):
            lo = tile * DP16KD_WIDTH
            bits = min(DP16KD_WIDTH, self.width - lo)
            out = Signal(DP16KD_WIDTH, name=f"tile_{tile}")
            mask = (1 << bits) - 1
            ports = {
                # port A (the write port of the 36-bit mode) is unused
                "i_CLKA": ClockSignal("sync"), "i_CEA": Const(0), "i_OCEA": Const(1),
                "i_WEA": Const(0), "i_RSTA": Const(0),
                # port B reads: the word address sits above 5 bits of zeros in 36-bit mode
                "i_CLKB": ClockSignal("sync"), "i_CEB": Const(1), "i_OCEB": Const(1),
                "i_WEB": Const(0), "i_RSTB": Const(0),
                **{f"i_ADA{b}": Const(0) for b in range(14)},
                **{f"i_ADB{b}": Const(0) for b in range(5)},
                **{f"i_ADB{b + 5}": addr[b] for b in range(9)},
                **{f"i_CS{p}{b}": Const(0) for p in "AB" for b in range(3)},
                **{f"i_DI{p}{b}": Const(0) for p in "AB" for b in range(18)},
                **{f"o_DOA{b}": out[b] for b in range(18)},
                **{f"o_DOB{b}": out[18 + b] for b in range(18)},
            }
            m.submodules[f"bram_{tile}"] = Instance(
                "DP16KD",
                p_DATA_WIDTH_A=DP16KD_WIDTH, p_DATA_WIDTH_B=DP16KD_WIDTH,
                p_REGMODE_A="OUTREG", p_REGMODE_B="OUTREG",
                p_RESETMODE="SYNC", p_ASYNC_RESET_RELEASE="SYNC",
                p_CSDECODE_A="0b000", p_CSDECODE_B="0b000",
                p_WRITEMODE_A="NORMAL", p_WRITEMODE_B="NORMAL", p_GSR="DISABLED",
                **{f"p_{k}": v for k, v in
                   dp16kd_initvals([(w >> lo) & mask for w in words]).items()},
                **ports)
            m.d.comb += self.data[lo:lo + bits].eq(out[:bits])
