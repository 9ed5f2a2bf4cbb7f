"""Verilog of a design whose weight memories load their contents with ``$readmemh``.

Amaranth writes a memory's initial contents into the Verilog bit by bit (as netlist
constants, then one ``initial`` assignment per word), which takes minutes for the
multi-Mbit weight memories of a large network. :func:`convert_with_rom_files` elaborates
the design with a :class:`~fewmul.gateware.rom.RomFiles` platform instead: every
:class:`~fewmul.gateware.rom.WeightRom` becomes a small Verilog module that reads
``rom/<name>.hex`` at start-up, every distinct popcount tree one module of its own, and the
file holds the design plus those modules. The Amaranth simulator and the board platforms
elaborate without it and keep the :class:`~amaranth.lib.memory.Memory`.

One Yosys run turns Amaranth's RTLIL into Verilog (as Amaranth's own back end does: ``proc
-nomux -norom; memory_collect; write_verilog -norename``), reads the generated modules, and
counts the cells of the whole design (:func:`convert_and_check`): the multiplier check of
every emitted design costs no second read of the Verilog.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["convert_with_rom_files", "convert_and_check"]


def convert_and_check(top, directory: Path, name: str = "top",
                      prefix: str = "top") -> tuple[str, dict]:
    """Verilog of ``top`` (module ``name``), with its ROM contents written to
    ``directory/rom/{prefix}_rom{n}.hex``, and Yosys' ``generic`` statistics of it
    (:func:`~fewmul.compiler.yosys.yosys_stat`: every multiplication is a ``$mul`` cell there).

    The Verilog refers to the files by relative paths: save it in ``directory`` and run tools
    with ``directory`` as their working directory.
    """
    from amaranth.back import rtlil

    from fewmul.gateware.rom import ROM_FOLDER, RomFiles

    from .yosys import SYNTH_TARGETS, run_stat, stat_summary

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for stale in (directory / ROM_FOLDER).glob(f"{prefix}_rom*.hex"):
        stale.unlink()
    roms = RomFiles(directory, prefix)
    design = directory / f".{name}.il"
    core = directory / f".{name}_core.v"
    modules = directory / f".{name}_modules.v"
    try:
        design.write_text(rtlil.convert(top, name=name, platform=roms))
        extra = roms.verilog()
        modules.write_text(extra)
        read = (f"read_rtlil {design.name}; proc -nomux -norom; memory_collect; "
                f"write_verilog -norename {core.name}; read_verilog {modules.name}")
        stat = run_stat(directory, f"{name}.v", SYNTH_TARGETS["generic"].format(top=name),
                        "stat_generic", name, read=read)
        text = core.read_text()
    finally:
        for temporary in (design, core, modules):
            temporary.unlink(missing_ok=True)
    return (text + "\n" + extra if extra else text), stat_summary(stat, "generic")


def convert_with_rom_files(top, directory: Path, name: str = "top", prefix: str = "top") -> str:
    """The Verilog of :func:`convert_and_check` alone."""
    return convert_and_check(top, directory, name, prefix)[0]
