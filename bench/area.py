"""Area of a 1024x1024 binary layer at several foldings.

For each folding (PE neurons x SIMD inputs per cycle) and popcount style, the
layer (matrix-vector unit with its weights in memory, and the threshold unit)
is synthesized with Yosys ``synth_ecp5`` (LUT4) and ``synth_xilinx`` (LUT6),
and the figure of merit printed is **binary MACs per cycle per LUT** =
PE * SIMD / LUTs (goal: >= 0.5). The baseline, measured in the same run, is the
adder-tree popcount at the same folding; the ratio column is compressor / adder.

    .venv/bin/python bench/area.py [--foldings 1x1024,16x64] [--targets ecp5,xilinx]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from amaranth.lib import wiring
from amaranth.hdl import Module

from fewmul.compiler.area import classify, synth_cells
from fewmul.compiler.verilog import convert_with_rom_files
from fewmul.compiler.yosys import YosysError
from fewmul.gateware import MatrixVectorUnit, ThresholdUnit

FOLDINGS = [(1, 1024), (4, 256), (16, 64), (32, 32), (8, 256)]
STYLES = ("adder", "compressor")
GOAL = 0.5


class Layer(wiring.Component):
    """A hidden layer: matrix-vector unit and threshold unit."""

    def __init__(self, weights, thresholds, *, pe, simd, style):
        self.mvu = MatrixVectorUnit(weights, input_kind="bipolar", input_bits=1, pe=pe,
                                    simd=simd, popcount_style=style)
        self.act = ThresholdUnit(thresholds, sum_bound=self.mvu.sum_bound, pe=pe)
        super().__init__({"i": self.mvu.signature.members["i"],
                          "o": self.act.signature.members["o"]})

    def elaborate(self, platform):
        m = Module()
        m.submodules.mvu, m.submodules.act = self.mvu, self.act
        wiring.connect(m, wiring.flipped(self.i), self.mvu.i)
        wiring.connect(m, self.mvu.o, self.act.i)
        wiring.connect(m, self.act.o, wiring.flipped(self.o))
        return m


def measure(pe: int, simd: int, style: str, targets, n: int = 1024) -> dict:
    rng = np.random.default_rng(0)
    weights = rng.integers(0, 2, size=(n, n))
    thresholds = rng.integers(-64, 65, size=n).tolist()
    top = Layer(weights, thresholds, pe=pe, simd=simd, style=style)
    out = {}
    with tempfile.TemporaryDirectory(prefix="fewmul-area-") as tmp:
        # As `fewmul compile` writes it: ROMs from $readmemh files, one module per popcount tree
        Path(tmp, "top.v").write_text(convert_with_rom_files(top, Path(tmp), name="top"))
        for target in targets:
            t0 = time.perf_counter()
            try:
                classes = classify(synth_cells(Path(tmp), "top.v", target), target)
            except YosysError as error:  # report it and go on with the other runs
                log = Path(tmp, f"top_{target}.log")
                tail = log.read_text().strip().splitlines()[-3:] if log.exists() else []
                print(f"{pe}x{simd} {style} {target}: {error}: {' | '.join(tail)}", flush=True)
                continue
            classes["seconds"] = time.perf_counter() - t0
            luts = classes["lut_total"]
            classes["mac_per_lut"] = pe * simd / luts if luts else 0.0
            # An ECP5 carry cell (CCU2C) holds two LUT4s that the LUT count leaves out.
            classes["lut_with_carry"] = luts + (2 * classes["carry"] if target == "ecp5" else 0)
            out[target] = classes
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--foldings", default=",".join(f"{p}x{s}" for p, s in FOLDINGS),
                        help="comma-separated PExSIMD list")
    parser.add_argument("--targets", default="ecp5,xilinx")
    parser.add_argument("--styles", default=",".join(STYLES))
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    foldings = [tuple(int(v) for v in f.split("x")) for f in args.foldings.split(",")]
    targets = args.targets.split(",")
    styles = args.styles.split(",")
    rows = []
    print(f"1024x1024 binary layer (weights in memory), goal {GOAL} binary MACs/cycle/LUT")
    print("LUT counts include the LUTs of LUT RAM (the threshold memories); 'LUT+CCU' also "
          "counts the two LUT4s of each ECP5 carry cell (CCU2C)")
    print(f"{'PE':>4} {'SIMD':>5} {'style':>10} {'target':>7} {'LUT':>7} {'FF':>6} "
          f"{'BRAM':>5} {'carry':>6} {'DSP':>4} {'MAC/cyc/LUT':>12} {'vs goal':>8} "
          f"{'vs adder':>9} {'LUT+CCU':>8}")
    for pe, simd in foldings:
        baseline = None
        for style in styles:
            result = measure(pe, simd, style, targets)
            if style == "adder":
                baseline = result
            for target in targets:
                if target not in result:
                    continue
                r = result[target]
                base = (baseline or {}).get(target)
                ratio = (r["mac_per_lut"] / base["mac_per_lut"] if base and base["mac_per_lut"]
                         else float("nan"))
                print(f"{pe:>4} {simd:>5} {style:>10} {target:>7} {r['lut_total']:>7} {r['ff']:>6} "
                      f"{r['bram']:>5} {r['carry']:>6} {r['dsp']:>4} {r['mac_per_lut']:>12.3f} "
                      f"{r['mac_per_lut'] / GOAL:>8.2f} {ratio:>9.2f} {r['lut_with_carry']:>8}",
                      flush=True)
                rows.append({"pe": pe, "simd": simd, "style": style, "target": target, **r})
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
