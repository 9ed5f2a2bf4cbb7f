"""A read-only memory with a registered output: two cycles from address to data.

Block RAMs read in two steps, the memory array on the clock edge and an optional output
register on the next. On the ECP5 the array alone is slow (nextpnr's DP16KD model gives 5.6 ns
from clock to data without the output register), and Yosys does not move a register that follows
an inferred memory into the block RAM. So on the ECP5 this memory instantiates DP16KD blocks
with their output register (``REGMODE = OUTREG``), in the data width (36, 18 or 9 bits: 512,
1024 or 2048 words) that takes the fewest blocks, and a memory deeper than 2048 words as banks
of 2048-word blocks whose registered outputs a multiplexer chooses from; everywhere else (the
Amaranth simulator, Verilator, the other boards) it is a :class:`~.rom.WeightRom` followed by a
register, with the same cycle behaviour.
"""

from dataclasses import dataclass

from amaranth.hdl import Array, ClockSignal, Const, Instance, Module, Signal, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .rom import WeightRom, check_rom

__all__ = ["RegisteredRom", "Dp16kdLayout", "dp16kd_layout", "dp16kd_initvals",
           "DP16KD_MODES", "DP16KD_BITS", "DP16KD_DEPTH", "DP16KD_WIDTH"]

#: Words and bits of one ECP5 DP16KD in its widest (36-bit, pseudo dual-port) mode.
DP16KD_DEPTH, DP16KD_WIDTH = 512, 36
#: The ``(depth, width)`` modes of a DP16KD that this memory uses (whole 9-bit bytes; the 1-, 2-
#: and 4-bit modes are not used).
DP16KD_MODES = ((512, 36), (1024, 18), (2048, 9))
#: Bits of one DP16KD (18 Kbit).
DP16KD_BITS = 18432


@dataclass(frozen=True)
class Dp16kdLayout:
    """How a ``depth x width`` memory is cut into DP16KDs.

    Attributes
    ----------
    mode_depth, mode_width : int
        The blocks' mode (one of :data:`DP16KD_MODES`).
    tiles : int
        Blocks side by side for a word, ``ceil(width / mode_width)``.
    banks : int
        Rows of tiles for the words, ``ceil(depth / mode_depth)``; the bank of word ``a`` is
        ``a // mode_depth``.
    """
    mode_depth: int
    mode_width: int
    tiles: int
    banks: int

    @property
    def blocks(self) -> int:
        """DP16KDs used."""
        return self.tiles * self.banks


def dp16kd_layout(width: int, depth: int) -> Dp16kdLayout:
    """The mode of :data:`DP16KD_MODES` that holds a ``depth x width`` memory in the fewest
    blocks, and of those the one with the fewest banks (no multiplexer when one bank holds every
    word)."""
    options = [Dp16kdLayout(d, w, -(-width // w), -(-depth // d)) for d, w in DP16KD_MODES]
    return min(options, key=lambda o: (o.blocks, o.banks))


def dp16kd_initvals(words, width: int = DP16KD_WIDTH) -> dict[str, Const]:
    """The ``INITVAL_00`` .. ``INITVAL_3F`` parameters of a DP16KD holding ``words``.

    ``words`` are up to ``18432 // width`` words of ``width`` bits (36, 18 or 9: see
    :data:`DP16KD_MODES`), word ``w`` at bits ``w * width`` of the block's 18432 bits. Those bits
    are 1024 entries of 18 (a 36-bit word is entries ``2w``, low half, and ``2w + 1``); each
    parameter holds 16 entries, in 20-bit fields. This is the layout Yosys writes when it maps a
    memory to a DP16KD.
    """
    depth = dict((w, d) for d, w in DP16KD_MODES).get(width)
    if depth is None:
        raise ValueError(f"DP16KD width must be one of {[w for _, w in DP16KD_MODES]}, "
                         f"not {width!r}")
    words = [int(word) for word in words]
    if len(words) > depth or any(word < 0 or word >> width for word in words):
        raise ValueError(f"A DP16KD holds at most {depth} words of {width} bits")
    bits = 0
    for index, word in enumerate(words):
        bits |= word << (index * width)
    params = {}
    for row in range(64):
        value = 0
        for i in range(16):
            entry = (bits >> ((row * 16 + i) * 18)) & ((1 << 18) - 1)
            value |= entry << (i * 20)
        params[f"INITVAL_{row:02X}"] = Const(value, 320)
    return params


#: Banks chosen among before the register of a ``bank_stage`` (a 4:1 multiplexer is a LUT4
#: level and a PFUMX on the ECP5).
BANK_RUN = 4


class RegisteredRom(wiring.Component):
    """A ``depth`` x ``width`` read-only memory whose read takes two clock edges (three with
    ``bank_stage``).

    ``data`` is the word at the address ``addr`` had :attr:`latency` enabled clock edges
    earlier: the first edge reads the memory array, the second loads the output register. Both happen only while
    ``en`` is high (high when left undriven), so a stalled reader keeps its word.

    On an ECP5 platform (``platform.family == "ecp5"``) the memory is DP16KD blocks with their
    output registers, laid out by :func:`dp16kd_layout`: ``tiles`` blocks side by side for a
    word, in ``banks`` rows of 512, 1024 or 2048 words; with several banks, the bank of the
    address is carried along with the read, and a multiplexer after the blocks' output registers
    chooses among them (a level of logic before the reader's next register; with
    ``bank_stage``, two levels with a register between them). Otherwise it is a
    :class:`~.rom.WeightRom` (so also a ``$readmemh`` ROM under :class:`~.rom.RomFiles`) and a
    register, or two with ``bank_stage``.

    Parameters
    ----------
    width, depth : int
        Word width and number of words.
    init : sequence of int
        Contents (missing words are 0).
    bank_stage : bool
        One more register, so that a read takes three clock edges: on the ECP5 after choosing
        among each run of :data:`BANK_RUN` banks, the last choice among the runs after it (for
        a large store whose banks spread over the chip).

    Attributes
    ----------
    width, depth : int
    shape : Shape
        ``unsigned(width)``.
    init : list of int
    latency : int
        Clock edges from ``addr`` to ``data``: 2, or 3 with ``bank_stage``.
    layout : Dp16kdLayout
        The blocks on the ECP5.

    Members
    -------
    addr : ``In(range(depth))``
        Read address.
    en : ``In(1, init=1)``
        Read enable: both registers keep their values while low.
    data : ``Out(width)``
        The word read.
    """

    def __init__(self, width: int, depth: int, init, *, bank_stage: bool = False):
        self.width, self.depth, self.init = width, depth, check_rom(width, depth, init)
        self.shape = unsigned(width)
        self.layout = dp16kd_layout(width, depth)
        self.bank_stage = bool(bank_stage)
        self.latency = 3 if self.bank_stage else 2
        super().__init__({"addr": In(range(depth)), "en": In(1, init=1), "data": Out(width)})

    def elaborate(self, platform):
        m = Module()
        if getattr(platform, "family", None) == "ecp5":
            self._dp16kd(m)
        else:   # the simulator, RomFiles, another board (block RAM there, see WeightRom)
            m.submodules.rom = rom = WeightRom(self.width, self.depth, self.init)
            m.d.comb += [rom.addr.eq(self.addr), rom.en.eq(self.en)]
            word = rom.data
            if self.bank_stage:
                word = Signal(self.width)
                with m.If(self.en):
                    m.d.sync += word.eq(rom.data)
            with m.If(self.en):
                m.d.sync += self.data.eq(word)
        return m

    def _dp16kd(self, m):
        layout = self.layout
        depth, width = layout.mode_depth, layout.mode_width
        words = self.init + [0] * (layout.banks * depth - len(self.init))
        abits = (depth - 1).bit_length()          # 9, 10 or 11 address bits
        low = 14 - abits                          # address pins below the word address
        addr = Signal(abits)
        m.d.comb += addr.eq(self.addr)
        banks = []
        for bank in range(layout.banks):
            out = Signal(self.width, name=f"bank_{bank}")
            banks.append(out)
            for tile in range(layout.tiles):
                lo = tile * width
                bits = min(width, self.width - lo)
                dout = Signal(36, name=f"bank_{bank}_tile_{tile}")
                mask = (1 << bits) - 1
                contents = [(w >> lo) & mask for w in words[bank * depth:(bank + 1) * depth]]
                ports = {
                    "i_CLKA": ClockSignal("sync"), "i_CLKB": ClockSignal("sync"),
                    "i_WEA": Const(0), "i_RSTA": Const(0), "i_WEB": Const(0), "i_RSTB": Const(0),
                    # port B reads, its word address above `low` pins of zeros
                    "i_CEB": self.en, "i_OCEB": self.en,
                    **{f"i_ADA{b}": Const(0) for b in range(14)},
                    **{f"i_ADB{b}": Const(0) for b in range(low)},
                    **{f"i_ADB{b + low}": addr[b] for b in range(abits)},
                    **{f"i_CS{p}{b}": Const(0) for p in "AB" for b in range(3)},
                    **{f"i_DI{p}{b}": Const(0) for p in "AB" for b in range(18)},
                    **{f"o_DOB{b}": dout[(18 if width == 36 else 0) + b]
                       for b in range(min(width, 18))},
                }
                if width == 36:
                    # pseudo dual-port: port A is the write port (unused), and the read word's
                    # low half comes out on DOA, through port A's output register
                    ports.update({"i_CEA": Const(0), "i_OCEA": self.en,
                                  **{f"o_DOA{b}": dout[b] for b in range(18)}})
                else:
                    ports.update({"i_CEA": Const(0), "i_OCEA": Const(0)})
                m.submodules[f"bram_{bank}_{tile}"] = Instance(
                    "DP16KD",
                    p_DATA_WIDTH_A=width, p_DATA_WIDTH_B=width,
                    p_REGMODE_A="OUTREG", p_REGMODE_B="OUTREG",
                    p_RESETMODE="SYNC", p_ASYNC_RESET_RELEASE="SYNC",
                    p_CSDECODE_A="0b000", p_CSDECODE_B="0b000",
                    p_WRITEMODE_A="NORMAL", p_WRITEMODE_B="NORMAL", p_GSR="DISABLED",
                    **{f"p_{k}": v for k, v in dp16kd_initvals(contents, width).items()},
                    **ports)
                m.d.comb += out[lo:lo + bits].eq(dout[:bits])
        # the bank of the word read, carried along with the read through two registers
        bank_1 = Signal(range(layout.banks))
        bank_2 = Signal(range(layout.banks))
        with m.If(self.en):
            m.d.sync += [bank_1.eq(self.addr[abits:]), bank_2.eq(bank_1)]
        if not self.bank_stage:
            m.d.comb += self.data.eq(Array(banks)[bank_2] if layout.banks > 1 else banks[0])
            return
        # a register after choosing among each run of BANK_RUN banks, the run's chosen word
        # carried on to a last choice among the runs: two shorter paths from the blocks' output
        # registers, which a large store spreads over the chip
        runs = [banks[i:i + BANK_RUN] for i in range(0, layout.banks, BANK_RUN)]
        chosen = [Signal(self.width, name=f"run_{r}") for r in range(len(runs))]
        which_run = Signal(range(len(runs)))
        with m.If(self.en):
            m.d.sync += which_run.eq(bank_2 // BANK_RUN)
            for run, word in zip(runs, chosen):
                m.d.sync += word.eq(Array(run)[bank_2 % BANK_RUN] if len(run) > 1 else run[0])
        m.d.comb += self.data.eq(Array(chosen)[which_run] if len(runs) > 1 else chosen[0])
