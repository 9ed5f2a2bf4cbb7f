"""Verilator images/s for the 784-1024-1024-1024-10 network, against the golden model.

Builds the network (binary weights, sign activations unless told otherwise; random
parameters with thresholds at the median of each neuron's sums, so activations are
balanced), plans the folding for ``--target-cycles``, emits the Verilog (timing the
compile), compiles the generated Verilator harness and streams ``--images`` images
(Fashion-MNIST test images when installed, else random 8-bit pixels). Prints images/s
simulated, the golden model's images/s measured in the same run, their ratio, the
measured vs predicted cycles per inference, and the number of mismatching results.

    .venv/bin/python bench/sim_throughput.py [--target-cycles 64] [--images 1000]
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
from fewmul.nn.config import DataConfig
from fewmul.nn.data import FASHION_MNIST_DIR, load_dataset
from fewmul.arith import DotProduct
from fewmul.ir import Graph, dense_layer, dense_net
from fewmul.sim.fast import build_fast, run_fast

GOAL = 200.0
SIZES = [784, 1024, 1024, 1024, 10]


def random_net(x: np.ndarray, weight_kind: str, act_bits: int, seed: int = 0) -> Graph:
    """The paper's layer sizes with random weights; thresholds split each neuron's sums on
    ``x`` evenly (so every level occurs)."""
    rng = np.random.default_rng(seed)
    layers, kind, bits, h = [], "unsigned", 8, x
    for index, (n, m) in enumerate(zip(SIZES, SIZES[1:])):
        w = (rng.integers(0, 2, (m, n)) if weight_kind == "binary"
             else rng.integers(-1, 2, (m, n))).astype(np.int8)
        if index == len(SIZES) - 2:
            layers.append(dense_layer(w, kind, bits, shifts=rng.integers(4, 7, m),
                                      offsets=rng.integers(-64, 65, m),
                                      weight_kind=weight_kind))
            break
        s = DotProduct(kind, bits, weight_kind).sums(h, w)
        levels = (1 << act_bits) - 1
        q = np.quantile(s, np.arange(1, levels + 1) / (levels + 1), axis=0).T
        t = np.ceil(q).astype(np.int64)
        t = t[:, 0] if act_bits == 1 else t
        layers.append(dense_layer(w, kind, bits, thresholds=t, weight_kind=weight_kind))
        h = (s >= t).astype(np.uint8) if act_bits == 1 else \
            (s[:, :, None] >= t[None]).sum(2).astype(np.uint8)
        kind, bits = ("bipolar", 1) if act_bits == 1 else ("unsigned", act_bits)
    return dense_net(layers)


def images(count: int) -> tuple[np.ndarray, str]:
    if (Path(FASHION_MNIST_DIR) / "t10k-images-idx3-ubyte.gz").exists():
        data = load_dataset(DataConfig(set="fashion-mnist", input_bits=8))
        return data.test.x[:count], "Fashion-MNIST test images"
    return np.random.default_rng(1).integers(0, 256, (count, 784)), "random 8-bit pixels"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target-cycles", type=int, default=64)
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--weights", choices=["binary", "ternary"], default="binary")
    parser.add_argument("--act-bits", type=int, choices=[1, 2], default=1)
    parser.add_argument("--pipeline", type=int, default=0)
    parser.add_argument("--popcount", choices=["adder", "compressor"], default="adder")
    parser.add_argument("--build", type=Path, help="build folder (default: a temporary one)")
    args = parser.parse_args(argv)

    x, source = images(args.images)
    net = random_net(x[:200], args.weights, args.act_bits)
    plans = plan_folding(net, "auto", args.target_cycles, pipeline=args.pipeline,
                         popcount_style=args.popcount)
    with tempfile.TemporaryDirectory(prefix="fewmul-throughput-") as tmp:
        build = args.build or Path(tmp)
        t0, c0 = time.perf_counter(), time.process_time()
        _, report = emit_build(net, plans, build)
        compile_s, compile_cpu = time.perf_counter() - t0, time.process_time() - c0
        t0 = time.perf_counter()
        build_fast(build)
        verilator_s = time.perf_counter() - t0

        t0 = time.perf_counter()
        expected = net.forward(x)[-1]
        golden_s = time.perf_counter() - t0
        result = run_fast(build, x, expected)

    folding = ", ".join(f"{l['units']}: pe {l['pe']} simd {l['simd']}" for l in report["layers"])
    golden_rate = len(x) / golden_s
    print(f"784-1024-1024-1024-10, {args.weights} weights, {args.act_bits}-bit activations, "
          f"{len(x)} {source}")
    print(f"folding: {folding}")
    print(f"compile (fold excluded: lower + Verilog + weights): {compile_s:.1f} s wall, "
          f"{compile_cpu:.1f} s CPU; Verilator build {verilator_s:.0f} s")
    print(f"cycles/inference: measured {result['cycles_per_inference']:.1f}, predicted "
          f"{report['cycles_per_inference']}; latency measured {result['latency_cycles']}, "
          f"predicted {report['latency_cycles']}")
    print(f"mismatches: {result['mismatches']} of {len(x)}")
    print(f"Verilator: {result['images_per_second']:.0f} images/s "
          f"({result['cycles'] / result['seconds'] / 1e3:.0f} k cycles/s)")
    print(f"golden model (NumPy): {golden_rate:.0f} images/s")
    print(f"ratio Verilator / golden model: {result['images_per_second'] / golden_rate:.3f}; "
          f"Verilator vs goal {GOAL:.0f} images/s: {result['images_per_second'] / GOAL:.2f}x")
    agree = (result["cycles_per_inference"] == report["cycles_per_inference"]
             and result["latency_cycles"] == report["latency_cycles"])
    return 0 if result["mismatches"] == 0 and agree else 1


if __name__ == "__main__":
    sys.exit(main())
