"""``fewmul build BUILD/ --board B``"""

import sys
from pathlib import Path

from fewmul.compiler.input_memory import INPUT_MEMORY_CHOICES

from .common import (layer_choice, non_negative_int, pe_arg, pipeline_arg, positive_float,
                     positive_int)

BOARD_NAMES = ["icebreaker", "ulx3s", "arty"]


def register(sub) -> None:
    b = sub.add_parser("build", help="synthesize, place and route a build for a board",
                       description="Rebuild the network of BUILD/net.npz behind a UART host link, "
                                   "then synthesize and place and route it with the YoWASP tools "
                                   "(iCEBreaker: iCE40UP5K, ULX3S: ECP5-85F) or estimate it with "
                                   "Yosys synth_xilinx and write a Vivado bundle (Arty A7-35). "
                                   "Writes BUILD/<board>/: the bitstream, top.tim (nextpnr log "
                                   "with timing), link.json and report.json (LUT/FF/BRAM/DSP use, "
                                   "utilization, Fmax).")
    b.add_argument("build", type=Path, metavar="BUILD", help="folder written by 'fewmul compile'")
    b.add_argument("--board", required=True, choices=BOARD_NAMES, help="target board")
    b.add_argument("--pe", type=pe_arg, default=None,
                   help="neurons computed in parallel: 'auto', N or 'N,N,N' (default: what "
                        "'fewmul compile' chose, from BUILD/report.json)")
    b.add_argument("--simd", type=pe_arg, default=None,
                   help="inputs per neuron per cycle, with --pe: 'auto', N or 'N,N,N'")
    b.add_argument("--pipeline", type=pipeline_arg, default=None, metavar="N|auto",
                   help="register stages between each weight memory and its accumulators: the "
                   "first on the memory output, the others in the popcount trees "
                   "(raises Fmax; default: auto on the ULX3S, else what 'fewmul compile' "
                   "chose); 'auto': for the "
                   "target clock (--target-mhz): one more every 2 adder levels of the "
                   "popcount trees below 100 MHz, the deep stall-free datapath above")
    b.add_argument("--baud", type=positive_int, default=None,
                   help="serial rate of the host link (default 3000000, the fastest both ends "
                        "make: 12 MHz / 4 on the iCEBreaker, whose FT2232H makes it exactly; the "
                        "FT231X's fastest on the ULX3S, 25 MHz / (25/3)); a rate where the "
                        "board's divisor and the FTDI chip's differ by over 2 %% is refused "
                        "before synthesis, naming the nearest good rates. link.json records it "
                        "for 'fewmul run'")
    b.add_argument("--bench-images", type=non_negative_int, default=None, metavar="N",
                   help="test images in the benchmark mode's block-RAM store, which 'fewmul run "
                        "--bench' streams through the network back to back (at the network's rate; "
                        "on the iCEBreaker at a byte of image a cycle at most) (default: as many "
                        "as fit in half of the block RAM the weights leave free; 0: no "
                        "benchmark mode); too many is refused before synthesis")
    b.add_argument("--target-mhz", type=positive_float, default=None, metavar="F",
                   help="clock frequency place and route aims for, its timing constraint "
                        "(default: the goal for the device, 40 MHz on the iCE40UP5K, 150 MHz on "
                        "the ECP5); the design still runs on the board's clock")
    b.add_argument("--spram", type=spram_arg, default="auto", metavar="auto|none|all|L,L",
                   help="layers whose weights go into the iCE40UP5K's SPRAM, loaded over the "
                        "link by 'fewmul run' at start-up (default auto: the largest weight "
                        "memories when the block RAM cannot hold them all; none on boards "
                        "without SPRAM)")
    b.add_argument("--input-memory", type=layer_choice(*INPUT_MEMORY_CHOICES), default=None,
                   metavar="none|all|L,L",
                   help="fully-connected layers that take their input vector into block RAM "
                        "instead of registers (fewer logic cells, a block RAM each: see "
                        "'fewmul compile --help'; default: the compiler's choice)")
    b.add_argument("--seed", type=non_negative_int, default=None, metavar="N",
                   help="nextpnr's placement seed (default: its own); Fmax moves by some 10 %% "
                        "from seed to seed on a large design, so a build that just misses "
                        "--target-mhz may meet it with another (recorded in the report)")
    b.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    b.set_defaults(func=run)


#: ``auto``, ``none``, ``all`` or a comma-separated list of layers.
spram_arg = layer_choice("auto", "none", "all")


def print_board(report: dict, out: Path) -> None:
    used, util, cap = report["used"], report["utilization_percent"], report["capacity"]
    pes = ",".join(str(layer["pe"]) for layer in report["layers"])
    print(f"{report['title']}, pe={pes}: "
          + ", ".join(f"{k.upper()} {used[k]:g}/{cap[k]} ({util[k]:.0f} %)"
                      for k in ("lut", "ff", "bram", "dsp")))
    rate = report["inferences_per_s"]
    clock = report["clock_hz"] / 1e6
    if report["fmax_mhz"] is not None:
        status = "met" if report["timing_met"] else "MISSED"
        aim = "" if report["constraint_mhz"] <= clock else \
            f"target {report['constraint_mhz']:g} MHz: {'met' if report['target_met'] else 'missed'}, "
        print(f"Fmax {report['fmax_mhz']:.1f} MHz ({aim}board clock {clock:g} MHz: {status}); "
              f"{report['cycles_per_inference']} cycles/inference: "
              f"{rate['compute_at_board_clock']:,.0f} inferences/s at {clock:g} MHz, "
              f"{rate['compute_at_fmax']:,.0f} at Fmax; the {report['baud']} baud link carries "
              f"{rate['uart']:,.0f}/s")
        path = report.get("critical_path")
        if path:
            print(f"critical path: {path['from']} -> {path['to']}, {path['delay_ns']:.1f} ns")
        if report.get("spram_layers"):
            print(f"SPRAM: {used.get('spram', 0):g}/{cap.get('spram', 0)} blocks hold the "
                  f"weights of layers {', '.join(map(str, report['spram_layers']))}, loaded "
                  f"by 'fewmul run' over the link")
        if report.get("synthesis_fallback"):
            print(f"synthesis: {report['synthesis_fallback']}")
        if report.get("bench_images"):
            print(f"benchmark mode: {report['bench_images']} test images in block RAM, "
                  f"{report['bench_cycles_per_image']} cycles/image ('fewmul run --bench')")
        print(f"bitstream: {out / report['bitstream']}  timing: {out / report['timing_report']}")
    else:
        print(f"estimate only ({report['estimate']}); {report['cycles_per_inference']} "
              f"cycles/inference = {rate['compute_at_board_clock']:,.0f} inferences/s at "
              f"{clock:g} MHz if timing is met")
        print(f"Vivado bundle: {out / 'vivado'} (also {out / report['vivado_bundle']}): "
              f"run 'sh build_top.sh' there with Vivado on the PATH")


def run(args) -> int:
    from fewmul.boards.flow import BuildError, build_board
    try:
        report = build_board(args.build, args.board, pe=args.pe, simd=args.simd,
                             pipeline=args.pipeline, baud=args.baud,
                             target_hz=args.target_mhz and args.target_mhz * 1e6,
                             progress=not args.quiet, bench_images=args.bench_images,
                             spram=args.spram, seed=args.seed,
                             input_memory=args.input_memory)
    except BuildError as exc:
        print(f"fewmul build: error: {exc}", file=sys.stderr)
        return 1
    if report.get("kind") == "onchip-training":     # a training build ('compile --train')
        from fewmul.boards.train_build import format_training_report
        print(format_training_report(report, args.build / args.board))
        return 0
    print_board(report, args.build / args.board)
    return 0
