"""FINN's SFC topology (784-256-256-256-10, binary weights, sign activations, 1-bit input) on
the iCEBreaker, its weights in the iCE40UP5K's SPRAM.

The 334 kbit of weights do not fit the UP5K's 120 kbit of block RAM; the fit check puts the
largest weight memories into the four 256 kbit SPRAM blocks (``fewmul build --spram auto``),
which the host loads over the link at start-up. The logic cells do not hold the input vectors
latched in registers (with collectors before the layers): every layer takes its input into
block RAM as the layer before produces it (``--input-memory all``), the image from the link
in beats of 16 pixels. The network has random trained-like
parameters (:func:`fewmul.boards.nets.random_net`; the weights change the timing little). The
folding reads 48 weights a cycle from three SPRAM blocks for the input layer and 16 from the
fourth for the first hidden layer: 4352 cycles/inference, close to the 4160 that the SPRAM's
64 bits a cycle allow for those two layers.

Prints LUT, FF, EBR, SPRAM, Fmax, cycles/inference, inferences/s at Fmax and at the board's
12 MHz, the images/s the 3 Mbaud link carries, the time to load the weights, and the build's
time per tool; writes them to ``OUTPUT/sfc.json``.

Usage::

    python bench/sfc_icebreaker.py [-o build/bench-sfc] [--simd 48,16,16,16]
                                   [--pipeline auto] [--bench-images 0]
                                   [--input-memory all]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from fewmul.boards.flow import build_design
from fewmul.boards.nets import SFC_INPUT_BITS, SFC_SIZES, random_net
from fewmul.boards.protocol import WeightMemory
from fewmul.cli.common import layer_choice



def sfc_row(report: dict, board_dir: Path) -> dict:
    """The figures of a build's ``report.json`` (and its ``link.json``)."""
    link = json.loads((board_dir / "link.json").read_text())
    weights = [WeightMemory.from_json(e) for e in link.get("weights", [])]
    load_bytes = sum(len(f) for w in weights for f in w.frames([0] * w.words))
    used, rate = report["used"], report["inferences_per_s"]
    return {"lut": used["lut"], "ff": report["synth"]["ff"], "ebr": used["bram"],
            "spram": used.get("spram", 0), "spram_layers": report.get("spram_layers"),
            "fmax_mhz": report["fmax_mhz"], "cycles_per_inference": report["cycles_per_inference"],
            "inferences_per_s_at_fmax": rate["compute_at_fmax"],
            "inferences_per_s_at_board_clock": rate["compute_at_board_clock"],
            "link_images_per_s": rate["uart"], "baud": report["baud"],
            "weight_load_s": 10 * load_bytes / report["baud"],
            "critical_path": report.get("critical_path"),
            "build_s": report["seconds"], "tool_seconds": report["tool_seconds"]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-o", "--output", type=Path, default=Path("build/bench-sfc"))
    parser.add_argument("--sizes", default=",".join(map(str, SFC_SIZES)),
                        help="inputs, then the units of each layer (default: the SFC's)")
    parser.add_argument("--simd", default="48,16,16,16")
    parser.add_argument("--pipeline", default="auto")
    parser.add_argument("--bench-images", type=int, default=0)
    parser.add_argument("--input-memory", type=layer_choice("none", "all"), default="all",
                        help="layers that take their input into block RAM (default: all)")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    net = random_net(sizes, input_bits=SFC_INPUT_BITS, seed=0)
    simd = [int(s) for s in args.simd.split(",")]
    pipeline = args.pipeline if args.pipeline == "auto" else int(args.pipeline)
    bench = None
    if args.bench_images:
        rng = np.random.default_rng(1)
        images = rng.integers(0, 2, size=(args.bench_images, sizes[0]))
        bench = (images, net.scores(images).argmax(1))
    t0 = time.perf_counter()
    out = args.output / "icebreaker"
    result = build_design(net, "icebreaker", out, pe=[1] * len(simd), simd=simd,
                          pipeline=pipeline,
                          bench=bench, bench_images=args.bench_images,
                          input_memory=args.input_memory)
    row = sfc_row(result.to_json(), out)
    row["wall_s"] = time.perf_counter() - t0
    (args.output / "sfc.json").write_text(json.dumps(row, indent=2))
    print(f"{'-'.join(map(str, sizes))} (1-bit input) on the iCEBreaker, --pe 1 --simd "
          f"{args.simd} --pipeline {args.pipeline} --input-memory {args.input_memory}:")
    print(f"  LUT {row['lut']:g}, FF {row['ff']:g}, EBR {row['ebr']:g}/30, SPRAM "
          f"{row['spram']:g}/4 (layers {row['spram_layers']})")
    print(f"  Fmax {row['fmax_mhz']:.1f} MHz (goal 40), {row['cycles_per_inference']} "
          f"cycles/inference: {row['inferences_per_s_at_fmax']:,.0f} inferences/s at Fmax, "
          f"{row['inferences_per_s_at_board_clock']:,.0f} at 12 MHz; the {row['baud']} baud "
          f"link carries {row['link_images_per_s']:,.0f} images/s; weights load in "
          f"{row['weight_load_s']:.3f} s")
    if row["critical_path"]:
        path = row["critical_path"]
        print(f"  critical path: {path['from']} -> {path['to']}, {path['delay_ns']:.1f} ns")
    print(f"  build {row['build_s']:.0f} s: " + ", ".join(
        f"{k} {v:.0f} s" for k, v in row["tool_seconds"].items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
