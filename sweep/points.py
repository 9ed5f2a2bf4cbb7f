"""One sweep point: a network spec and options in, a folder of results out.

:func:`run_point` is the task every scheduler runs (Dask workers, the serial loop, the bench
scripts). It shares nothing with other points but its inputs, which travel with the
:class:`Point`; it writes only into ``POINTS/<id>/``::

    point.json    the axis values, options, stages and the fingerprint of the inputs
    spec.yaml     the point's network spec (every default written out)
    run/          fewmul train's run folder (or the untrained one)
    build/        fewmul compile's build folder; build/<board>/ the board build
    result.json   the figures (written last, atomically): the point is done
    error.json    instead, when a stage failed: which stage, what kind, the message
    lock          while a process runs the point (see :mod:`fewmul.sweep.lock`)

A point is *done* when ``result.json`` holds the fingerprint of its current inputs, and
*failed* when ``error.json`` does; anything else (nothing yet, a different fingerprint, a run
that was killed) makes it *missing*.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from fewmul.nn.artifacts import ArtifactError, read_json, write_atomic

from .lock import PointLock

__all__ = ["Stages", "Point", "PointOutcome", "OPTION_KEYS", "point_state", "run_point",
           "DONE", "FAILED", "MISSING"]

DONE, FAILED, MISSING = "done", "failed", "missing"
#: Compile and build options a point may set (the sweep's option axes).
OPTION_KEYS = ("pe", "target_cycles", "max_luts", "pipeline", "board", "target_mhz")


@dataclass(frozen=True)
class Stages:
    """What to run per point.

    Attributes
    ----------
    train : bool
        Train the network (``train.epochs`` of its spec); False: its initial, untrained
        weights (no data read), as ``fewmul train --untrained``.
    compile : bool
        Lower it to Verilog (``fewmul compile``); implied by ``sim`` and ``build``.
    sim : int
        Test images to simulate in Verilator against the golden model (0: none).
    testbench_images : int
        Of those, images the cocotb testbench checks layer by layer (the rest go through the
        compiled harness only).
    build : bool
        Synthesize, place and route for the point's board (``fewmul build``).
    """
    train: bool = True
    compile: bool = True
    sim: int = 0
    testbench_images: int = 0
    build: bool = False

    @property
    def compiles(self) -> bool:
        return self.compile or self.sim > 0 or self.build


@dataclass
class Point:
    """One point of a sweep: everything needed to run it, and nothing else.

    Attributes
    ----------
    id : str
        Folder name under ``POINTS/``: the axis values, readable, and a short hash of them.
    values : dict
        Axis -> value, in the sweep file's order (the CSV columns).
    spec_text : str
        The network spec of the point, YAML.
    options : dict
        Compile and build options (keys of :data:`OPTION_KEYS`; absent: the default).
    stages : Stages
    source : str or None
        A trained run folder (``fewmul train``'s) to compile instead of training the spec, or
        a compiled build folder (``fewmul compile``'s) to build instead of training and
        compiling it; it is read, never written. Its network wins over ``spec_text``.
    """
    id: str
    values: dict[str, Any]
    spec_text: str
    options: dict[str, Any] = field(default_factory=dict)
    stages: Stages = field(default_factory=Stages)
    source: str | None = None

    def fingerprint(self) -> str:
        """A hash of the inputs: a finished point whose inputs changed runs again."""
        blob = json.dumps({"spec": self.spec_text, "options": self.options,
                           "stages": asdict(self.stages), "source": self.source},
                          sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


#: Shorter names of some keys in point ids.
_SHORT = {"target_cycles": "tc", "max_luts": "luts", "pipeline": "pipe", "target_mhz": "mhz",
          "epochs": "ep", "weights": "w"}


def point_id(values: dict[str, Any]) -> str:
    """A stable folder name for axis values: readable and unique (a hash of all of them).

    Examples
    --------
    >>> point_id({"layers.0.units": 32, "board": "ulx3s"})
    'units32-ulx3s-ea0dd6f4'
    """
    def short(key: str, value: Any) -> str:
        name = key.replace("[", ".").replace("]", "").split(".")[-1]
        name = _SHORT.get(name, name)
        text = value if isinstance(value, str) else json.dumps(value)
        text = "".join(c for c in str(text) if c.isalnum() or c in "._")
        return text if key in ("board",) or isinstance(value, str) else f"{name}{text}"

    readable = "-".join(short(k, v) for k, v in values.items())[:48].strip("-") or "point"
    digest = hashlib.sha256(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()
    return f"{readable}-{digest[:8]}"


@dataclass
class PointOutcome:
    """What became of a point in one sweep run.

    Attributes
    ----------
    id : str
    status : str
        ``"done"``, ``"failed"`` or ``"missing"`` (another process holds it and this run did
        not wait, or its worker was lost).
    ran : bool
        Whether this run executed it (False: the result was already there).
    seconds : float
    error : str or None
    """
    id: str
    status: str
    ran: bool = False
    seconds: float = 0.0
    error: str | None = None


def _finished(folder: Path, fingerprint: str) -> tuple[str, dict | None]:
    for name, status in (("result.json", DONE), ("error.json", FAILED)):
        try:
            record = read_json(folder / name)
        except (FileNotFoundError, ArtifactError):
            continue
        if isinstance(record, dict) and record.get("inputs") == fingerprint:
            return status, record
    return MISSING, None


def point_state(point: Point, points_dir: Path) -> tuple[str, dict | None]:
    """``(status, record)`` of ``point`` in ``points_dir``: done (its result.json), failed
    (its error.json) or missing (None)."""
    return _finished(Path(points_dir) / point.id, point.fingerprint())


class SimMismatch(RuntimeError):
    """The simulated design disagreed with the golden model."""


def _error_kind(exc: BaseException) -> str:
    from fewmul.boards.families import BuildError
    from fewmul.boards.fit import FitError
    from fewmul.compiler.schema import SpecError
    from fewmul.compiler.yosys import YosysError
    from fewmul.sim.runner import SimulationError
    if isinstance(exc, SimMismatch):
        return "mismatch"
    if isinstance(exc, FitError):
        return "does not fit"
    if isinstance(exc, SpecError):
        return "spec"
    if isinstance(exc, (BuildError, YosysError, SimulationError)):
        return "tool"
    if isinstance(exc, (ValueError, FileNotFoundError, ArtifactError)):
        return "input"
    return "internal"


def _sum_estimate(report: dict, key: str) -> float:
    return float(sum(layer.get("estimated", {}).get(key, 0) for layer in report["layers"]))


def _stages(point: Point, folder: Path, figures: dict, stage: list[str]) -> None:
    """Run the stages of ``point`` in ``folder``, adding to ``figures``; ``stage[0]`` names
    the one running (for the error record)."""
    from fewmul.compiler.spec import load_spec

    stages, options = point.stages, point.options
    spec_path = folder / "spec.yaml"
    stage[0] = "spec"
    spec = load_spec(spec_path)
    figures["name"] = spec.name
    run_dir, build_dir = folder / "run", folder / "build"
    source = Path(point.source) if point.source else None
    if source is not None and (source / "manifest.json").is_file():
        _build_from(source, point, folder / "build", figures, stage)
        return
    if source is not None:
        run_dir = source
    else:
        _train(stages, spec_path, run_dir, figures, stage)
    if not stages.compiles:
        return
    from fewmul.compiler.emit import compile_run
    stage[0] = "compile"
    report = compile_run(run_dir, build_dir, pe=options.get("pe"),
                         target_cycles=options.get("target_cycles"),
                         max_luts=options.get("max_luts"), pipeline=options.get("pipeline"),
                         synth=("generic",))
    _compile_figures(report, figures)
    if stages.sim:
        from fewmul.sim.check import check_build
        stage[0] = "sim"
        result = check_build(build_dir, stages.sim, testbench_images=stages.testbench_images)
        figures.update(sim_images=result["images"], sim_mismatches=result["mismatches"],
                       sim_cycles_per_inference=result.get("cycles_per_inference"),
                       sim_test_acc=result.get("test_acc"), sim_s=result["wall_s"])
        if result["mismatches"] or result.get("error"):
            raise SimMismatch(f"{result['mismatches']} mismatches against the golden model"
                              f" ({result.get('first_mismatch') or result.get('error')}); "
                              f"see {build_dir / 'sim.json'}")
    if stages.build:
        from fewmul.boards.flow import build_board
        stage[0] = "build"
        mhz = options.get("target_mhz")
        board = build_board(build_dir, options["board"], pipeline=options.get("pipeline"),
                            target_hz=mhz and mhz * 1e6, progress=False)
        _board_figures(board, figures)


def _train(stages: Stages, spec_path: Path, run_dir: Path, figures: dict,
           stage: list[str]) -> None:
    from fewmul.compiler.training import init_run, train_run
    stage[0] = "train"
    t0 = time.perf_counter()
    if stages.train:
        summary = train_run(spec_path, run_dir, progress=False)
        epochs = read_json(run_dir / "metrics.json").get("epochs", [])
        figures.update(
            test_acc=summary["test_acc_deployed"],
            test_acc_float=summary["test_acc_float_weights"],
            test_acc_integer=summary.get("test_acc_integer"),
            best_epoch=summary["best_epoch"] + 1, epochs=len(epochs),
            curve=[row["test_acc"] for row in epochs])
    else:
        init_run(spec_path, run_dir)
        figures.update(epochs=0, curve=[])
    figures["train_s"] = time.perf_counter() - t0


def _compile_figures(report: dict, figures: dict) -> None:
    generic = report.get("yosys", {}).get("generic", {})
    figures.update(
        pe=",".join(str(layer["pe"]) for layer in report["layers"]),
        cycles_per_inference=report["cycles_per_inference"],
        latency_cycles=report["latency_cycles"],
        est_lut=_sum_estimate(report, "lut"), est_ff=_sum_estimate(report, "ff"),
        est_bram=_sum_estimate(report, "bram"),
        yosys_cells=generic.get("num_cells"), multipliers=generic.get("multipliers"),
        compile_s=report.get("compile_seconds"))


def _board_figures(board, figures: dict) -> None:
    rate = board["inferences_per_s"]
    figures.update(
        lut=board["used"]["lut"], ff=board["used"]["ff"], bram=board["used"]["bram"],
        dsp=board["used"]["dsp"], lut_percent=board["utilization_percent"]["lut"],
        fmax_mhz=board["fmax_mhz"], clock_mhz=board["clock_hz"] / 1e6,
        inferences_per_s=rate.get("compute_at_fmax") or rate["compute_at_board_clock"],
        build_s=board["seconds"])


def _build_from(source: Path, point: Point, build_dir: Path, figures: dict,
                stage: list[str]) -> None:
    """The build stage of a point whose source is a compiled build folder (read only)."""
    from fewmul.boards.flow import build_design
    from fewmul.compiler.folders import BuildFolder
    compiled = BuildFolder(source)
    _compile_figures(read_json(compiled.report_path), figures)
    if not point.stages.build:
        return
    stage[0] = "build"
    options = point.options
    mhz = options.get("target_mhz")
    board = build_design(compiled.net(), options["board"], build_dir / options["board"],
                         pe=options.get("pe"), default=compiled.folding(),
                         pipeline=options.get("pipeline", "auto"),
                         target_hz=mhz and mhz * 1e6, progress=False)
    _board_figures(board, figures)


def run_point(point: Point, points_dir: str | Path, *, retry_failed: bool = False,
              wait: bool = True) -> PointOutcome:
    """Run ``point`` into ``points_dir/<id>/`` unless it is finished; never raise for a
    failure of the point itself.

    Parameters
    ----------
    point : Point
    points_dir : str or Path
        The sweep's ``points/`` folder (shared by every worker).
    retry_failed : bool
        Run a point whose error.json is there again.
    wait : bool
        When another live process holds the point's lock, wait for it and take its result
        (False: return ``missing`` at once).

    Returns
    -------
    PointOutcome
    """
    folder = Path(points_dir) / point.id
    fingerprint = point.fingerprint()
    status, record = _finished(folder, fingerprint)
    if status == DONE or (status == FAILED and not retry_failed):
        return PointOutcome(point.id, status, error=record.get("message") if record else None)
    lock = PointLock(folder)
    while not lock.try_acquire():
        if not wait:
            return PointOutcome(point.id, MISSING, error="running in another process")
        time.sleep(1.0)
        status, record = _finished(folder, fingerprint)
        if status == DONE or (status == FAILED and not retry_failed):
            return PointOutcome(point.id, status, error=record.get("message") if record else None)
    try:
        status, record = _finished(folder, fingerprint)     # finished while we waited
        if status == DONE or (status == FAILED and not retry_failed):
            return PointOutcome(point.id, status,
                                error=record.get("message") if record else None)
        return _execute(point, folder, fingerprint)
    finally:
        lock.release()


def _execute(point: Point, folder: Path, fingerprint: str) -> PointOutcome:
    for name in ("result.json", "error.json"):
        (folder / name).unlink(missing_ok=True)
    host = {"host": socket.gethostname(), "pid": os.getpid()}
    write_atomic(folder / "point.json", json.dumps(
        {"id": point.id, "values": point.values, "options": point.options,
         "stages": asdict(point.stages), "inputs": fingerprint}, indent=2, default=str))
    write_atomic(folder / "spec.yaml", point.spec_text)
    figures: dict[str, Any] = {}
    stage = ["spec"]
    t0 = time.perf_counter()
    try:
        _stages(point, folder, figures, stage)
    except Exception as exc:        # the point failed; the sweep goes on
        seconds = time.perf_counter() - t0
        kind = _error_kind(exc)
        record = {"id": point.id, "inputs": fingerprint, "stage": stage[0], "kind": kind,
                  "message": str(exc).strip() or type(exc).__name__,
                  "exception": type(exc).__name__, "seconds": seconds, "figures": figures,
                  **host}
        if kind == "internal":
            record["traceback"] = traceback.format_exc()
        if kind == "does not fit":
            record["fit"] = {"resource": exc.resource, "used": exc.used,
                             "available": exc.available, "suggestion": exc.suggestion}
        write_atomic(folder / "error.json", json.dumps(record, indent=2, default=str))
        return PointOutcome(point.id, FAILED, ran=True, seconds=seconds,
                            error=f"{stage[0]}: {kind}: {record['message'].splitlines()[0]}")
    seconds = time.perf_counter() - t0
    write_atomic(folder / "result.json", json.dumps(
        {"id": point.id, "inputs": fingerprint, "figures": figures, "seconds": seconds, **host},
        indent=2, default=str))
    return PointOutcome(point.id, DONE, ran=True, seconds=seconds)
