"""``fewmul compile RUN/ -o BUILD/``"""

from pathlib import Path

from .common import pe_arg, positive_int, print_compile


def register(sub) -> None:
    c = sub.add_parser("compile", help="lower a trained run to Verilog",
                       description="Fold batch norm into thresholds, plan the folding, emit "
                                   "BUILD/top.v, the packed weights, the golden model "
                                   "(net.npz) and BUILD/report.json with Yosys cell counts.")
    c.add_argument("run", type=Path, metavar="RUN", help="folder written by 'fewmul train'")
    c.add_argument("-o", "--output", type=Path, required=True, metavar="BUILD", help="build folder to write")
    c.add_argument("--pe", type=pe_arg, default=None,
                   help="neurons computed in parallel: 'auto', N, or one per layer 'N,N,N' "
                        "(default: the spec's hardware.pe)")
    c.add_argument("--target-cycles", type=positive_int, default=None, metavar="N",
                   help="with pe auto: fewest PEs that meet N cycles per inference (default 64)")
    c.add_argument("--synth", nargs="*", default=["generic"],
                   choices=["generic", "ecp5", "ice40", "xilinx"],
                   help="Yosys statistics to report (default: generic; ecp5/ice40/xilinx take longer)")
    c.set_defaults(func=run)


def run(args) -> int:
    from ..emit import compile_run
    report = compile_run(args.run, args.output, pe=args.pe, target_cycles=args.target_cycles,
                         synth=tuple(args.synth))
    print_compile(report, args.output)
    return 0
