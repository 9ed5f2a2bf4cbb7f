"""The host link's Verilog under cocotb + Verilator, checked against the golden model.

The simulated top is :class:`~fewmul.boards.link.HostLink` around the network:
the pins a board's UART drives (``rx``, ``tx``) and the clock and reset. A
small ``divisor`` (clock cycles per bit) keeps the simulation short; the
frames are the real protocol's.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict
from pathlib import Path

import numpy as np

from fewmul.ir import Graph
from fewmul.nn.artifacts import write_atomic
from fewmul.sim.runner import SimulationError, verilator_env

from fewmul.gateware.spram import sb_spram256ka_verilog

from .link import HostLink
from .nets import build_network
from .weights import attach_spram, layer_units, weight_memories

__all__ = ["simulate_link", "TESTBENCH"]

TESTBENCH = "fewmul.boards.uart_testbench"


def simulate_link(net: Graph, images: np.ndarray, out: Path, *, pe=None, default=None,
                  simd=None, divisor: int = 4,
                  bench: tuple[np.ndarray, np.ndarray] | None = None, spram=(),
                  input_memory=None) -> dict:
    """Send ``images`` through the serial pins of the link top and compare the answers.

    Parameters
    ----------
    net : Graph
        Golden model; the gateware is built from it with folding ``pe``.
    images : ndarray
        ``(count, inputs)`` quantized inputs.
    out : Path
        Folder for ``link_top.v``, the Verilator build and ``uart_sim.json``.
    divisor : int
        Clock cycles per bit on the serial lines.
    simd : optional
        Inputs per neuron per cycle, with ``pe``.
    spram : sequence of int
        Layers whose weights are in SPRAM (``SB_SPRAM256KA`` instances, simulated with the
        Yosys iCE40 cell model): the testbench first loads them with weight frames and checks
        each acknowledgement (``weight_frames`` in the result).
    input_memory : "none", "all", list of int or None
        Layers that take their input into block RAM
        (:func:`~fewmul.compiler.input_memory.memory_layers`).
    bench : (images, labels) or None
        Build the link with benchmark mode (:mod:`fewmul.boards.bench`, fed as many bytes a
        cycle as :func:`~fewmul.boards.bench.feed_bytes` chooses) holding these; after
        the images' answers the testbench sends the bench command and decodes the report.

    Returns
    -------
    dict
        ``images``, ``answers``, ``mismatches``, ``first_mismatch``, ``error``,
        ``cycles``, ``wall_s``; ``window`` (images the testbench kept unanswered),
        ``answer_cycles`` (the cycle each answer's frame ended), ``link_cycles_per_image``
        (between the first and the last answer) and ``line_cycles_per_image`` (the longer frame
        on the line, the limit); with ``bench``, ``bench``: the report's ``cycles``,
        ``correct`` and ``checksum``, and ``bench_cycles_per_image``, ``cycles_per_inference``
        and ``latency_cycles`` for comparison; ``weight_frames``: the weight frames sent and
        acknowledged before the images; also written to ``out/uart_sim.json``.
    """
    from amaranth.back import verilog
    from cocotb_tools.runner import get_runner

    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    network, _ = build_network(net, pe, default=default, simd=simd, input_memory=input_memory)
    memories = attach_spram(network, spram, cells=True) if spram else {}
    units = layer_units(network)
    weight_frames = [list(frame) for entry in weight_memories(memories)
                     for frame in entry.frames(units[entry.layer].rows)]
    unit = None
    if bench is not None:
        from .bench import BenchUnit, feed_bytes
        from .link import link_format
        fmt = link_format(network)
        unit = BenchUnit(fmt, bench[0], bench[1],
                         feed_bytes(fmt.in_bytes, network.cycles_per_inference))
    link = HostLink(network, divisor, unit, memories)
    top_v = out / "link_top.v"
    write_atomic(top_v, verilog.convert(link, name="top"))
    sources = [top_v]
    if memories:
        sources.append(out / "sb_spram256ka.v")
        write_atomic(sources[-1], sb_spram256ka_verilog())
    outputs = net.scores(images)
    os.environ.update(verilator_env())
    sim_dir = out / "uart_sim_build"
    log_file = out / "uart_sim.log"
    runner = get_runner("verilator")
    try:
        runner.build(sources=sources, hdl_toplevel="top", build_dir=sim_dir,
                     build_args=["-Wno-fatal", "-O3"], log_file=log_file)
    except SystemExit as exc:
        raise SimulationError(f"Verilator build failed; see {log_file}") from exc
    with tempfile.TemporaryDirectory(prefix="fewmul-uart-") as tmp:
        vec, res = Path(tmp) / "vectors.json", Path(tmp) / "result.json"
        vec.write_text(json.dumps({
            "format": asdict(link.format), "divisor": divisor,
            "latency_cycles": network.latency_cycles,
            "inputs": np.asarray(images).astype(int).tolist(),
            "scores": outputs.astype(int).tolist(),
            "labels": outputs.argmax(1).astype(int).tolist(), "bench": bench is not None,
            "weight_frames": weight_frames}))
        env = {"FEWMUL_LINK_VECTORS": str(vec), "FEWMUL_LINK_RESULT": str(res)}
        try:
            runner.test(test_module=TESTBENCH, hdl_toplevel="top", build_dir=sim_dir,
                        test_dir=sim_dir, extra_env=env, log_file=log_file)
        except SystemExit:
            pass    # cocotb exits on a failed test under pytest; the result file tells why
        if not res.exists():
            raise SimulationError(f"The UART testbench wrote no result; see {log_file}")
        result = json.loads(res.read_text())
    if bench is not None:
        from .bench import bench_cycles_per_image
        result.update(bench_cycles_per_image=bench_cycles_per_image(
            link.format, network.cycles_per_inference),
            cycles_per_inference=network.cycles_per_inference,
            latency_cycles=network.latency_cycles)
    write_atomic(out / "uart_sim.json", json.dumps(result, indent=2))
    return result
