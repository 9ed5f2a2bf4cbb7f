"""Verilog of a design whose weight memories load their contents with ``$readmemh``.

Amaranth writes a memory's initial contents into the Verilog bit by bit (as netlist
constants, then one ``initial`` assignment per word), which takes minutes for the
multi-Mbit weight memories of a large network. :func:`convert_with_rom_files` elaborates
the design with a :class:`~fewmul.gateware.rom.RomFiles` platform instead: every
:class:`~fewmul.gateware.rom.WeightRom` becomes a small Verilog module that reads
``rom/<name>.hex`` at start-up, and the file holds the design plus those modules. The
Amaranth simulator and the board platforms elaborate without it and keep the
:class:`~amaranth.lib.memory.Memory`.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["convert_with_rom_files"]


def convert_with_rom_files(top, directory: Path, name: str = "top", prefix: str = "top") -> str:
    """Verilog of ``top`` (module ``name``), with its ROM contents written to
    ``directory/rom/{prefix}_rom{n}.hex``.

    The Verilog refers to the files by relative paths: save it in ``directory`` and run tools
    with ``directory`` as their working directory.
    """
    from amaranth.back import verilog

    from fewmul.gateware.rom import ROM_FOLDER, RomFiles

    for stale in (Path(directory) / ROM_FOLDER).glob(f"{prefix}_rom*.hex"):
        stale.unlink()
    roms = RomFiles(directory, prefix)
    text = verilog.convert(top, name=name, platform=roms)
    extra = roms.verilog()
    return text + "\n" + extra if extra else text
