"""``fewmul sweep SWEEP.yaml -o DIR/``"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .common import positive_int

EXAMPLE = """\
example SWEEP.yaml:
  base: digits-bnn.yaml                # the network spec every point starts from
  axes:                                # every combination is a point
    layers.0.units: [32, 64]           # any spec key, by dotted path
    layers.0.weights: [binary, ternary]
    train.epochs: {from: 2, to: 6, step: 2}
    target_cycles: [16, 64]            # options: target_cycles max_luts pe pipeline board target_mhz
  stages: {train: true, compile: true, sim: 0, build: false}

DIR/points/<id>/ holds each point (result.json, or error.json when it failed); DIR/results.csv
one row per point; DIR/pareto.png, speed.png, epochs.png the plots. Run the same command again
to run only the points that are missing. Exit status: 0 when every point ran (failed points
included: their error is a result), 1 when some did not finish, 2 for a bad sweep file.
"""


def register(sub) -> None:
    s = sub.add_parser(
        "sweep", help="run a design-space sweep of a spec on Dask (resumable)",
        description="Train, compile, simulate and build every combination of the axes of a\n"
                    "sweep file, one Dask task per point, on a local cluster of one worker\n"
                    "process per core or on an existing cluster (--scheduler). Points that\n"
                    "finished before are not run again.",
        epilog=EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("sweep", type=Path, metavar="SWEEP.yaml", help="the sweep file")
    s.add_argument("-o", "--output", type=Path, required=True, metavar="DIR",
                   help="sweep folder (points/, results.csv, plots); reuse it to resume")
    s.add_argument("--scheduler", metavar="ADDRESS",
                   help="address of a running Dask scheduler (tcp://host:8786); its workers "
                        "must see DIR at the same path (default: a local cluster)")
    s.add_argument("--workers", type=positive_int, metavar="N",
                   help="worker processes of the local cluster (default: one per core)")
    s.add_argument("--serial", action="store_true",
                   help="run the points one after the other in this process, without Dask")
    s.add_argument("--retry-failed", action="store_true",
                   help="run the points that failed before again (default: keep their error)")
    s.add_argument("--list", action="store_true",
                   help="print the points and whether each is done, failed or missing; run none")
    s.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=run)


def run(args) -> int:
    from fewmul.sweep.points import point_state
    from fewmul.sweep.results import write_results
    from fewmul.sweep.run import SchedulerError, run_points
    from fewmul.sweep.spec import load_sweep

    if args.scheduler and (args.serial or args.workers):
        raise ValueError("--scheduler uses the cluster's workers: give neither --serial nor "
                         "--workers with it")
    spec = load_sweep(args.sweep)
    points = spec.points()
    axes = [a.key for a in spec.axes]
    out = args.output
    if args.list:
        for p in points:
            status, _ = point_state(p, out / "points")
            values = ", ".join(f"{k}={v}" for k, v in p.values.items())
            print(f"{status:8} {p.id}  {values}")
        return 0
    out.mkdir(parents=True, exist_ok=True)
    print(f"sweep {spec.name}: {len(points)} points of {spec.base_path} into {out}/")
    try:
        result = run_points(points, out, scheduler=args.scheduler, workers=args.workers,
                            serial=args.serial, retry_failed=args.retry_failed,
                            progress=not args.quiet, desc=spec.name)
    except SchedulerError as exc:
        print(f"fewmul sweep: error: {exc}", file=sys.stderr)
        return 1
    csv_path, plots, rows = write_results(points, axes, out, spec.name)
    # from the folders: a point a worker finished while the client stopped counts as done
    done, failed, missing = (sum(r["status"] == s for r in rows)
                             for s in ("done", "failed", "missing"))
    where = "serially" if args.serial else f"on {result.workers} workers"
    print(f"{done} done, {failed} failed, {missing} missing ({result.ran} run now {where}, "
          f"{result.seconds:.1f} s); {csv_path}"
          + (f", {', '.join(p.name for p in plots)}" if plots else ""))
    if result.interrupted:
        print(f"fewmul sweep: interrupted; finished points are kept, run the same command to "
              f"continue", file=sys.stderr)
        return 130
    if missing:
        print(f"fewmul sweep: {missing} points did not finish (running elsewhere, or their "
              f"worker was lost); run the same command again", file=sys.stderr)
        return 1
    return 0
