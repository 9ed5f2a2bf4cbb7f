"""``fewmul build``: a network behind the UART link, synthesized and placed for a board.

:func:`build_design` elaborates the network and its host link on the board's platform
(:mod:`fewmul.boards.platforms`, whose clock constraints aim at the device's goal), hands it
to the flow of the board's FPGA family (:mod:`fewmul.boards.families`: iCE40 and ECP5 through
Yosys and nextpnr to a bitstream, Artix-7 to a Yosys estimate and a Vivado bundle) and
returns a :class:`BuildResult`, also written to ``report.json``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fewmul.compiler.folders import BuildFolder
from fewmul.compiler.lower import LayerPlan, input_beats, lower, unit_name
from fewmul.compiler.planner import FAST_CLOCK_HZ
from fewmul.nn.artifacts import write_atomic

from .families import BuildError, Timing, flow_for
from .fit import FitError, check_estimate, check_fit, spram_layers
from .link import BoardTop
from .nets import plan_network
from .targets import Board, get_board
from .weights import attach_spram, write_weight_files
from .uart import BaudError, check_baud

if TYPE_CHECKING:
    from fewmul.ir import Graph

__all__ = ["BuildError", "FitError", "BaudError", "BuildResult", "build_board", "build_design", "tool_env"]


def tool_env(board: Board) -> dict[str, str]:
    """The environment for the board's build script: the YoWASP executables of its family."""
    return flow_for(board).environment()


@dataclass(frozen=True, eq=False)
class BuildResult(Mapping):
    """What a board build made: paths, resource use, timing and throughput.

    It reads also as the mapping of :meth:`to_json` (``result["fmax_mhz"]``), the report
    written to ``report.json``.

    Attributes
    ----------
    board : Board
    out : Path
        The build folder; the other paths are relative to it.
    clock_hz : float
        The board's clock, which the design runs on.
    baud : int
        Serial rate of the host link.
    layers : list of dict
        Per layer, as ``fewmul compile``'s report has them: ``index``, ``in_shape`` and
        ``out_shape`` (``[C, H, W]``), then what each op's binding reports: ``units`` (the
        neurons, a convolution's filters), ``inputs`` (of each neuron, a convolution's
        ``K * K * C`` window), ``pe``, ``simd``, ``pipeline``, ... and for a convolution
        ``kernel``, ``stride``, ``padding`` and ``pool``; ``cycles_per_image`` is the layer's.
    cycles_per_inference, latency_cycles : int
    frame_bytes : tuple of int
        Bytes of an image frame and of a result frame on the host link.
    synth_cells : dict
        Yosys cell type -> count.
    synth : dict
        ``lut``, ``ff``, ``bram``, ``dsp`` after synthesis.
    used : dict
        The same kinds, place and route's packed use where there is one.
    timing : Timing or None
        None without place and route.
    bitstream : str or None
    extra : dict
        Further report entries of the family's flow (e.g. ``vivado_bundle``, ``estimate``).
    seconds : float
        The whole build.
    tool_seconds : dict
        Step (``elaborate``, ``yosys``, ``nextpnr_ice40``, ...) -> seconds.
    bench_images : int
        Test images in the benchmark mode's store (0: no benchmark mode).
    bench_cycles_per_image : int or None
        Its steady state (:func:`~fewmul.boards.bench.bench_cycles_per_image`).
    """
    board: Board
    out: Path
    clock_hz: float
    baud: int
    layers: list[dict]
    cycles_per_inference: int
    latency_cycles: int
    frame_bytes: tuple[int, int]
    synth_cells: dict[str, int]
    synth: dict[str, float]
    used: dict[str, float]
    timing: Timing | None = None
    bitstream: str | None = None
    extra: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    tool_seconds: dict[str, float] = field(default_factory=dict)
    bench_images: int = 0
    bench_cycles_per_image: int | None = None

    @property
    def fmax_mhz(self) -> float | None:
        """The lowest Fmax over the clocks, None without place and route."""
        return self.timing.fmax_mhz if self.timing else None

    @property
    def multipliers(self) -> float:
        """DSP blocks and Yosys multiplier cells in the design."""
        return self.synth["dsp"] + sum(n for c, n in self.synth_cells.items()
                                       if c in ("mul", "macc"))

    @property
    def capacity(self) -> dict:
        return self.board.capacity

    @property
    def utilization_percent(self) -> dict[str, float]:
        return {k: round(100 * self.used[k] / self.board.capacity[k], 2)
                for k in self.board.capacity}

    @property
    def inferences_per_s(self) -> dict[str, float | None]:
        """Throughput of the network at the board's clock and at Fmax, and of the host link."""
        fmax_hz = (self.fmax_mhz or 0) * 1e6
        return {
            "compute_at_board_clock": self.clock_hz / self.cycles_per_inference,
            "compute_at_fmax": fmax_hz / self.cycles_per_inference if fmax_hz else None,
            "uart": self.baud / (10 * max(self.frame_bytes)),
        }

    @property
    def bitstream_path(self) -> Path | None:
        return self.out / self.bitstream if self.bitstream else None

    @property
    def timing_report_path(self) -> Path | None:
        return self.out / self.timing.report if self.timing else None

    @property
    def report_path(self) -> Path:
        return self.out / "report.json"

    def to_json(self) -> dict[str, Any]:
        """The report: JSON types only."""
        board = self.board
        report = {
            "board": board.name, "title": board.title, "family": board.family,
            "clock_hz": self.clock_hz, "baud": self.baud, "layers": self.layers,
            "cycles_per_inference": self.cycles_per_inference,
            "latency_cycles": self.latency_cycles,
            "synth_cells": self.synth_cells, "synth": self.synth,
            "multipliers": self.multipliers,
            "bench_images": self.bench_images,
            "bench_cycles_per_image": self.bench_cycles_per_image,
        }
        timing = self.timing
        if timing is None:
            report.update(fmax_mhz=None, bitstream=self.bitstream, **self.extra)
        else:
            path = timing.critical_path
            # met: the board's clock, which the design runs on; the constraint may be a higher
            # target
            report.update(fmax_mhz=timing.fmax_mhz, constraint_mhz=timing.constraint_mhz,
                          target_met=timing.meets(timing.constraint_mhz),
                          timing_met=timing.meets(self.clock_hz / 1e6),
                          critical_path=path.to_json() if path else None,
                          bitstream=self.bitstream, timing_report=timing.report, **self.extra)
        report.update(used=self.used, capacity=self.capacity,
                      utilization_percent=self.utilization_percent,
                      inferences_per_s=self.inferences_per_s, seconds=self.seconds,
                      tool_seconds=self.tool_seconds)
        return report

    def write(self) -> Path:
        """Write :meth:`to_json` to :attr:`report_path`."""
        write_atomic(self.report_path, json.dumps(self.to_json(), indent=2))
        return self.report_path

    def __getitem__(self, key: str) -> Any:
        return self.to_json()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.to_json())

    def __len__(self) -> int:
        return len(self.to_json())


def layer_entries(network, plans: list[LayerPlan]) -> list[dict]:
    """The ``layers`` of the report: per layer its shapes and what its ops' bindings report of
    the units ``network`` (from :func:`~fewmul.boards.nets.build_network`) built for them."""
    entries = []
    for plan in plans:
        layer = plan.layer
        entry = {"index": layer.index, "in_shape": list(layer.in_type.shape),
                 "out_shape": list(layer.out_type.shape)}
        for op in layer.ops:
            role = op.binding.role
            entry.update(op.binding.report(plan.folding,
                                           network.stages[unit_name(layer, role)]))
        entry.update(units=plan.neurons, inputs=plan.inputs, pe=plan.pe, simd=plan.simd,
                     cycles_per_image=plan.cycles)
        entries.append(entry)
    return entries


def build_design(net: Graph, board: str | Board, out: Path, *, pe=None, default=None,
                 simd=None, pipeline: int | str | None = None, baud: int | None = None,
                 target_hz: float | None = None, progress: bool = True,
                 bench: tuple | None = None, bench_images: int | None = 0,
                 spram="auto", seed: int | None = None, input_memory=None) -> BuildResult:
    """Build ``net`` behind the UART link for ``board`` in the folder ``out``.

    Parameters
    ----------
    net : Graph
        The folded network (golden model), as :func:`fewmul.boards.nets.build_network` takes it.
    board : str or Board
        Target board, see :data:`fewmul.boards.targets.BOARDS`.
    pe, default, simd, pipeline
        Folding, as for :func:`fewmul.boards.nets.build_network`.
    baud : int or None
        Serial rate of the host link; None for the board's
        :attr:`~fewmul.boards.targets.Board.default_baud`. Checked at both ends of the line
        (:func:`~fewmul.boards.uart.check_baud`) before anything else.
    target_hz : float or None
        Clock frequency place and route aims for
        (:class:`~fewmul.boards.platforms.AimedClocks`); None for the board's
        :attr:`~fewmul.boards.targets.Board.target_hz`.
    progress : bool
        Show a progress bar of the steps.
    bench : (images, labels) or None
        Test images (quantized, as the golden model takes them) and their labels for the
        benchmark mode (:mod:`fewmul.boards.bench`); None for none.
    bench_images : int or None
        How many of ``bench`` the image store holds: None for as many as fit in half of the
        block RAM the planner leaves free, 0 for no benchmark mode; refused (one line) before
        synthesis when they do not fit.
    spram : "auto", "none", "all" or list of int
        Layers whose weights go into the SPRAM (:func:`~fewmul.boards.fit.spram_layers`:
        ``"auto"``, only on a device with SPRAM and only when the block RAM cannot hold them);
        they are loaded over the link at start-up (``weights`` in ``link.json``).
    seed : int or None
        The placer's seed (nextpnr's ``--seed``, recorded as ``placement_seed``); None for
        the tool's own.
    input_memory : "none", "all", list of int or None
        Layers that take their input vector into block RAM
        (:func:`~fewmul.compiler.input_memory.memory_layers`); None for ``default``'s.

    Returns
    -------
    BuildResult
        Also written to ``out/report.json``.

    Raises
    ------
    TypeError
        If ``board`` is neither a board name nor a :class:`~fewmul.boards.targets.Board`.
    BaudError
        The board's clock or its USB serial bridge cannot make ``baud`` closely enough.
    FitError
        The design needs more of a resource than the device has.
    BuildError
        A tool failed otherwise.
    """
    from tqdm import tqdm

    if isinstance(board, str):
        board = get_board(board)
    elif not isinstance(board, Board):
        raise TypeError(f"Board must be a board name or a Board, not {board!r}")
    t0 = time.perf_counter()
    target_hz = board.target_hz if target_hz is None else target_hz
    platform = board.platform(target_hz=target_hz)
    baud = board.default_baud if baud is None else baud
    divisor = check_baud(platform.default_clk_frequency, baud, board.uart_bridge)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").unlink(missing_ok=True)   # written last: marks a complete build
    plans = plan_network(net, pe, default=default, simd=simd, pipeline=pipeline,
                         clock_hz=target_hz, input_memory=input_memory)
    in_spram = spram_layers(board, plans, spram)
    check_estimate(board, net, plans, in_spram)  # a design far too large stops before synthesis
    count = _bench_count(board, net, plans, bench, bench_images, in_spram)
    network = lower(net, plans)
    memories = attach_spram(network, in_spram)
    unit = steady = None
    if count:
        from .bench import BenchUnit, bench_cycles_per_image, feed_bytes
        from .link import link_format
        fmt = link_format(network)
        limit = _feed_limit(board)
        unit = BenchUnit(fmt, bench[0][:count], bench[1][:count],
                         feed_bytes(fmt.in_bytes, network.cycles_per_inference, limit))
        steady = bench_cycles_per_image(fmt, network.cycles_per_inference, limit)
    top = BoardTop(network, baud, board.uart_bridge, clock_hz=platform.default_clk_frequency,
                   bench=unit, weights=memories)
    weights = write_weight_files(out, network, memories)
    write_atomic(out / "link.json", top.format.to_json(
        baud=baud, divisor=str(divisor), clock_hz=platform.default_clk_frequency,
        bench_images=count, bench_cycles_per_image=steady,
        cycles_per_inference=network.cycles_per_inference,
        latency_cycles=network.latency_cycles, weights=[w.to_json() for w in weights]))
    flow = flow_for(board)(board, out, seed=seed)

    def check(used: dict, stage: str) -> None:
        check_fit(board, used, net, plans, stage=stage, spram=in_spram)

    steps = tqdm(total=flow.steps, desc=f"build {board.name}", unit="step",
                 disable=not progress, leave=False)
    try:
        made = flow.run(platform, top, check=check, progress=steps)
    finally:
        steps.close()
    result = BuildResult(
        board=board, out=out, clock_hz=platform.default_clk_frequency, baud=baud,
        layers=layer_entries(network, plans),
        cycles_per_inference=network.cycles_per_inference,
        latency_cycles=network.latency_cycles, frame_bytes=tuple(top.format.frame_bytes),
        synth_cells=made.synth_cells, synth=made.synth, used={**made.synth, **made.pnr_used},
        timing=made.timing, bitstream=made.bitstream,
        extra={**made.extra, "spram_layers": in_spram},
        seconds=time.perf_counter() - t0, tool_seconds=made.tool_seconds,
        bench_images=count, bench_cycles_per_image=steady)
    result.write()
    return result


def _bench_count(board: Board, net: Graph, plans, bench, images: int | None, spram=()) -> int:
    """The images of the benchmark mode's store, decided before the network is lowered: 0
    without a data set or for a network that takes its image in several transfers (a
    convolutional network's pixels, a first layer's input memory's beats), else
    :func:`~fewmul.boards.bench.bench_fit` against the block RAM the planner leaves free."""
    from types import SimpleNamespace

    from .bench import bench_fit
    from .fit import estimated_brams
    if bench is None or images == 0:
        if images:
            raise ValueError("--bench-images needs the build's data set (spec.yaml of "
                             "'fewmul compile'), for the test images and their labels")
        return 0
    if input_beats(net, plans) > 1:
        if images is None:
            return 0
        raise ValueError("--bench-images: benchmark mode takes networks that take an image in "
                         "one transfer, not a convolutional network's pixels or a first layer "
                         "that takes its image into an input memory in beats")
    classes = net.layers[-1].out_type.size
    store = SimpleNamespace(in_bytes=(net.in_type.size * net.in_type.bits + 7) // 8,
                            label_bits=max(1, (classes - 1).bit_length()))
    free = ((board.capacity["bram"] - estimated_brams(board, plans, spram))
            * board.blocks_per_bram)
    return bench_fit(store, images, free, board.bram_geometries, available=len(bench[0]),
                     board=f"the {board.title}",
                     cycles_per_inference=max(plan.cycles for plan in plans),
                     max_width=_feed_limit(board))


def _feed_limit(board: Board) -> int | None:
    """The benchmark store's widest feed: a byte a cycle on the iCE40UP5K, whose logic cells
    are scarce (a wider feed multiplexes every bit of the network's input), else none."""
    return 1 if board.family == "ice40" else None


def _fast(board: str) -> bool:
    return (get_board(board).target_hz or 0) >= FAST_CLOCK_HZ


def build_board(build_dir: Path, board: str, *, pe=None, simd=None,
                pipeline: int | str | None = None, baud: int | None = None,
                target_hz: float | None = None, progress: bool = True,
                bench_images: int | None = None, spram="auto",
                seed: int | None = None, input_memory=None) -> BuildResult:
    """Build ``BUILD/net.npz`` (from ``fewmul compile``) for ``board`` into ``BUILD/<board>/``.

    The folding is ``pe`` (with ``simd``) if given, else what the compiler chose
    (``BUILD/report.json``). So are the pipeline stages, except on a board with a fast target
    clock (the ECP5): there they are ``"auto"`` for that clock unless ``pipeline`` is given. The
    compiler's choice (0 by default) suits simulation and small devices, where stages cost logic
    cells that a full iCE40UP5K lacks; the ECP5 has room, and its 150 MHz needs them.

    The benchmark mode holds the data set's first ``bench_images`` test images (None: as many
    as fit, see :func:`build_design`; without the build's ``spec.yaml`` none). The layers with
    an input memory are the compiler's unless ``input_memory`` says.
    """
    build = BuildFolder(build_dir)
    if build.trains_on_chip:    # 'fewmul compile --train': the trainer behind its training link
        from .train_build import build_training_board
        return build_training_board(build_dir, board, baud=baud, target_hz=target_hz,
                                    progress=progress, seed=seed)
    bench = None
    if bench_images != 0 and build.spec_path.exists():
        from fewmul.nn.data import load_dataset
        test = load_dataset(build.spec().data).test
        bench = (test.x, test.y)
    return build_design(build.net(), board, build.board_dir(get_board(board).name), pe=pe,
                        simd=simd,
                        pipeline=pipeline if pipeline is not None or not _fast(board) else "auto",
                        default=build.folding(), baud=baud,
                        target_hz=target_hz, progress=progress, bench=bench,
                        bench_images=bench_images, spram=spram, seed=seed,
                        input_memory=input_memory)
