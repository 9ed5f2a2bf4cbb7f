"""A digits design-space sweep, serially in one process and then on the default local Dask
cluster, in one run: both wall times, their ratio, and the Pareto plots.

The sweep (``OUT/sweep.yaml``, base ``OUT/base.yaml``: 64-H-10 on the bundled digits) crosses
hidden widths, binary and ternary hidden weights, target cycles per inference and the boards
(the iCEBreaker's iCE40UP5K and the ULX3S's ECP5-85F), 3 x 2 x 2 x 2 = 24 points, each trained,
compiled and placed and routed. Both runs start from empty folders (``OUT/serial/``,
``OUT/cluster/``) and must give the same figures; the plots and ``results.csv`` of the cluster
run are in ``OUT/cluster/``.

    python bench/sweep.py                          # the full measurement (tens of minutes)
    python bench/sweep.py --points 4 --no-build    # a quick check of the machinery
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

from fewmul.sweep.results import collect, write_results
from fewmul.sweep.run import default_workers, run_points
from fewmul.sweep.spec import load_sweep

BASE = """\
name: digits-sweep
data: {set: digits, input_bits: 4}
layers:
  - {units: 64, weights: binary, act: sign, bn: true}
  - {units: 10, weights: binary, act: none, bn: true}
train: {epochs: %d, seed: 0}
"""

SWEEP = """\
name: digits-sweep
base: base.yaml
axes:
  layers.0.units: [%s]
  layers.0.weights: [binary, ternary]
  target_cycles: [%s]
%sstages: {train: true, compile: true, build: %s}
"""

#: Figures that must agree between the serial and the cluster run (timings do not).
COMPARED = ("test_acc", "test_acc_integer", "cycles_per_inference", "est_lut", "lut", "ff",
            "bram", "fmax_mhz", "error_kind")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    p.add_argument("-o", "--output", type=Path, default=Path("build/bench-sweep"))
    p.add_argument("--widths", default="16,32,64", help="hidden widths (default 16,32,64)")
    p.add_argument("--cycles", default="16,64", help="target cycles per inference (default 16,64)")
    p.add_argument("--epochs", type=int, default=10, help="training epochs per point (default 10)")
    p.add_argument("--no-build", action="store_true",
                   help="train and compile only: no board axis, no place and route")
    p.add_argument("--points", type=int, default=None, metavar="N",
                   help="only the first N points (default: all)")
    p.add_argument("--workers", type=int, default=None,
                   help=f"worker processes of the local cluster (default: one per core, "
                        f"{default_workers()} here)")
    args = p.parse_args(argv)
    out = args.output
    out.mkdir(parents=True, exist_ok=True)
    (out / "base.yaml").write_text(BASE % args.epochs)
    boards = "" if args.no_build else "  board: [icebreaker, ulx3s]\n"
    (out / "sweep.yaml").write_text(SWEEP % (", ".join(args.widths.split(",")),
                                             ", ".join(args.cycles.split(",")), boards,
                                             "false" if args.no_build else "true"))
    spec = load_sweep(out / "sweep.yaml")
    points = spec.points()[:args.points]
    axes = [a.key for a in spec.axes]
    print(f"{len(points)} points ({' x '.join(f'{a.key} {len(a.values)}' for a in spec.axes)}"
          f"{'' if args.points is None else f', the first {len(points)}'})")

    times = {}
    for mode in ("serial", "cluster"):
        folder = out / mode
        shutil.rmtree(folder, ignore_errors=True)
        t0 = time.perf_counter()
        run = run_points(points, folder, serial=mode == "serial", workers=args.workers,
                         desc=mode)
        times[mode] = time.perf_counter() - t0
        print(f"{mode}: {times[mode]:.1f} s wall on {run.workers} "
              f"{'process' if run.workers == 1 else 'worker processes'}; "
              f"{run.count('done')} done, {run.count('failed')} failed, "
              f"{run.count('missing')} missing")
    csv_path, plots, rows = write_results(points, axes, out / "cluster", spec.name)
    serial_rows = {r["id"]: r for r in collect(points, out / "serial")}
    differ = [f"{r['id']}.{k}: {serial_rows[r['id']].get(k)} serially, {r.get(k)} on the cluster"
              for r in rows for k in COMPARED if serial_rows[r["id"]].get(k) != r.get(k)]
    print(f"serial {times['serial']:.1f} s, cluster {times['cluster']:.1f} s: "
          f"{times['serial'] / times['cluster']:.2f}x")
    print("figures: the same in both runs" if not differ else
          "figures that differ:\n  " + "\n  ".join(differ))
    print(f"results: {csv_path}; plots: {', '.join(str(p) for p in plots) or 'none'}")
    return 1 if differ else 0


if __name__ == "__main__":
    raise SystemExit(main())
