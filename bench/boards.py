"""Board figures: LUTs, Fmax, cycles/inference and inferences/s per board.

Builds the digits demo (``examples/digits-bnn.yaml``, trained here or taken
from ``--build``) for each board with the compiler's folding; when it does not
fit, a smaller digits network (``--small``, 64-64-10 by default, trained
here) at one PE per layer. Then, per board
with a place and route flow (``--largest``), the largest 64-H-H-10 network
that fits at one PE per layer, searched by halving the gap between a size
that fits and one that does not. With ``--sfc``, FINN's SFC (784-256-256-256-10, 1-bit pixels)
on the iCEBreaker, its largest weights in SPRAM and every layer's input in block RAM (see
``bench/sfc_icebreaker.py``). With ``--lfc``, the 784-1024x3-10 network (FINN's "LFC":
binary weights, sign activations, 8-bit input) on the ULX3S at ``--target-cycles`` 2048 and 1024,
with random trained-like parameters (:func:`fewmul.boards.nets.random_net`; the weights change
the timing little) and the benchmark store of random images by default.

Every design but the largest is built with ``--pipeline auto`` (a register on each weight
memory's output and one every 2 adder levels of the popcount trees, more on
the ECP5 for its 150 MHz target: see ``fewmul.compiler.planner.auto_pipeline``).
Fmax is compared with the goals (40 MHz on iCE40UP5K, 150 MHz on ECP5), and
inferences/s with the NumPy golden model on this machine, one image at a time,
measured in the same run.

The demo and the smaller net are trained and compiled, and built per board, as sweep points
(:func:`fewmul.sweep.points.run_point`, the function every ``fewmul sweep`` point runs) on the
local Dask cluster (``--serial``: in this process; ``--scheduler ADDRESS``: an existing
cluster), into ``OUTPUT/points/<id>/``; a second run reuses the finished ones. The search for
the largest network goes one build after the other (each size depends on the last).

Usage::

    python bench/boards.py [-o build/bench-boards] [--boards icebreaker ulx3s arty]
                           [--build BUILD] [--largest icebreaker] [--serial | --scheduler A]
    python bench/boards.py --lfc [2048 1024]     # only the 784-1024x3-10 rows
    python bench/boards.py --sfc [--lfc ...]     # only FINN's SFC on the iCEBreaker (and the LFC)
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from fewmul.boards.fit import FitError
from fewmul.boards.flow import build_design
from fewmul.boards.nets import (LFC_INPUT_BITS, LFC_SIZES, SFC_INPUT_BITS, SFC_SIZES,
                                random_net)
from fewmul.compiler.folders import BuildFolder
from fewmul.nn.artifacts import read_json
from fewmul.sweep.points import DONE, FAILED, Point, Stages, point_id
from fewmul.sweep.run import run_points

GOAL_MHZ = {"icebreaker": 40.0, "ulx3s": 150.0}
#: The SIMD widths of FINN's SFC that its weights in SPRAM allow.
SFC_SIMD = [48, 16, 16, 16]
SMALL_SPEC = """\
name: digits-small
data: {set: digits, input_bits: 4}
layers:
  - {units: %d, weights: binary, act: sign, bn: true}
  - {units: 10, weights: binary, act: none, bn: true}
train: {epochs: 60, seed: 0}
"""


def golden_rate(build: Path, seconds: float = 1.0) -> float:
    """NumPy golden model inferences/s, one image per call (as a board answers them)."""
    return golden_rate_of(BuildFolder(build).net(), seconds)


def demo_build(out: Path, spec: Path | str, name: str, **run) -> Path:
    """Train and compile ``spec`` as a sweep point; its build folder."""
    values = {"design": name}
    p = Point(point_id(values), values, Path(spec).read_text(),
              options={"pipeline": 0}, stages=Stages(train=True, compile=True))
    print(f"== train and compile {spec}")
    outcome = run_points([p], out, desc=name, **run).outcomes[p.id]
    if outcome.status != DONE:
        raise SystemExit(f"bench/boards.py: {spec}: {outcome.error}")
    return out / "points" / p.id / "build"


def board_points(build: Path, label: str, boards: list[str], pe=None) -> list[Point]:
    """One sweep point per board: ``build`` (a compiled folder, read only) built for it."""
    spec_text = BuildFolder(build).spec_path.read_text()
    options = {"pipeline": "auto", **({"pe": pe} if pe is not None else {})}
    return [Point(point_id({"design": label, "board": b}), {"design": label, "board": b},
                  spec_text, options={**options, "board": b},
                  stages=Stages(train=False, compile=False, build=True), source=str(build))
            for b in boards]


def try_build(net, board: str, out: Path, pe, default=None, pipeline="auto") -> dict | FitError:
    try:
        return build_design(net, board, out, pe=pe, default=default, pipeline=pipeline,
                            progress=True)
    except FitError as exc:
        return exc


def row(label: str, board: str, report: dict, cpu_rate: float) -> dict:
    fmax = report["fmax_mhz"]
    cycles = report["cycles_per_inference"]
    rate = report["inferences_per_s"]
    r = {"design": label, "board": board, "pe": [l["pe"] for l in report["layers"]],
         "lut": report["used"]["lut"], "lut_percent": report["utilization_percent"]["lut"],
         "ff": report["used"]["ff"], "bram": report["used"]["bram"], "dsp": report["used"]["dsp"],
         "fmax_mhz": fmax, "clock_mhz": report["clock_hz"] / 1e6, "cycles": cycles,
         "inf_per_s_board_clock": rate["compute_at_board_clock"],
         "inf_per_s_fmax": rate["compute_at_fmax"], "inf_per_s_uart": rate["uart"],
         "cpu_golden_inf_per_s": cpu_rate, "build_s": report["seconds"]}
    if board in GOAL_MHZ and fmax:
        r["fmax_vs_goal"] = fmax / GOAL_MHZ[board]
    r.update(tool_s=report.get("tool_seconds", {}), bench_images=report.get("bench_images", 0),
             critical_path=report.get("critical_path"))
    return r


def lfc_row(out: Path, target_cycles: int, cpu_rate: float | None = None) -> dict:
    """The 784-1024x3-10 network (random, trained-like) built for the ULX3S with the folding
    ``fewmul compile --target-cycles`` gives and ``--pipeline auto``, with the benchmark store's
    default images (random 8-bit images, labelled by the golden model)."""
    net = random_net(list(LFC_SIZES), input_bits=LFC_INPUT_BITS, seed=0)
    rng = np.random.default_rng(1)
    images = rng.integers(0, 1 << LFC_INPUT_BITS, size=(1000, LFC_SIZES[0]))
    labels = net.scores(images).argmax(1)
    print(f"== 784-1024x3-10 at --target-cycles {target_cycles} on ulx3s")
    report = build_design(net, "ulx3s", out / f"lfc-{target_cycles}",
                          default={"pe": "auto", "target_cycles": target_cycles},
                          pipeline="auto", bench=(images, labels), bench_images=None,
                          progress=True).to_json()
    if cpu_rate is None:
        cpu_rate = golden_rate_of(net)
    return row(f"784-1024x3-10 (LFC) t{target_cycles}", "ulx3s", report, cpu_rate)


def sfc_row(out: Path, cpu_rate: float | None = None) -> dict:
    """FINN's SFC (784-256-256-256-10, random trained-like, 1-bit pixels) built for the
    iCEBreaker as ``bench/sfc_icebreaker.py`` builds it: pe 1, SIMD 48,16,16,16, ``--pipeline
    auto``, the largest weights in SPRAM, every layer's input in block RAM."""
    net = random_net(list(SFC_SIZES), input_bits=SFC_INPUT_BITS, seed=0)
    print("== 784-256-256-256-10 (SFC) on icebreaker")
    report = build_design(net, "icebreaker", out / "sfc", pe=[1] * 4, simd=SFC_SIMD,
                          pipeline="auto", bench_images=0, input_memory="all",
                          progress=True).to_json()
    if cpu_rate is None:
        cpu_rate = golden_rate_of(net)
    r = row("784-256x3-10 (SFC)", "icebreaker", report, cpu_rate)
    r["spram"] = report["used"].get("spram", 0)
    return r


def golden_rate_of(net, seconds: float = 1.0) -> float:
    """NumPy golden model inferences/s of ``net``, one image per call."""
    x = np.random.default_rng(0).integers(0, 1 << net.input_bits,
                                          size=(1, net.layers[0].inputs))
    count, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        net.forward(x)
        count += 1
    return count / (time.perf_counter() - t0)


def print_rows(rows: list[dict], header: bool = True) -> None:
    if header:
        print_header()
    for r in rows:
        print_row(r)
    uart = {r["inf_per_s_uart"] for r in rows if "inf_per_s_uart" in r}
    if uart:
        print(f"(the host link carries {min(uart):,.0f}-{max(uart):,.0f} images/s at its baud; "
              f"'x CPU' compares with the NumPy golden model, one image per call, on this machine)")


def print_header() -> None:
    print(f"{'design':<28} {'board':<10} {'pe':<10} {'LUT':>12} {'FF':>6} {'BRAM':>5} "
          f"{'Fmax MHz':>9} {'goal x':>7} {'cyc/inf':>7} {'inf/s @clk':>11} {'inf/s @Fmax':>12} "
          f"{'x CPU':>7}")


def print_row(r: dict) -> None:
    if "error" in r:
        print(f"{r['design']:<28} {r['board']:<10} {r['error']}")
    else:
        fmax = f"{r['fmax_mhz']:.1f}" if r["fmax_mhz"] else "n/a"
        goal = f"{r['fmax_vs_goal']:.2f}" if "fmax_vs_goal" in r else "-"
        at_fmax = r["inf_per_s_fmax"] or r["inf_per_s_board_clock"]
        print(f"{r['design']:<28} {r['board']:<10} {','.join(map(str, r['pe'])):<10} "
              f"{r['lut']:>6g} ({r['lut_percent']:>3.0f}%) {r['ff']:>6g} {r['bram']:>5g} "
              f"{fmax:>9} {goal:>7} {r['cycles']:>7} {r['inf_per_s_board_clock']:>11,.0f} "
              f"{at_fmax:>12,.0f} {at_fmax / r['cpu_golden_inf_per_s']:>7.0f}")


def largest_fit(board: str, out: Path, cpu_rate: float, sizes=(64, 96, 128)) -> dict:
    """The largest 64-H-H-10 network (pe=1) that fits ``board``, H searched by bisection,
    unpipelined: the largest network at all, at the Fmax it reaches."""
    best = None
    candidates = list(sizes)
    while candidates:
        h = candidates.pop(len(candidates) // 2)
        net = random_net([64, h, h, 10], seed=0)
        result = try_build(net, board, out / f"h{h}", pe=1, pipeline=0)
        fits = not isinstance(result, FitError)
        print(f"   64-{h}-{h}-10 pe=1 on {board}: "
              + (f"fits ({result['used']['lut']:g} LUTs)" if fits else f"does not fit: {result}"))
        if fits:
            best = row(f"random 64-{h}-{h}-10", board, result, cpu_rate)
            candidates = [c for c in candidates if c > h]
        else:
            candidates = [c for c in candidates if c < h]
    return best or {"design": f"64-H-H-10, H>={sizes[0]}", "board": board,
                    "error": f"even H={sizes[0]} does not fit"}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("-o", "--output", type=Path, default=Path("build/bench-boards"))
    p.add_argument("--boards", nargs="+", default=["ulx3s", "icebreaker", "arty"])
    p.add_argument("--build", type=Path, default=None,
                   help="a compiled digits demo to use instead of training one")
    p.add_argument("--small", type=int, default=64, help="hidden units of the smaller digits net")
    p.add_argument("--small-build", type=Path, default=None,
                   help="a compiled smaller digits net to use instead of training one")
    p.add_argument("--largest", nargs="*", default=["icebreaker"],
                   help="boards to search the largest fitting network on (slow)")
    p.add_argument("--scheduler", metavar="ADDRESS", help="a running Dask scheduler to use")
    p.add_argument("--workers", type=int, help="worker processes of the local cluster")
    p.add_argument("--serial", action="store_true", help="build one board after the other here")
    p.add_argument("--lfc", nargs="*", type=int, metavar="CYCLES",
                   help="only the paper-scale rows: the 784-1024x3-10 network on the ULX3S, at "
                        "these --target-cycles (default 2048 1024), and with --sfc the SFC")
    p.add_argument("--sfc", action="store_true",
                   help="only the paper-scale rows: FINN's SFC on the iCEBreaker (with --lfc "
                        "the LFC too)")
    args = p.parse_args(argv)
    out = args.output
    out.mkdir(parents=True, exist_ok=True)
    if args.lfc is not None or args.sfc:
        rows = []
        if args.sfc:
            rows.append(sfc_row(out))
            (out / "paper.json").write_text(json.dumps(rows, indent=2))
        for cycles in (args.lfc or [2048, 1024]) if args.lfc is not None else []:
            rows.append(lfc_row(out, cycles))
            (out / "paper.json").write_text(json.dumps(rows, indent=2))
        print()
        print_rows(rows)
        for r in rows:
            tools = ", ".join(f"{k} {v:.0f} s" for k, v in r["tool_s"].items())
            path = r["critical_path"]
            print(f"{r['design']}: build {r['build_s']:.0f} s ({tools}); "
                  f"the link carries {r['inf_per_s_uart']:,.0f} images/s; "
                  f"{r['bench_images']} images in the benchmark store"
                  + (f"; critical path {path['from']} -> {path['to']}" if path else ""))
        return 0
    run = {"scheduler": args.scheduler, "workers": args.workers, "serial": args.serial}
    from fewmul.cli.demo import example_spec
    demo = args.build or demo_build(out, example_spec(), "demo", **run)
    cpu_rate = golden_rate(demo)
    print(f"NumPy golden model (baseline, this machine): {cpu_rate:,.0f} inferences/s")
    rows = []

    def add(r: dict) -> None:
        rows.append(r)
        print_header()
        print_row(r)
        (out / "boards.json").write_text(json.dumps(rows, indent=2))

    def build_all(points: list[Point], label: str) -> dict[str, dict]:
        """Build the points; per board, its row (or its error record, key "error")."""
        print(f"== {label} on {', '.join(p.options['board'] for p in points)}")
        result = run_points(points, out, desc=label, **run)
        found = {}
        for pt in points:
            folder, board = out / "points" / pt.id, pt.options["board"]
            if result.outcomes[pt.id].status == DONE:
                report = read_json(folder / "build" / board / "report.json")
                found[board] = row(label, board, report, cpu_rate)
            elif result.outcomes[pt.id].status == FAILED:
                found[board] = {"design": label, "board": board,
                                **read_json(folder / "error.json")}
            else:
                found[board] = {"design": label, "board": board, "kind": "missing",
                                "message": result.outcomes[pt.id].error}
        return found

    demo_label = "digits 64-256-256-10"
    first = build_all(board_points(demo, demo_label, args.boards), demo_label)
    small_label = f"digits 64-{args.small}-10"
    misfits = [b for b in args.boards if first[b].get("kind") == "does not fit"]
    second = {}
    if misfits:
        spec = out / "digits-small.yaml"
        spec.write_text(SMALL_SPEC % args.small)
        small = args.small_build or demo_build(out, spec, "small", **run)
        second = build_all(board_points(small, small_label, misfits, pe=1), small_label)
    for board in args.boards:
        for r in (first[board], second.get(board)):
            if r is None:
                continue
            if "kind" in r:
                fit = r.get("fit")
                r = {"design": r["design"], "board": board,
                     "error": f"does not fit: {fit['resource']} {fit['used']:g}/"
                              f"{fit['available']:g}" if fit else
                     f"{r['kind']}: {str(r.get('message')).splitlines()[0]}"}
            add(r)
    for board in args.largest:
        print(f"== largest network on {board}")
        add(largest_fit(board, out / "largest" / board, cpu_rate))
    print()
    print_rows(rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
