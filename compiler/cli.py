"""The ``fewmul`` command line: train, compile, sim, demo."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["main"]

def _example() -> Path:
    """The bundled ``examples/digits-bnn.yaml`` (installed as ``fewmul.examples``)."""
    from importlib import resources
    return Path(str(resources.files("fewmul.examples").joinpath("digits-bnn.yaml")))


def _pe(text: str):
    if text == "auto":
        return "auto"
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'auto', an integer or a comma-separated list, got {text!r}")
    if any(v <= 0 for v in values):
        raise argparse.ArgumentTypeError(f"PE counts must be positive, got {text!r}")
    return values[0] if len(values) == 1 else values


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _print_train(summary: dict) -> None:
    print(f"deployed (binary weights) test accuracy: {100 * summary['test_acc_deployed']:.2f} %  "
          f"(epoch {summary['best_epoch'] + 1}, best validation)")
    print(f"float (hidden weights) test accuracy:    {100 * summary['test_acc_float_weights']:.2f} %")
    print(f"integer golden model test accuracy:      {100 * summary['test_acc_integer']:.2f} %  "
          f"(agrees with the float model on {100 * summary['integer_vs_float_agreement']:.2f} % of images)")


def _print_compile(report: dict, build: Path) -> None:
    layers = " -> ".join(f"{l['units']}(pe={l['pe']})" for l in report["layers"])
    gen = report["yosys"].get("generic", {})
    print(f"compiled {report['layers'][0]['inputs']} -> {layers}: {build / 'top.v'}")
    print(f"predicted {report['cycles_per_inference']} cycles/inference, latency "
          f"{report['latency_cycles']} cycles; {report['compile_seconds']:.1f} s")
    for target, stat in report["yosys"].items():
        print(f"yosys {target}: {stat['num_cells']} cells, {stat['multipliers']} multipliers"
              + (f", {stat['cells'].get('$mul', 0)} $mul" if target == "generic" else ""))
    del gen


def _print_sim(result: dict) -> None:
    status = "OK" if result["mismatches"] == 0 and not result.get("error") else "FAIL"
    print(f"sim {status}: {result['images']} images, {result['mismatches']} mismatches, "
          f"{result.get('cycles_per_inference', float('nan')):.1f} cycles/inference measured "
          f"(predicted {result['predicted_cycles_per_inference']}), latency "
          f"{result.get('latency_cycles', '?')} cycles, {result['wall_s']:.1f} s")
    if result.get("first_mismatch"):
        print(f"first mismatch: {result['first_mismatch']}")
    if result.get("error"):
        print(f"error: {result['error']}")


def cmd_train(args) -> int:
    from .runs import train_run
    summary = train_run(args.spec, args.output, epochs=args.epochs, progress=not args.quiet)
    _print_train(summary)
    print(f"run written to {args.output}/ (model.npz, spec.yaml, metrics.json, curves.png)")
    return 0


def cmd_compile(args) -> int:
    from .runs import compile_run
    report = compile_run(args.run, args.output, pe=args.pe, target_cycles=args.target_cycles,
                         synth=tuple(args.synth))
    _print_compile(report, args.output)
    return 0


def cmd_sim(args) -> int:
    from fewmul.sim.check import check_build
    result = check_build(args.build, args.images, stall=args.stall, seed=args.seed)
    _print_sim(result)
    return 0 if result["mismatches"] == 0 and not result.get("error") else 1


def cmd_demo(args) -> int:
    from fewmul.sim.check import check_build
    from .runs import compile_run, train_run
    out = Path(args.output)
    spec = args.spec or _example()
    print(f"== train {spec}")
    summary = train_run(spec, out / "run", progress=not args.quiet)
    print(f"== compile")
    report = compile_run(out / "run", out / "build", synth=("generic",))
    print(f"== simulate {args.images} test images under cocotb + Verilator")
    result = check_build(out / "build", args.images, stall=0.25)
    print("== summary")
    _print_train(summary)
    _print_compile(report, out / "build")
    _print_sim(result)
    return 0 if result["mismatches"] == 0 and not result.get("error") else 1


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="fewmul",
        description="Train binary-weight neural networks described in YAML, compile them to "
                    "multiplier-free Amaranth gateware and check the gateware bit for bit under "
                    "cocotb + Verilator.",
        epilog="Typical use: fewmul train spec.yaml -o run/ && fewmul compile run/ -o build/ && "
               "fewmul sim build/ --images 200")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    t = sub.add_parser("train", help="train a network spec with the NumPy model",
                       description="Train the network of SPEC and write RUN/model.npz, "
                                   "RUN/spec.yaml (every default filled in), RUN/metrics.json "
                                   "and RUN/curves.png.")
    t.add_argument("spec", type=Path, metavar="SPEC.yaml", help="network spec (see examples/)")
    t.add_argument("-o", "--output", type=Path, required=True, metavar="RUN", help="run folder to write")
    t.add_argument("--epochs", type=_positive, help="override train.epochs of the spec")
    t.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    t.set_defaults(func=cmd_train)

    c = sub.add_parser("compile", help="lower a trained run to Verilog",
                       description="Fold batch norm into thresholds, plan the folding, emit "
                                   "BUILD/top.v, the packed weights, the golden model "
                                   "(net.npz) and BUILD/report.json with Yosys cell counts.")
    c.add_argument("run", type=Path, metavar="RUN", help="folder written by 'fewmul train'")
    c.add_argument("-o", "--output", type=Path, required=True, metavar="BUILD", help="build folder to write")
    c.add_argument("--pe", type=_pe, default=None,
                   help="neurons computed in parallel: 'auto', N, or one per layer 'N,N,N' "
                        "(default: the spec's hardware.pe)")
    c.add_argument("--target-cycles", type=_positive, default=None, metavar="N",
                   help="with pe auto: fewest PEs that meet N cycles per inference (default 64)")
    c.add_argument("--synth", nargs="*", default=["generic"],
                   choices=["generic", "ecp5", "ice40", "xilinx"],
                   help="Yosys statistics to report (default: generic; ecp5/ice40/xilinx take longer)")
    c.set_defaults(func=cmd_compile)

    s = sub.add_parser("sim", help="simulate a build under cocotb + Verilator",
                       description="Run BUILD/top.v under cocotb + Verilator on test images and "
                                   "compare every layer's outputs with the integer golden model. "
                                   "Writes BUILD/sim.json; exits 1 on any mismatch.")
    s.add_argument("build", type=Path, metavar="BUILD", help="folder written by 'fewmul compile'")
    s.add_argument("--images", type=_positive, default=200, help="test images to simulate (default 200)")
    s.add_argument("--stall", type=float, default=0.25,
                   help="probability of idle/back-pressure cycles in the second pass (default 0.25; 0: one clean pass)")
    s.add_argument("--seed", type=int, default=0, help="seed of the random stalls")
    s.set_defaults(func=cmd_sim)

    d = sub.add_parser("demo", help="train, compile and simulate the digits example",
                       description="The whole path on the embedded 8x8 digits data: train "
                                   "examples/digits-bnn.yaml, compile it, simulate test images.")
    d.add_argument("-o", "--output", type=Path, default=Path("build/demo"), help="output folder (default build/demo)")
    d.add_argument("--spec", type=Path, default=None, help="another spec to run instead of the example")
    d.add_argument("--images", type=_positive, default=200, help="test images to simulate (default 200)")
    d.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    d.set_defaults(func=cmd_demo)
    return p


def main(argv: list[str] | None = None) -> int:
    from .spec import SpecError
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except SpecError as exc:
        print(exc, file=sys.stderr)
        return 2
    except (FileNotFoundError, ValueError) as exc:
        print(f"fewmul {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"fewmul {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
