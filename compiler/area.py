"""Synthesized area, in total and per layer.

Yosys (YoWASP) synthesizes flattened designs only (with the hierarchy kept, its ABC9 step
fails), so a layer's figures come from synthesizing that layer on its own
(its units alone, as :func:`fewmul.compiler.lower.layer_stages` builds them: matrix-vector
unit, activation, skid buffer, collector).
"""

from __future__ import annotations

from pathlib import Path

from .yosys import ECP5_SCRIPT, XILINX_SCRIPT, cell_counts, run_stat

__all__ = ["CELL_CLASSES", "SYNTH", "classify", "synth_cells", "synth_layers"]

#: Flattening synthesis commands per target.
SYNTH = {
    "ecp5": ECP5_SCRIPT,
    "xilinx": XILINX_SCRIPT,
}
#: iCE40 flip-flop cells (enable, synchronous or asynchronous set or reset, negative edge).
ICE40_FFS = [f"SB_DFF{edge}{enable}{kind}" for edge in ("", "N") for enable in ("", "E")
             for kind in ("", "SR", "R", "SS", "S")]
#: Cell types counted as LUTs, flip-flops, 18 Kbit block RAMs (weight; 4 Kbit EBR on the
#: iCE40), LUT RAM, carry cells and DSPs, and on the iCE40UP5K the 256 Kbit single-port RAM
#: blocks that hold weights written at start-up (``spram``).
CELL_CLASSES = {
    "ice40": {"lut": {"SB_LUT4": 1}, "ff": {cell: 1 for cell in ICE40_FFS},
              "bram": {"SB_RAM40_4K": 1}, "spram": {"SB_SPRAM256KA": 1}, "lutram": {},
              "carry": {"SB_CARRY": 1}, "dsp": {"SB_MAC16": 1, "$mul": 1}},
    "ecp5": {"lut": {"LUT4": 1}, "ff": {"TRELLIS_FF": 1}, "bram": {"DP16KD": 1, "PDPW16KD": 1},
             "lutram": {"TRELLIS_DPR16X4": 1}, "carry": {"CCU2C": 1},
             "dsp": {"MULT18X18D": 1, "ALU54B": 1, "$mul": 1}},
    "xilinx": {"lut": {f"LUT{i}": 1 for i in range(1, 7)},
               "ff": {"FDRE": 1, "FDSE": 1, "FDCE": 1, "FDPE": 1},
               "bram": {"RAMB18E1": 1, "RAMB36E1": 2},
               "lutram": {"RAM32M": 1, "RAM64M": 1, "RAM32X1D": 1, "RAM64X1D": 1,
                          "RAM128X1D": 1, "RAM256X1S": 1},
               "carry": {"CARRY4": 1}, "dsp": {"DSP48E1": 1, "$mul": 1}},
}


#: LUTs a LUT RAM cell occupies.
LUTRAM_LUTS = {"TRELLIS_DPR16X4": 2, "RAM32M": 4, "RAM64M": 4, "RAM32X1D": 2, "RAM64X1D": 2,
               "RAM128X1D": 4, "RAM256X1S": 4}


def classify(cells: dict[str, int], target: str) -> dict[str, int]:
    """Sum cell counts into the classes of :data:`CELL_CLASSES`; ``lut_total`` adds the LUTs
    that LUT RAM occupies to ``lut``."""
    out = {name: sum(cells.get(cell, 0) * weight for cell, weight in kinds.items())
           for name, kinds in CELL_CLASSES[target].items()}
    out["lut_total"] = out["lut"] + sum(cells.get(cell, 0) * luts
                                        for cell, luts in LUTRAM_LUTS.items())
    return out


def synth_cells(work_dir: Path, verilog: str, target: str, top: str = "top") -> dict[str, int]:
    """Synthesize ``work_dir/verilog`` (flattened) for ``target``; cell counts by type."""
    if target not in SYNTH:
        raise ValueError(f"Synthesis target must be one of {sorted(SYNTH)}, not {target!r}")
    name = f"{Path(verilog).stem}_{target}"
    return cell_counts(run_stat(work_dir, verilog, SYNTH[target].format(top=top), name, top))


def synth_layers(build_dir: Path, plans, target: str = "ecp5") -> dict:
    """Synthesize ``build_dir/top.v`` and every layer of ``plans`` (``LayerPlan``) alone.

    Layer ``i`` is ``build_dir/layers/layer{i}.v``, its weights in ``layers/rom/`` (Yosys runs
    in ``layers/``).

    Returns
    -------
    dict
        ``cells`` (by type) and ``total`` (classes) of the whole design; ``layers``: the
        classes of each layer.
    """
    from .lower import layer_unit
    from .verilog import convert_with_rom_files

    build_dir = Path(build_dir)
    cells = synth_cells(build_dir, "top.v", target)
    work = build_dir / "layers"
    work.mkdir(exist_ok=True)
    per_layer = []
    for index, plan in enumerate(plans):
        name = f"layer{index}.v"
        (work / name).write_text(convert_with_rom_files(layer_unit(plan), work,
                                                        prefix=f"layer{index}"))
        per_layer.append(classify(synth_cells(work, name, target), target))
    return {"target": target, "cells": cells, "total": classify(cells, target),
            "layers": per_layer}
