"""FINN's CNV (examples/cifar10-cnv.yaml): estimated area per cycle target, compile time, and
the Verilator throughput, on untrained weights and random images (no CIFAR-10 here).

For each ``--targets`` cycle count the planner's folding and its LUT/FF/BRAM estimate are
printed, with the images per second at ``--clock-mhz``. Then the network planned for
``--compile-target`` is compiled as ``fewmul compile`` does (fold, plan, lower, Verilog, the
Yosys multiplier check), timed, and ``--images`` random images run through the compiled C++
harness (no Python per cycle), checked against the golden model; the golden model's own
images/s on the same images is the baseline printed beside it.

    .venv/bin/python bench/cnv.py [--targets 100000 30000 10000 3000] [--images 50]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from fewmul.compiler.emit import emit_build
from fewmul.compiler.planner import plan_folding
from fewmul.compiler.spec import load_spec
from fewmul.ir.fold import fold
from fewmul.nn.data import SHAPES
from fewmul.nn.model import Model
from fewmul.sim.fast import build_fast, run_fast

SPEC = Path(__file__).resolve().parent.parent / "examples" / "cifar10-cnv.yaml"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--targets", type=int, nargs="+", default=[100_000, 30_000, 10_000, 3_000])
    parser.add_argument("--compile-target", type=int, default=None,
                        help="cycle target of the compiled build (default: the spec's)")
    parser.add_argument("--clock-mhz", type=float, default=150.0)
    parser.add_argument("--images", type=int, default=50, help="random images in Verilator")
    parser.add_argument("--out", type=Path, default=None, help="build folder (default: temporary)")
    args = parser.parse_args(argv)

    spec = load_spec(SPEC)
    model = Model.init(SHAPES[spec.data.set], spec.layers, spec.train.seed)
    net = fold(model, spec.data.input_bits, spec.train)
    print(f"CNV: {len(net.layers)} layers, {net.in_type} input")
    print(f"{'target':>8} {'cycles':>8} {'img/s':>8} {'LUT':>8} {'FF':>8} {'BRAM18':>7}  pe per layer")
    for target in args.targets:
        try:
            plans = plan_folding(net, "auto", target)
        except ValueError as exc:
            print(f"{target:>8}  {exc}")
            continue
        cycles = max(p.cycles for p in plans)
        est = [p.estimate() for p in plans]
        print(f"{target:>8} {cycles:>8} {args.clock_mhz * 1e6 / cycles:>8.0f} "
              f"{sum(e.luts for e in est):>8} {sum(e.ffs for e in est):>8} "
              f"{sum(e.brams for e in est):>7}  {','.join(str(p.pe) for p in plans)}")

    target = args.compile_target or spec.hardware.target_cycles
    with tempfile.TemporaryDirectory(prefix="fewmul-cnv-") as tmp:
        build = args.out or Path(tmp) / "build"
        t0 = time.perf_counter()
        net = fold(model, spec.data.input_bits, spec.train)
        plans = plan_folding(net, "auto", target)
        _, report = emit_build(net, plans, build)
        compile_s = time.perf_counter() - t0
        print(f"compile (target {target}): {compile_s:.1f} s, "
              f"{report['cycles_per_inference']} cycles/inference predicted, "
              f"yosys generic $mul {report['yosys']['generic']['cells'].get('$mul', 0)}")
        x = np.random.default_rng(0).integers(0, 1 << net.input_bits, (args.images, net.in_type.size))
        t0 = time.perf_counter()
        expected = net.forward(x)[-1]
        golden_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        build_fast(build)
        harness_build_s = time.perf_counter() - t0
        result = run_fast(build, x, expected)
        rate = result["images_per_second"]
        print(f"Verilator harness: built in {harness_build_s:.0f} s; {result['images']} images, "
              f"{result['mismatches']} mismatches, {result['cycles_per_inference']:.0f} "
              f"cycles/inference measured, {rate:.1f} images/s "
              f"({rate * result['cycles_per_inference'] / 1e3:.0f} k cycles/s); golden model "
              f"{args.images / golden_s:.1f} images/s, ratio {rate * golden_s / args.images:.2f}")
        return 0 if result["mismatches"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
