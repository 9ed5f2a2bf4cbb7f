"""``fewmul build`` of a training build: the on-chip trainer behind its UART link, for a board.

A folder written by ``fewmul compile --train`` (``train.json``, ``init.npz``) is rebuilt as an
:class:`~fewmul.gateware.training.OnChipTrainer` holding the initial weights, wrapped in a
:class:`~fewmul.boards.train_link.TrainBoardTop` and handed to the board family's flow (Yosys,
nextpnr, the bitstream) as an inference build is. ``BUILD/<board>/`` then holds the
bitstream, ``top.tim``, ``link.json`` (``kind`` ``onchip-training``, the frames of
:mod:`fewmul.boards.train_protocol`) and ``report.json``: the use of LUT/FF/BRAM/DSP, Fmax,
the training steps per second at the board clock and at Fmax (from the trainer's cycles per
step), what the link carries, and the area of every unit of the trainer (forward, backward,
control) when the compile report has it.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from fewmul.compiler.folders import BuildFolder
from fewmul.nn.artifacts import read_json, write_atomic

from .families import flow_for
from .fit import KIND_NAMES, FitError
from .targets import Board, get_board
from .uart import check_baud

__all__ = ["is_training_build", "build_training_board", "format_training_report"]


def is_training_build(build_dir: Path) -> bool:
    """Whether ``build_dir`` was written by ``fewmul compile --train``."""
    return BuildFolder(build_dir).trains_on_chip


def _check_fit(board: Board, used: dict, stage: str) -> None:
    for kind in ("lut", "ff", "bram", "dsp"):
        have, need = board.capacity.get(kind), used.get(kind)
        if have is None or need is None or need <= have:
            continue
        advice = "train a smaller network (fewer or narrower hidden layers) or use a larger board"
        raise FitError(f"the trainer does not fit the {board.title}: it needs {need:g} "
                       f"{KIND_NAMES[kind]} ({stage}) but the device has {have}. To fit: "
                       f"{advice}.", resource=kind, used=need, available=have,
                       suggestion=advice)


def build_training_board(build_dir: Path, board: str | Board, *, baud: int | None = None,
                         target_hz: float | None = None, progress: bool = True,
                         seed: int | None = None) -> dict:
    """Build the trainer of the training build ``build_dir`` for ``board`` into
    ``BUILD/<board>/``.

    Parameters
    ----------
    build_dir : Path
        Written by ``fewmul compile --train``.
    board : str or Board
    baud : int or None
        Serial rate (None: the board's default), checked at both ends first.
    target_hz : float or None
        The clock place and route aims for (None: the board's goal).
    progress : bool
    seed : int or None
        The placer's seed (None: the tool's own).

    Returns
    -------
    dict
        The report, also written to ``BUILD/<board>/report.json`` (``kind``
        ``onchip-training``).

    Raises
    ------
    FitError, BuildError, BaudError
        As for :func:`~fewmul.boards.flow.build_design`.
    """
    from tqdm import tqdm

    from fewmul.gateware.training import OnChipTrainer
    from fewmul.sim.train_runner import TrainingBuild

    from .train_link import TrainBoardTop

    board = get_board(board) if isinstance(board, str) else board
    t0 = time.perf_counter()
    build = TrainingBuild.load(build_dir)
    folder = BuildFolder(build_dir)
    target_hz = board.target_hz if target_hz is None else target_hz
    platform = board.platform(target_hz=target_hz)
    baud = board.default_baud if baud is None else baud
    clock_hz = platform.default_clk_frequency
    divisor = check_baud(clock_hz, baud, board.uart_bridge)
    out = folder.board_dir(board.name)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").unlink(missing_ok=True)   # written last: marks a complete build
    trainer = OnChipTrainer(build.cfg, build.weights)
    top = TrainBoardTop(trainer, baud, board.uart_bridge, clock_hz=clock_hz)
    fmt = top.format
    write_atomic(out / "link.json", fmt.to_json(
        baud=baud, divisor=str(divisor), clock_hz=clock_hz,
        latency_cycles=trainer.latency, inference_latency_cycles=trainer.inference_latency))
    flow = flow_for(board)(board, out, seed=seed)
    steps = tqdm(total=flow.steps, desc=f"build {board.name}", unit="step",
                 disable=not progress, leave=False)
    try:
        made = flow.run(platform, top, check=lambda used, stage: _check_fit(board, used, stage),
                        progress=steps)
    finally:
        steps.close()
    used = {**made.synth, **made.pnr_used}
    timing = made.timing
    fmax = timing.fmax_mhz if timing else None
    cycles = trainer.cycles_per_step
    report = {
        "kind": "onchip-training", "board": board.name, "title": board.title,
        "family": board.family, "net": list(build.cfg.sizes), "weights": build.cfg.weights,
        "batch": build.cfg.batch, "clock_hz": clock_hz, "baud": baud,
        "cycles_per_step": cycles, "latency_cycles": trainer.latency,
        "inference_latency_cycles": trainer.inference_latency,
        "synth_cells": made.synth_cells, "synth": made.synth,
        "multipliers": made.synth["dsp"] + sum(n for c, n in made.synth_cells.items()
                                               if c in ("mul", "macc")),
        "used": used, "capacity": board.capacity,
        "utilization_percent": {k: round(100 * used[k] / board.capacity[k], 2)
                                for k in board.capacity if k in used},
        "fmax_mhz": fmax,
        "training_steps_per_s": {
            "compute_at_board_clock": clock_hz / cycles,
            "compute_at_fmax": fmax * 1e6 / cycles if fmax else None,
            "uart": fmt.samples_per_s(baud)},
        "frame_bytes": fmt.frame_bytes, "bitstream": made.bitstream,
        **made.extra, "tool_seconds": made.tool_seconds,
    }
    if timing is not None:
        path = timing.critical_path
        report.update(constraint_mhz=timing.constraint_mhz,
                      target_met=timing.meets(timing.constraint_mhz),
                      timing_met=timing.meets(clock_hz / 1e6),
                      critical_path=path.to_json() if path else None,
                      timing_report=timing.report)
    compiled = folder.path / "report.json"
    if compiled.exists():
        units = read_json(compiled).get("ecp5_units")
        if units:
            report["ecp5_units"] = units
    report["seconds"] = time.perf_counter() - t0
    write_atomic(out / "report.json", json.dumps(report, indent=2))
    return report


def format_training_report(report: dict, out: Path) -> str:
    """What ``fewmul build`` prints of a training board's report."""
    used, cap = report["used"], report["capacity"]
    util = report["utilization_percent"]
    rate = report["training_steps_per_s"]
    clock = report["clock_hz"] / 1e6
    lines = [f"{report['title']}, on-chip trainer {'-'.join(map(str, report['net']))} "
             f"({report['weights']}, batch {report['batch']}): "
             + ", ".join(f"{k.upper()} {used[k]:g}/{cap[k]} ({util[k]:.0f} %)"
                         for k in ("lut", "ff", "bram", "dsp") if k in used)]
    if report.get("fmax_mhz") is not None:
        status = "met" if report["timing_met"] else "MISSED"
        lines.append(
            f"Fmax {report['fmax_mhz']:.1f} MHz (target {report['constraint_mhz']:g} MHz: "
            f"{'met' if report['target_met'] else 'missed'}, board clock {clock:g} MHz: "
            f"{status}); {report['cycles_per_step']} cycles/training step: "
            f"{rate['compute_at_board_clock']:,.0f} steps/s at {clock:g} MHz, "
            f"{rate['compute_at_fmax']:,.0f} at Fmax; the {report['baud']} baud link carries "
            f"{rate['uart']:,.0f} samples/s")
        path = report.get("critical_path")
        if path:
            lines.append(f"critical path: {path['from']} -> {path['to']}, "
                         f"{path['delay_ns']:.1f} ns")
        lines.append(f"bitstream: {out / report['bitstream']}  timing: "
                     f"{out / report['timing_report']}  ('fewmul run --train' trains it)")
    else:
        lines.append(f"estimate only; {report['cycles_per_step']} cycles/training step = "
                     f"{rate['compute_at_board_clock']:,.0f} steps/s at {clock:g} MHz")
    return "\n".join(lines)
