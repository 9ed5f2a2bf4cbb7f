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

from .link import HostLink
from .nets import build_network

__all__ = ["simulate_link", "TESTBENCH"]

TESTBENCH = "fewmul.boards.uart_testbench"


def simulate_link(net: Graph, images: np.ndarray, out: Path, *, pe=None, default=None,
                  divisor: int = 4) -> dict:
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

    Returns
    -------
    dict
        ``images``, ``answers``, ``mismatches``, ``first_mismatch``, ``error``,
        ``cycles``, ``wall_s``; also written to ``out/uart_sim.json``.
    """
    from amaranth.back import verilog
    from cocotb_tools.runner import get_runner

    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    network, _ = build_network(net, pe, default=default)
    link = HostLink(network, divisor)
    top_v = out / "link_top.v"
    write_atomic(top_v, verilog.convert(link, name="top"))
    outputs = net.scores(images)
    os.environ.update(verilator_env())
    sim_dir = out / "uart_sim_build"
    log_file = out / "uart_sim.log"
    runner = get_runner("verilator")
    try:
        runner.build(sources=[top_v], hdl_toplevel="top", build_dir=sim_dir,
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
            "labels": outputs.argmax(1).astype(int).tolist()}))
        env = {"FEWMUL_LINK_VECTORS": str(vec), "FEWMUL_LINK_RESULT": str(res)}
        try:
            runner.test(test_module=TESTBENCH, hdl_toplevel="top", build_dir=sim_dir,
                        test_dir=sim_dir, extra_env=env, log_file=log_file)
        except SystemExit:
            pass    # cocotb exits on a failed test under pytest; the result file tells why
        if not res.exists():
            raise SimulationError(f"The UART testbench wrote no result; see {log_file}")
        result = json.loads(res.read_text())
    write_atomic(out / "uart_sim.json", json.dumps(result, indent=2))
    return result
