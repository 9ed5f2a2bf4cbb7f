"""Many networks in one Verilator model, each streamed with random stalls.

A Verilator build takes tens of seconds whatever the design's size, so checking a thousand small
random networks one build each would take hours. :func:`run_batch` lowers a batch of
networks side by side into one design (:class:`Batch`, one Yosys run, which also checks that
no multiplier is left), compiles it with a generated C++ harness that streams every network's
images at once, with random idle input cycles and back-pressure per network from its own
random generator, and compares every label and score with the golden model.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from amaranth.hdl import Module, Shape
from amaranth.lib import wiring

from fewmul.compiler.lower import LayerPlan, lower, probes
from fewmul.compiler.tools import run_tool
from fewmul.ir import Graph

from .fast import _HARNESS_HELPERS, pack_words
from .runner import SimulationError, verilator_env
from .vectors import unpack

__all__ = ["Batch", "BatchResult", "run_batch"]

#: The C++ compiler without optimization: a batch of small networks runs in seconds either
#: way, and compiling its model is the cost (2-3 times less at -O0 than Verilator's -Os).
COMPILE_FAST = "OPT_FAST=-O0 OPT_SLOW=-O0 OPT_GLOBAL=-O0"


class Batch(wiring.Component):
    """The networks side by side: network ``k``'s streams are the ports ``n{k}_i`` and
    ``n{k}_o``, all in one clock domain."""

    def __init__(self, networks: list):
        self.networks = list(networks)
        members = {}
        for k, net in enumerate(self.networks):
            members[f"n{k}_i"] = net.signature.members["i"]
            members[f"n{k}_o"] = net.signature.members["o"]
        super().__init__(wiring.Signature(members))

    def elaborate(self, platform):
        m = Module()
        for k, net in enumerate(self.networks):
            m.submodules[f"n{k}"] = net
            wiring.connect(m, wiring.flipped(getattr(self, f"n{k}_i")), net.i)
            wiring.connect(m, net.o, wiring.flipped(getattr(self, f"n{k}_o")))
        return m


@dataclass
class BatchResult:
    """One network's outcome: ``checked`` images compared, ``problem`` None or what went
    wrong (the first differing image, a missing result, an error lowering it)."""
    checked: int
    problem: str | None = None


@dataclass
class _Layout:
    """Where a network's values sit in its streams."""
    in_count: int
    in_bits: int
    in_beats: int
    in_words: int
    out_words: int
    label_offset: int
    label_bits: int
    scores_offset: int
    score_bits: int
    classes: int
    budget: int


def _words(bits: int) -> int:
    return max(2, -(-bits // 32))


def _layout(net: Graph, plans: list[LayerPlan], top, images: int, stall: float) -> _Layout:
    out = top.o.payload.shape()
    last = probes(net, plans)[-1]
    slow = 1 if stall <= 0 else int(4 / (1 - stall) ** 2)
    return _Layout(
        in_count=net.in_type.channels, in_bits=net.input_bits, in_beats=net.in_type.pixels,
        in_words=_words(Shape.cast(top.i.payload.shape()).width),
        out_words=_words(Shape.cast(out).width),
        label_offset=out["label"].offset, label_bits=out["label"].width,
        scores_offset=out["scores"].offset, score_bits=last.element_bits,
        classes=last.units,
        budget=(top.latency_cycles + images * top.cycles_per_inference) * 2 * slow + 1000)


_MAIN = r"""
struct Net { size_t beats, n, iw, ow, in_off, out_off, sent, got; bool valid; uint64_t rng; };

static uint32_t next(Net& s) {          // xorshift64
    s.rng ^= s.rng << 13; s.rng ^= s.rng >> 7; s.rng ^= s.rng << 17;
    return (uint32_t)(s.rng >> 40) & 0xffff;
}

int main(int argc, char** argv) {
    if (argc != 6) { std::fprintf(stderr, "usage: %s IN OUT STALL SEED MAX_CYCLES\n", argv[0]); return 2; }
    const uint32_t stall = (uint32_t)(std::atof(argv[3]) * 65536.0);
    const uint64_t seed = std::strtoull(argv[4], nullptr, 10);
    const uint64_t max_cycles = std::strtoull(argv[5], nullptr, 10);
    Net nets[NETS] = {@NETS@};
    size_t in_total = 0, out_total = 0;
    for (int k = 0; k < NETS; k++) {
        nets[k].in_off = in_total; in_total += nets[k].beats * nets[k].iw;
        nets[k].out_off = out_total; out_total += nets[k].n * nets[k].ow;
        nets[k].rng = (seed + 1) * 0x9E3779B97F4A7C15ull + (uint64_t)k * 0xD1B54A32D192ED03ull;
        if (!nets[k].rng) nets[k].rng = 1;
    }
    std::vector<uint32_t> in(in_total), out(out_total), word(64);
    FILE* f = std::fopen(argv[1], "rb");
    if (!f || std::fread(in.data(), 4, in.size(), f) != in.size()) { std::perror(argv[1]); return 1; }
    std::fclose(f);
    Vtop* top = new Vtop;
    top->rst = 1;
    for (int k = 0; k < 2; k++) { top->clk = 0; top->eval(); top->clk = 1; top->eval(); }
    top->rst = 0;
    uint64_t cycles = 0;
    size_t pending = NETS;
    bool ready[NETS];
    while (pending && cycles < max_cycles) {
        for (int k = 0; k < NETS; k++) {
            Net& s = nets[k];
            if (!s.valid && s.sent < s.beats && next(s) >= stall) s.valid = true;
            ready[k] = next(s) >= stall;
            drive(top, k, s.valid, &in[s.in_off + (s.sent < s.beats ? s.sent : 0) * s.iw], ready[k]);
        }
        top->clk = 0; top->eval();
        for (int k = 0; k < NETS; k++) {
            Net& s = nets[k];
            bool in_ready, out_valid;
            sample(top, k, in_ready, out_valid, word.data());
            if (out_valid && ready[k] && s.got < s.n) {
                for (size_t j = 0; j < s.ow; j++) out[s.out_off + s.got * s.ow + j] = word[j];
                if (++s.got == s.n) pending--;
            }
            if (s.valid && in_ready) { s.valid = false; s.sent++; }
        }
        top->clk = 1; top->eval();
        cycles++;
    }
    top->final();
    delete top;
    f = std::fopen(argv[2], "wb");
    std::fwrite(out.data(), 4, out.size(), f);
    std::fclose(f);
    std::printf("{\"cycles\": %llu, \"got\": [", (unsigned long long)cycles);
    for (int k = 0; k < NETS; k++) std::printf("%s%zu", k ? ", " : "", nets[k].got);
    std::printf("]}\n");
    std::fflush(stdout);
    return 0;
}
"""


def _port(k: int, stream: str, signal: str) -> str:
    """The C++ name of a port (Verilator spells ``__`` as ``___05F``)."""
    return f"n{k}_{stream}___05F{signal}"


def _harness(layouts: list[_Layout], images: int) -> str:
    drive = [f"    case {k}: t->{_port(k, 'i', 'valid')} = valid; "
             f"put(t->{_port(k, 'i', 'payload')}, payload); "
             f"t->{_port(k, 'o', 'ready')} = ready; break;" for k in range(len(layouts))]
    sample = [f"    case {k}: in_ready = t->{_port(k, 'i', 'ready')}; "
              f"out_valid = t->{_port(k, 'o', 'valid')}; "
              f"if (out_valid) get(t->{_port(k, 'o', 'payload')}, out); break;"
              for k in range(len(layouts))]
    nets = ", ".join(f"{{{layout.in_beats * images}, {images}, {layout.in_words}, "
                     f"{layout.out_words}, 0, 0, 0, 0, false, 0}}" for layout in layouts)
    return ("// Generated by fewmul.sim.batch: streams images through many networks at once.\n"
            + _HARNESS_HELPERS + f"\n#define NETS {len(layouts)}\n"
            "static void drive(Vtop* t, int k, bool valid, const uint32_t* payload, bool ready) "
            "{\n  switch (k) {\n" + "\n".join(drive) + "\n  }\n}\n"
            "static void sample(Vtop* t, int k, bool& in_ready, bool& out_valid, uint32_t* out) "
            "{\n  switch (k) {\n" + "\n".join(sample) + "\n  }\n}\n"
            + _MAIN.replace("@NETS@", nets))


def _compare(net: Graph, layout: _Layout, x: np.ndarray, raw: np.ndarray, got: int) -> BatchResult:
    """The harness's results of one network against the golden model."""
    scores = net.scores(x)
    for i in range(got):
        word = int.from_bytes(raw[i].tobytes(), "little")
        label = (word >> layout.label_offset) & ((1 << layout.label_bits) - 1)
        values = unpack(word >> layout.scores_offset, layout.score_bits, layout.classes,
                        signed=True)
        want = scores[i].tolist()
        if values != want or label != int(np.argmax(scores[i])):
            diff = [j for j, (a, b) in enumerate(zip(values, want)) if a != b]
            what = (f"score {diff[0]}: got {values[diff[0]]}, expected {want[diff[0]]}" if diff
                    else f"label {label}, golden model says {int(np.argmax(scores[i]))}")
            return BatchResult(i, f"image {i}: {what}")
    if got < len(x):
        return BatchResult(got, f"{got} of {len(x)} results (the design stopped answering)")
    return BatchResult(got)


def run_batch(cases: list[tuple[Graph, list[LayerPlan]]], inputs: list[np.ndarray],
              work_dir: Path, *, stall: float = 0.25, seed: int = 0,
              golden: list[Graph] | None = None) -> list[BatchResult]:
    """Check every ``(net, plans)`` of ``cases`` on its ``inputs`` in one Verilator model.

    ``golden`` replaces the networks as the models the results are compared with (a test that
    the comparison can fail); ``seed`` seeds the stalls.

    Returns
    -------
    list of BatchResult
        One per case, in order.

    Raises
    ------
    SimulationError
        When the batch cannot be built or run (e.g. Verilator fails).
    """
    from fewmul.compiler.verilog import convert_and_check

    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    results: list[BatchResult | None] = [None] * len(cases)
    tops, layouts, index = [], [], []
    images = max(len(x) for x in inputs)
    for k, ((net, plans), x) in enumerate(zip(cases, inputs)):
        if len(x) != images:
            raise ValueError(f"Every network takes the same number of images ({images}), not "
                             f"{len(x)}")
        try:
            top = lower(net, plans)
            layouts.append(_layout(net, plans, top, images, stall))
        except Exception as exc:     # a network the lowering refuses is a finding too
            results[k] = BatchResult(0, f"lowering: {type(exc).__name__}: {exc}")
            continue
        tops.append(top)
        index.append(k)
    if not tops:
        return results
    verilog, stat = convert_and_check(Batch(tops), work_dir, name="fuzz", prefix="fuzz")
    (work_dir / "fuzz.v").write_text(verilog)
    multipliers = stat["cells"].get("$mul", 0)
    harness = work_dir / "harness.cpp"
    harness.write_text(_harness(layouts, images))
    env = {**os.environ, **verilator_env()}
    exe = work_dir / "obj" / "fewmul_batch"
    exe.unlink(missing_ok=True)
    run_tool(["verilator", "--cc", "--exe", "--build", "-j", "2", "--top-module", "fuzz",
              "--prefix", "Vtop", "-Wno-fatal", "-Wno-lint", "-Wno-style", "-O1",
              "--x-assign", "fast", "--x-initial", "fast", "-MAKEFLAGS", COMPILE_FAST,
              "-Mdir", str(work_dir / "obj"), "-o", "fewmul_batch", "fuzz.v", str(harness)],
             tool="Verilator (fuzz batch)", log=work_dir / "build.log", cwd=work_dir, env=env,
             error=SimulationError)
    words = [pack_words(np.asarray(inputs[k]).reshape(-1, layout.in_count), layout.in_bits,
                        layout.in_words).ravel()
             for k, layout in zip(index, layouts)]
    (work_dir / "inputs.bin").write_bytes(np.concatenate(words).astype("<u4").tobytes())
    budget = max(layout.budget for layout in layouts)
    log = work_dir / "run.log"
    run_tool([str(exe), "inputs.bin", "outputs.bin", str(stall), str(seed), str(budget)],
             tool="the fuzz batch", log=log, cwd=work_dir, error=SimulationError)
    lines = [line for line in log.read_text().splitlines() if line.startswith("{")]
    if not lines:
        raise SimulationError(f"The fuzz batch wrote no result; see {log}")
    got = json.loads(lines[-1])["got"]
    raw = np.frombuffer((work_dir / "outputs.bin").read_bytes(), "<u4")
    offset = 0
    for k, layout, count in zip(index, layouts, got):
        rows = raw[offset:offset + images * layout.out_words].reshape(images, layout.out_words)
        offset += images * layout.out_words
        net = golden[k] if golden is not None else cases[k][0]
        results[k] = _compare(net, layout, np.asarray(inputs[k]), rows, count)
        if multipliers and results[k].problem is None:
            results[k] = BatchResult(results[k].checked,
                                     f"{multipliers} $mul cells in the batch's Verilog")
    return results
