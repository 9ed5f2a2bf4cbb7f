"""``fewmul compile RUN/ -o BUILD/``"""

from pathlib import Path

from fewmul.compiler.input_memory import INPUT_MEMORY_CHOICES

from .common import layer_choice, pe_arg, pipeline_arg, positive_int, print_compile


def register(sub) -> None:
    c = sub.add_parser("compile", help="lower a trained run to Verilog",
                       description="Fold batch norm into thresholds, plan the folding, emit "
                                   "BUILD/top.v, the packed weights, the golden model "
                                   "(net.npz) and BUILD/report.json with Yosys cell counts.")
    c.add_argument("run", type=Path, metavar="RUN",
                   help="folder written by 'fewmul train' (with --train: a spec file or a run folder)")
    c.add_argument("-o", "--output", type=Path, required=True, metavar="BUILD", help="build folder to write")
    c.add_argument("--pe", type=pe_arg, default=None,
                   help="neurons (a conv's filters) computed in parallel: 'auto', N, or one per "
                        "layer with weights 'N,N,N' (a max-pool runs in the layer before it; "
                        "default: the spec's hardware.pe)")
    c.add_argument("--target-cycles", type=positive_int, default=None, metavar="N",
                   help="plan PE and SIMD per layer: the smallest estimated area that meets N "
                        "cycles per inference (default: the spec's, else 64)")
    c.add_argument("--max-luts", type=positive_int, default=None, metavar="N",
                   help="plan PE and SIMD per layer: the fewest cycles per inference whose "
                        "estimated LUT count is at most N")
    c.add_argument("--simd", type=pe_arg, default=None,
                   help="with an explicit --pe: inputs per neuron per cycle (of a conv's "
                        "kernel x kernel x channels window), N or 'N,N,N' (default: all inputs)")
    c.add_argument("--pipeline", type=pipeline_arg, default=None, metavar="N|auto",
                   help="register stages between each weight memory and its accumulators: the "
                   "first on the memory output, the others in the popcount trees and "
                   "the adders that combine them; from 5 the datapath is stall-free "
                   "(raises Fmax, adds latency; default 0); 'auto': one more every 2 "
                   "adder levels of the popcount trees")
    c.add_argument("--input-memory", type=layer_choice(*INPUT_MEMORY_CHOICES), default="none",
                   metavar="none|all|L,L",
                   help="fully-connected layers that take their input vector into block RAM as "
                        "the layer before produces it, instead of latching it in registers "
                        "behind a collector: fewer flip-flops and LUTs for a block RAM each, "
                        "what fits large nets on small devices such as the iCE40UP5K (default: "
                        "none; all: every layer that can)")
    c.add_argument("--synth", nargs="*", default=["generic"],
                   choices=["generic", "ecp5", "ice40", "xilinx"],
                   help="Yosys statistics to report (default: generic; ecp5/ice40/xilinx take longer)")
    c.add_argument("--train", action="store_true",
                   help="emit the on-chip training design of the spec instead (hidden sign layers, "
                        "binary or ternary weights, no batch norm, settings under train.onchip; "
                        "see examples/digits-onchip*.yaml); the report lists the "
                        "LUT/FF cost of every forward and backward unit (ECP5)")
    c.add_argument("--no-area", action="store_true",
                   help="with --train: skip the per-unit ECP5 synthesis (a few minutes)")
    c.set_defaults(func=run)


def run(args) -> int:
    if args.train:
        from fewmul.compiler.emit_train import compile_training, format_report
        report = compile_training(args.run, args.output, synth=tuple(args.synth),
                                  units=not args.no_area)
        print(format_report(report, args.output))
        return 0
    from fewmul.compiler.emit import compile_run
    report = compile_run(args.run, args.output, pe=args.pe, target_cycles=args.target_cycles,
                         synth=tuple(args.synth), simd=args.simd, max_luts=args.max_luts,
                         pipeline=args.pipeline, input_memory=args.input_memory)
    print_compile(report, args.output)
    return 0
