"""Compile time of the 784-1024-1024-1024-10 network, four variants, against the old path.

For binary/ternary weights and 1-/2-bit activations (random parameters, as in
``sim_throughput.py``) and the folding planned for ``--target-cycles``, times what
``fewmul compile`` does after folding the trained model: ``emit_build`` (lowering, Verilog
with ``$readmemh`` weight ROMs and one module per popcount tree, the Yosys ``generic``
multiplier check in the same Yosys run, weights, manifest).
The baseline, measured in the same run, is the former Verilog path (``verilog.convert`` with
the weights as inline memory contents, no check). Wall time depends on the machine's load;
CPU time (this process and its children, Yosys included) less so.

    .venv/bin/python bench/compile_time.py [--target-cycles 1024] [--no-baseline]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from fewmul.compiler.emit import emit_build, synthesize
from fewmul.compiler.lower import lower
from fewmul.compiler.planner import plan_folding

sys.path.insert(0, str(Path(__file__).parent))
from sim_throughput import random_net  # noqa: E402

GOAL = 10.0
VARIANTS = [("binary", 1), ("ternary", 1), ("binary", 2), ("ternary", 2)]


class Timer:
    """Wall time and CPU time of this process and its finished children."""

    def __enter__(self):
        self.t0, self.c0 = time.perf_counter(), os.times()
        return self

    def __exit__(self, *exc):
        c1 = os.times()
        self.wall = time.perf_counter() - self.t0
        self.cpu = sum(getattr(c1, k) - getattr(self.c0, k)
                       for k in ("user", "system", "children_user", "children_system"))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target-cycles", type=int, default=1024)
    parser.add_argument("--pipeline", type=int, default=1)
    parser.add_argument("--popcount", choices=["adder", "compressor"], default="adder",
                        help="popcount tree style (default: adder)")
    parser.add_argument("--no-baseline", action="store_true", help="skip the old path (slow)")
    args = parser.parse_args(argv)
    from amaranth.back import verilog

    x = np.random.default_rng(1).integers(0, 256, (200, 784))
    rows = []
    for weights, bits in VARIANTS:
        net = random_net(x, weights, bits)
        plans = plan_folding(net, "auto", args.target_cycles, pipeline=args.pipeline,
                             popcount_style=args.popcount)
        with tempfile.TemporaryDirectory(prefix="fewmul-compile-") as tmp:
            with Timer() as emit:
                top, report = emit_build(net, plans, Path(tmp) / "new")
            stat = synthesize(Path(tmp) / "new", report, ("generic",))["generic"]
            old = None
            if not args.no_baseline:
                with Timer() as old:
                    text = verilog.convert(lower(net, plans), name="top")
                    (Path(tmp) / "old.v").write_text(text)
        rows.append((weights, bits, emit, old, stat))
        line = (f"{weights:7s} {bits}-bit: emit with $mul check {emit.wall:5.1f} s wall "
                f"{emit.cpu:5.1f} s CPU ({stat['multipliers']} multipliers, "
                f"{stat['num_cells']} cells; Verilog and check {stat['seconds']:.1f} s wall)")
        if old is not None:
            line += (f"; old Verilog path {old.wall:5.1f} s wall {old.cpu:5.1f} s CPU "
                     f"(speed-up {old.wall / emit.wall:.1f}x)")
        print(line, flush=True)
        print(f"  folding: {', '.join(f'pe {p.pe} simd {p.simd}' for p in plans)}, target "
              f"{args.target_cycles} cycles, pipeline {args.pipeline}, {args.popcount} popcount",
              flush=True)
    worst = max(e.wall for _, _, e, _, _ in rows)
    print(f"slowest compile {worst:.1f} s against the {GOAL:.0f} s goal: {worst / GOAL:.2f}x")
    return 0 if all(stat["multipliers"] == 0 for *_, stat in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
