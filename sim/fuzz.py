"""Random networks over what the compiler accepts, each checked bit-exact against the golden
model.

:func:`random_case` turns a seed into a network and a folding: dense-only or convolutional,
layer counts and widths including awkward ones (primes, 1, widths no SIMD divides), binary or
ternary weights per layer, sign or k-bit activations, 1- to 8-bit (or bipolar) inputs,
thresholds that no sum reaches or every sum does, max-pools taking minima, output scores that
tie, and a folding from the planner (a cycle target or a LUT budget) or explicit PE and SIMD,
with random pipeline depths and popcount styles. The same seed always gives the same case, so
a failure is replayed with ``fewmul fuzz --seed S``.

:func:`run_fuzz` checks many cases in batches, each batch one Verilator model
(:mod:`fewmul.sim.batch`) with random stalls on every network's streams; :func:`replay` checks
one case in the cocotb testbench too, layer by layer.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from fewmul.compiler.lower import LayerPlan
from fewmul.compiler.planner import plan_folding
from fewmul.ir import Graph
from fewmul.ir.synthetic import LayerSpec, random_graph

__all__ = ["FuzzCase", "random_case", "random_images", "FuzzReport", "run_fuzz", "replay"]

#: Widths of the generated layers: small, with primes, 1 and sizes no power of two divides.
WIDTHS = (1, 2, 3, 4, 5, 7, 8, 11, 13, 16, 17)
#: Lengths of a dense-only network's input vector.
INPUTS = (1, 2, 3, 5, 7, 11, 13, 16, 17, 31, 32, 33, 64)
PIPELINES = (0, 0, 1, 2, 3, 4, 5, 6)
#: Most ``sum_L pe_L * simd_L * input_bits_L`` (the popcount inputs per cycle) of a folding: a
#: batch of networks stays quick to compile, and a wide datapath is no more awkward than a
#: narrow one.
MAX_WORK = 384


def _work(plans: list[LayerPlan]) -> int:
    return sum(p.pe * p.simd * p.layer.head.in_type.bits for p in plans)


@dataclass
class FuzzCase:
    """A random network and its folding.

    Attributes
    ----------
    seed : int
    net : Graph
        The golden model.
    plans : list of LayerPlan
        The folding of each layer.
    description : str
        The choices made, in one line.
    """
    seed: int
    net: Graph
    plans: list[LayerPlan]
    description: str


def _choice(rng, options):
    return options[int(rng.integers(len(options)))]


def _threshold_mode(rng) -> str:
    return _choice(rng, ("calibrated",) * 6 + ("wide", "wide", "low", "high", "mixed", "mixed"))


def random_layers(rng) -> tuple[tuple[int, int, int], str, int, list[LayerSpec]]:
    """A random architecture: ``(input shape, input kind, input bits, layers)``."""
    bits = int(rng.integers(1, 9))
    kind = "bipolar" if bits == 1 and rng.random() < 0.5 else "unsigned"
    layers: list[LayerSpec] = []

    def hidden() -> dict:
        return dict(weight_kind=_choice(rng, ("binary", "ternary")),
                    act_bits=_choice(rng, (1, 1, 2, 3)), thresholds=_threshold_mode(rng))

    if rng.random() < 0.5:                                      # convolutional
        c, h, w = int(rng.integers(1, 4)), int(rng.integers(3, 8)), int(rng.integers(3, 8))
        shape = (c, h, w)
        for _ in range(int(rng.integers(1, 3))):
            if min(h, w) < 2:
                break
            kernel = int(rng.integers(1, min(3, h, w) + 1))
            padding = int(rng.integers(0, 2)) if kernel > 1 else 0
            stride = int(rng.integers(1, 3))
            layers.append(LayerSpec("conv", _choice(rng, WIDTHS), kernel, padding, stride,
                                    **hidden()))
            h = (h + 2 * padding - kernel) // stride + 1
            w = (w + 2 * padding - kernel) // stride + 1
            sizes = [s for s in (2, 3) if h % s == 0 and w % s == 0]
            if sizes and rng.random() < 0.5:
                size = _choice(rng, sizes)
                layers.append(LayerSpec("pool", size, minimum=bool(rng.random() < 0.3)))
                h, w = h // size, w // size
    else:
        shape = (_choice(rng, INPUTS), 1, 1)
    for _ in range(int(rng.integers(0, 3))):
        layers.append(LayerSpec("dense", _choice(rng, WIDTHS), **hidden()))
    layers.append(LayerSpec("dense", _choice(rng, (1, 2, 3, 5, 7, 10)),
                            weight_kind=_choice(rng, ("binary", "ternary")),
                            ties=bool(rng.random() < 0.25)))
    return shape, kind, bits, layers


def random_folding(rng, net: Graph) -> tuple[list[LayerPlan], str]:
    """A random folding of ``net`` and its description."""
    pipeline = _choice(rng, PIPELINES)
    style = "compressor" if rng.random() < 0.3 else "adder"
    mode = _choice(rng, ("target", "luts", "explicit", "explicit"))
    if mode == "target":
        target = int(rng.integers(1, 400))
        try:
            plans = plan_folding(net, "auto", target, pipeline=pipeline, popcount_style=style)
            if _work(plans) <= MAX_WORK:
                return plans, f"planner --target-cycles {target}, pipeline {pipeline}, {style}"
        except ValueError:
            pass
        mode = "explicit"               # no (small) folding meets the target: fold explicitly
    if mode == "luts":
        luts = int(rng.integers(50, 5000))
        try:
            plans = plan_folding(net, "auto", max_luts=luts, pipeline=pipeline,
                                 popcount_style=style)
            if _work(plans) <= MAX_WORK:
                return plans, f"planner --max-luts {luts}, pipeline {pipeline}, {style}"
        except ValueError:
            pass
    pes, simds = [], []
    share = MAX_WORK // len(net.layers)
    for layer in net.layers:
        units, inputs, bits = layer.head.units, layer.inputs, layer.head.in_type.bits
        pe = _choice(rng, [d for d in range(1, units + 1) if units % d == 0 and d * bits <= share]
                     or [1])
        pes.append(pe)
        simds.append(int(rng.integers(1, max(1, min(inputs, share // (pe * bits))) + 1)))
    plans = plan_folding(net, pes, simd=simds, pipeline=pipeline, popcount_style=style)
    return plans, (f"--pe {','.join(map(str, pes))} --simd {','.join(map(str, simds))}, "
                   f"pipeline {pipeline}, {style}")


def _describe(shape, kind, bits, layers: list[LayerSpec]) -> str:
    parts = [f"{'x'.join(map(str, shape))} {kind} {bits}-bit"]
    for layer in layers:
        if layer.kind == "pool":
            parts.append(f"pool{layer.size}" + ("(min)" if layer.minimum else ""))
            continue
        text = (f"conv{layer.kernel}/s{layer.stride}/p{layer.padding}:{layer.size}"
                if layer.kind == "conv" else f"dense:{layer.size}")
        text += f" {layer.weight_kind}"
        if layer.act_bits:
            text += f" {layer.act_bits}b {layer.thresholds}"
        if layer.ties:
            text += " ties"
        parts.append(text)
    return " -> ".join(parts)


def random_case(seed: int) -> FuzzCase:
    """The random network and folding of ``seed`` (the same for the same seed)."""
    rng = np.random.default_rng([seed, 0xF022])
    shape, kind, bits, layers = random_layers(rng)
    net = random_graph(shape, layers, bits, rng, input_kind=kind, shifts=(0, 4))
    plans, folding = random_folding(rng, net)
    return FuzzCase(seed, net, plans, f"{_describe(shape, kind, bits, layers)}; {folding}")


def random_images(case: FuzzCase, count: int) -> np.ndarray:
    """``count`` images for ``case``: all ones, all zeros, then random pixels."""
    rng = np.random.default_rng([case.seed, 1])
    net = case.net
    x = rng.integers(0, 1 << net.input_bits, (count, net.in_type.size))
    x[:1] = (1 << net.input_bits) - 1
    x[1:2] = 0
    return x


@dataclass
class FuzzReport:
    """The outcome of :func:`run_fuzz`.

    Attributes
    ----------
    ran : int
        Networks checked.
    images : int
        Images checked in all.
    failures : dict
        Seed -> what went wrong (a mismatch, or an error building the case).
    seconds : float
    """
    ran: int = 0
    images: int = 0
    failures: dict[int, str] = field(default_factory=dict)
    seconds: float = 0.0

    def summary(self) -> str:
        text = (f"fuzz: {self.ran} random networks, {self.images} images, "
                f"{len(self.failures)} failed, {self.seconds:.0f} s")
        for seed, what in sorted(self.failures.items()):
            text += f"\n  seed {seed}: {what}\n    replay: fewmul fuzz --seed {seed}"
        return text


def run_fuzz(seeds, work_dir: Path, *, images: int = 16, stall: float = 0.25, batch: int = 40,
             progress: Callable[[FuzzReport], None] | None = None) -> FuzzReport:
    """Check the cases of ``seeds`` in the batched Verilator harness.

    Parameters
    ----------
    seeds : iterable of int
    work_dir : Path
        Where each batch is built (``batch{N}/``, replaced by the next).
    images : int
        Images per network.
    stall : float
        Probability of an idle input cycle and of a not-ready output cycle (0: none).
    batch : int
        Networks per Verilator model.
    progress : callable, optional
        Called with the report after each batch.
    """
    from fewmul.compiler.tools import ToolError

    from .batch import BatchResult, run_batch

    t0 = time.perf_counter()
    report = FuzzReport()
    seeds = list(seeds)
    for start in range(0, len(seeds), batch):
        cases = []
        for seed in seeds[start:start + batch]:
            try:
                cases.append(random_case(seed))
            except Exception as exc:         # the generator or the planner refused it: a bug
                report.failures[seed] = f"making the case: {type(exc).__name__}: {exc}"
                report.ran += 1
        if cases:
            inputs = [random_images(case, images) for case in cases]
            try:
                results = run_batch([(case.net, case.plans) for case in cases], inputs,
                                    Path(work_dir) / f"batch{start // batch}", stall=stall,
                                    seed=seeds[start])
            except ToolError as exc:    # the batch did not build or run: each case is suspect
                results = [BatchResult(0, f"its batch failed: {exc}") for _ in cases]
            for case, result in zip(cases, results):
                report.ran += 1
                report.images += result.checked
                if result.problem:
                    report.failures[case.seed] = f"{result.problem} [{case.description}]"
        report.seconds = time.perf_counter() - t0
        if progress is not None:
            progress(report)
    return report


def replay(seed: int, work_dir: Path, *, images: int = 16, stall: float = 0.25) -> dict:
    """Check the case of ``seed`` in the cocotb testbench, every layer, with stalls.

    Returns
    -------
    dict
        ``description``, ``images``, ``mismatches``, ``first_mismatch`` and ``error``.
    """
    from fewmul.compiler.emit import emit_build

    from .runner import simulate

    case = random_case(seed)
    work_dir = Path(work_dir)
    emit_build(case.net, case.plans, work_dir)
    x = random_images(case, images)
    result = simulate(work_dir, x, case.net.forward(x), stall=stall, seed=seed)
    return {"description": case.description, "images": images,
            "mismatches": result["mismatches"], "first_mismatch": result["first_mismatch"],
            "error": result.get("error")}
