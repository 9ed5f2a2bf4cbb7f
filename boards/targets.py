"""The boards ``fewmul build`` knows: platform, FPGA family and device capacity.

Capacities are the device's totals for the resources a network uses. Cell
names map Yosys' technology cells to the four reported kinds (LUT, FF, BRAM,
DSP); nextpnr's bel names give the packed use where there is a place and
route flow. The tools of each family are in :mod:`fewmul.boards.families`, the
platforms (with the clock constraint place and route aims for) in
:mod:`fewmul.boards.platforms`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from amaranth.build import Platform

__all__ = ["Board", "BOARDS", "get_board", "BRAM_18K", "ICE40_EBR"]

#: ``(depth, width)`` configurations of an 18 Kbit block RAM (ECP5 DP16KD, Xilinx RAMB18).
BRAM_18K = ((512, 36), (1024, 18), (2048, 9), (4096, 4), (8192, 2), (16384, 1))
#: Those of a 4 Kbit iCE40 embedded block RAM (SB_RAM40_4K).
ICE40_EBR = ((256, 16), (512, 8), (1024, 4), (2048, 2))


@dataclass(frozen=True)
class Board:
    """One target board.

    Attributes
    ----------
    name : str
        ``--board`` value.
    title : str
        Board and device, for messages.
    platform : callable
        Returns a fresh ``amaranth.build.Platform``, an
        :class:`~fewmul.boards.platforms.AimedClocks` one; keyword argument ``target_hz``.
    family : str
        ``"ice40"``, ``"ecp5"`` or ``"xilinx"`` (no open place and route: synthesis only),
        which selects the flow (:data:`fewmul.boards.families.FLOWS`).
    capacity : dict
        ``lut``, ``ff``, ``bram``, ``dsp``: the device's totals; ``spram`` where the device has
        single-port RAM blocks (the iCE40UP5K's four 16K x 16 ``SB_SPRAM256KA``), which hold
        weights written at start-up (:mod:`fewmul.boards.weights`); none elsewhere
        (:meth:`spram_blocks` is 0).
    pnr_bels : dict
        Kind -> nextpnr bel type whose use nextpnr reports.
    cell_kinds : dict
        Yosys cell-name prefix -> kind.
    target_hz : float or None
        Clock frequency place and route aims for by default (the project's goal for the
        device): the timing constraint it is given (see
        :class:`~fewmul.boards.platforms.AimedClocks`), while the design runs on the board's
        clock. None where there is no place and route.
    bram_geometries : tuple
        ``(depth, width)`` configurations of one block RAM, for the estimate before synthesis.
    blocks_per_bram : int
        Blocks of ``bram_geometries`` per unit of ``capacity["bram"]`` (2 where capacity counts
        36 Kbit blocks of two 18 Kbit halves).
    uart_bridge : str or None
        The USB serial bridge on the host link's pins (a key of
        :data:`fewmul.boards.uart.BRIDGES`), whose rates ``--baud`` is checked against.
    default_baud : int
        The host link's rate by default: the fastest both the bridge and the board's clock
        make within :data:`fewmul.boards.uart.BAUD_TOLERANCE`.
    """
    name: str
    title: str
    platform: Callable[..., Platform]
    family: str
    capacity: dict = field(default_factory=dict)
    pnr_bels: dict = field(default_factory=dict)
    cell_kinds: dict = field(default_factory=dict)
    target_hz: float | None = None
    bram_geometries: tuple[tuple[int, int], ...] = BRAM_18K
    blocks_per_bram: int = 1
    uart_bridge: str | None = None
    default_baud: int = 115200

    @property
    def spram_blocks(self) -> int:
        """Single-port RAM blocks of the device (0 where it has none)."""
        return int(self.capacity.get("spram", 0))

    def kind_of(self, cell: str) -> str | None:
        """The resource kind of a Yosys cell type, or None for cells that are not counted."""
        for prefix, kind in self.cell_kinds.items():
            if cell.startswith(prefix):
                return kind
        return None


# The platforms are imported when first used, so that naming a board imports no Amaranth.

def _icebreaker(*, target_hz: float | None = None) -> Platform:
    from .platforms import ICEBreakerPlatform
    return ICEBreakerPlatform(target_hz=target_hz)


def _ulx3s(*, target_hz: float | None = None) -> Platform:
    from .platforms import ULX3S_85F_Platform
    return ULX3S_85F_Platform(target_hz=target_hz)


def _arty(*, target_hz: float | None = None) -> Platform:
    from .platforms import ArtyA7_35Platform
    return ArtyA7_35Platform(toolchain="Vivado", target_hz=target_hz)


BOARDS = {board.name: board for board in [
    Board("icebreaker", "iCEBreaker (Lattice iCE40UP5K)", _icebreaker, "ice40",
          # 30 EBR of 4 kbit; 4 SPRAM of 256 kbit (16K x 16), written at start-up
          capacity={"lut": 5280, "ff": 5280, "bram": 30, "dsp": 8, "spram": 4},
          pnr_bels={"lut": "ICESTORM_LC", "bram": "ICESTORM_RAM", "dsp": "ICESTORM_DSP",
                    "spram": "ICESTORM_SPRAM"},
          cell_kinds={"SB_LUT4": "lut", "SB_DFF": "ff", "SB_RAM40": "bram", "SB_MAC16": "dsp",
                      "SB_SPRAM256KA": "spram"},
          target_hz=40e6, bram_geometries=ICE40_EBR,
          uart_bridge="FT2232H", default_baud=3_000_000),     # 12 MHz / 4, FT2232H 12 MHz / 4
    Board("ulx3s", "ULX3S (Lattice ECP5 LFE5U-85F)", _ulx3s, "ecp5",
          capacity={"lut": 83640, "ff": 83640, "bram": 208, "dsp": 156},
          pnr_bels={"lut": "TRELLIS_COMB", "ff": "TRELLIS_FF", "bram": "DP16KD",
                    "dsp": "MULT18X18D"},
          cell_kinds={"LUT4": "lut", "TRELLIS_FF": "ff", "DP16KD": "bram", "MULT18X18D": "dsp",
                      "ALU54B": "dsp"},
          target_hz=150e6,
          uart_bridge="FT231X", default_baud=3_000_000),      # 25 MHz / (25/3), FT231X's fastest
    Board("arty", "Arty A7-35 (Xilinx Artix-7 XC7A35T)", _arty, "xilinx",
          # 50 RAMB36 = 100 RAMB18; counted in RAMB36 equivalents.
          capacity={"lut": 20800, "ff": 41600, "bram": 50, "dsp": 90},
          cell_kinds={"LUT": "lut", "FD": "ff", "RAMB36": "bram", "RAMB18": "bram18",
                      "DSP48": "dsp"}, blocks_per_bram=2,
          uart_bridge="FT2232H", default_baud=3_000_000),     # 100 MHz / (100/3)
]}


def get_board(name: str) -> Board:
    """The board called ``name``; the error lists the known ones."""
    try:
        return BOARDS[name]
    except KeyError:
        raise ValueError(f"Board must be one of {', '.join(sorted(BOARDS))}, not {name!r}") from None
