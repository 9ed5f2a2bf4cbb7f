"""Synthesized area per layer: Yosys with the hierarchy kept, cells summed per layer.

Amaranth names the layers' modules ``top.layer{L}_mvu``, ``..._act`` and
``..._collect``; a layer's figures are the sum of its three modules.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

from .yosys import YosysError, yosys_command

__all__ = ["CELL_CLASSES", "LAYER_SYNTH", "classify", "synth_layers"]

#: Synthesis commands keeping the hierarchy.
LAYER_SYNTH = {
    "ecp5": "synth_ecp5 -top {top} -noflatten",
    "xilinx": "synth_xilinx -top {top} -family xc7 -noflatten",
}
#: Cell types counted as LUTs, flip-flops, 18 Kbit block RAMs (weight), LUT RAM and DSPs.
CELL_CLASSES = {
    "ecp5": {"lut": {"LUT4": 1}, "ff": {"TRELLIS_FF": 1}, "bram": {"DP16KD": 1, "PDPW16KD": 1},
             "lutram": {"TRELLIS_DPR16X4": 1}, "carry": {"CCU2C": 1},
             "dsp": {"MULT18X18D": 1, "ALU54B": 1}},
    "xilinx": {"lut": {f"LUT{i}": 1 for i in range(1, 7)},
               "ff": {"FDRE": 1, "FDSE": 1, "FDCE": 1, "FDPE": 1},
               "bram": {"RAMB18E1": 1, "RAMB36E1": 2},
               "lutram": {"RAM32M": 1, "RAM64M": 1, "RAM32X1D": 1, "RAM64X1D": 1,
                          "RAM128X1D": 1, "RAM256X1S": 1},
               "carry": {"CARRY4": 1}, "dsp": {"DSP48E1": 1}},
}


def classify(cells: dict[str, int], target: str) -> dict[str, int]:
    """Sum cell counts into the classes of :data:`CELL_CLASSES`."""
    return {name: sum(cells.get(cell, 0) * weight for cell, weight in kinds.items())
            for name, kinds in CELL_CLASSES[target].items()}


def synth_layers(build_dir: Path, target: str = "ecp5", *, verilog: str = "top.v",
                 top: str = "top") -> dict:
    """Synthesize ``build_dir/verilog`` for ``target`` keeping the hierarchy.

    Returns
    -------
    dict
        ``total``: the classes of the whole design; ``cells``: its count per cell type;
        ``layers``: one dict of classes per layer.
    """
    if target not in LAYER_SYNTH:
        raise ValueError(f"Per-layer synthesis target must be one of {sorted(LAYER_SYNTH)}, "
                         f"not {target!r}")
    build_dir = Path(build_dir)
    out = f"stat_layers_{target}.json"
    script = (f"read_verilog {verilog}; {LAYER_SYNTH[target].format(top=top)}; "
              f"tee -q -o {out} stat -json")
    proc = subprocess.run(yosys_command() + ["-q", "-p", script], cwd=build_dir,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        (build_dir / f"yosys_layers_{target}.log").write_text(proc.stdout + proc.stderr)
        raise YosysError(f"Yosys ({target}) failed; see "
                         f"{build_dir / f'yosys_layers_{target}.log'}")
    modules = json.loads((build_dir / out).read_text())["modules"]
    layers: dict[int, dict[str, int]] = {}
    total = {name: 0 for name in CELL_CLASSES[target]}
    cells: dict[str, int] = {}
    for name, stat in modules.items():
        by_type = {k: int(v) for k, v in stat.get("num_cells_by_type", {}).items()
                   if not k.startswith("\\") and k not in modules}   # not submodule instances
        for kind, count in by_type.items():
            cells[kind] = cells.get(kind, 0) + count
        counts = classify(by_type, target)
        for key, value in counts.items():
            total[key] += value
        match = re.search(r"\.layer(\d+)_(mvu|act|collect)\b", name)
        if match:
            layer = layers.setdefault(int(match[1]), {key: 0 for key in counts})
            for key, value in counts.items():
                layer[key] += value
    return {"target": target, "total": total, "cells": cells,
            "layers": [layers.get(index, {}) for index in range(max(layers, default=-1) + 1)]}
