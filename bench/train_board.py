"""Trainable bitstreams: the on-chip trainer of a spec behind its training link, for a board.

Compiles each spec with ``fewmul compile --train`` (skipped when the folder already holds a
training build), builds it with ``fewmul build --board BOARD`` and prints per net: LUT, FF,
BRAM, DSP, Fmax (and the critical path when the goal is missed), cycles per training step,
training steps/s at the board clock and at Fmax, and the training samples/s the serial link
carries (a sample's frame is its label and pixels; its answer two bytes); writes them to
``OUTPUT/train_board.json``.

Usage::

    python bench/train_board.py [-o build/bench-train-board] [--board ulx3s]
                                [examples/digits-onchip.yaml examples/digits-onchip-deep.yaml]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from fewmul.boards.flow import build_board

SPECS = ["examples/digits-onchip.yaml", "examples/digits-onchip-deep.yaml"]


def row(report: dict) -> dict:
    rate = report["training_steps_per_s"]
    path = report.get("critical_path") or {}
    return {"net": "-".join(map(str, report["net"])), "weights": report["weights"],
            **{k: report["used"].get(k) for k in ("lut", "ff", "bram", "dsp")},
            "fmax_mhz": report["fmax_mhz"], "cycles_per_step": report["cycles_per_step"],
            "steps_per_s_board_clock": rate["compute_at_board_clock"],
            "steps_per_s_fmax": rate["compute_at_fmax"], "link_samples_per_s": rate["uart"],
            "baud": report["baud"], "critical_path": path,
            "tool_seconds": report["tool_seconds"]}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("specs", nargs="*", default=SPECS)
    p.add_argument("-o", "--output", type=Path, default=Path("build/bench-train-board"))
    p.add_argument("--board", default="ulx3s")
    args = p.parse_args(argv)
    rows = []
    for spec in args.specs:
        folder = args.output / Path(spec).stem
        if not (folder / "train.json").exists():
            subprocess.run([sys.executable, "-m", "fewmul.cli", "compile", "--train", spec, "-o",
                            str(folder)], check=True)
        rows.append(row(build_board(folder, args.board, progress=False)))
        r = rows[-1]
        print(f"{r['net']} ({r['weights']}): LUT {r['lut']:g} FF {r['ff']:g} BRAM {r['bram']:g} "
              f"DSP {r['dsp']:g}; Fmax {r['fmax_mhz']:.1f} MHz; {r['cycles_per_step']} "
              f"cycles/step: {r['steps_per_s_board_clock']:,.0f} steps/s at the board clock, "
              f"{r['steps_per_s_fmax']:,.0f} at Fmax; the {r['baud']} baud link carries "
              f"{r['link_samples_per_s']:,.0f} samples/s")
        if r["critical_path"]:
            cp = r["critical_path"]
            print(f"  critical path: {cp['from']} -> {cp['to']}, {cp['delay_ns']:.2f} ns")
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / "train_board.json").write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
