"""Running the external tools (Yosys, nextpnr, Verilator, the C++ compiler, the packers).

Every tool runs through :func:`run_tool`: in a process group of its own, its output in a log
file. A failure (or a kill) becomes one :class:`ToolError` whose message names the tool, the
log and the log's last error line; an interrupt (Ctrl-C) or any other exception in this process
kills the whole group -- ``make``, the compiler processes it started, nextpnr's threads -- before
it propagates, so no tool is left running.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
from pathlib import Path
from typing import Sequence

__all__ = ["ToolError", "run_tool", "kill_group", "last_error_line", "failure_message"]

#: Lines that report an error, in the logs of the tools fewmul runs: first the tools' own
#: messages (``%Error:``, ``ERROR:``, a compiler's ``error:``), then anything like one (make's
#: ``*** ... Error 1``, a shell's ``not found``).
_ERRORS = (re.compile(r"%Error|\berror:|\bfatal\b", re.I),
           re.compile(r"error|failed|abort|cannot|not found|killed", re.I))


#: Signals whose number a shell reports as exit status 128 + N for a killed child.
_FATAL_SIGNALS = {int(signal.SIGKILL), int(signal.SIGTERM), int(signal.SIGSEGV),
                  int(signal.SIGABRT), int(signal.SIGBUS), int(signal.SIGINT)}


class ToolError(RuntimeError):
    """An external tool failed or was killed; the message names it, its log and its last
    error line."""


def last_error_line(log: Path, limit: int = 200) -> str | None:
    """The last line of ``log`` that reports an error (else its last non-empty line),
    shortened to ``limit`` characters; None for a missing or empty log."""
    try:
        text = Path(log).read_text(errors="replace")
    except OSError:
        return None
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return None
    line = lines[-1]
    for pattern in reversed(_ERRORS):       # the last line of the most specific kind found
        found = [line for line in lines if pattern.search(line)]
        line = found[-1] if found else line
    return line if len(line) <= limit else line[:limit - 3] + "..."


def failure_message(tool: str, returncode: int, log: Path) -> str:
    """``"{tool} failed (exit N); see {log}: {last error line}"``, or ``"was killed (SIGKILL)"``
    for a negative ``returncode``."""
    if returncode > 128 and returncode - 128 in _FATAL_SIGNALS:     # a shell's killed child
        returncode = 128 - returncode
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        what = f"{tool} was killed ({name})"
    else:
        what = f"{tool} failed (exit {returncode})"
    line = last_error_line(log)
    return f"{what}; see {log}" + (f": {line}" if line else "")


def kill_group(proc: subprocess.Popen, grace: float = 2.0) -> None:
    """Terminate the process group of ``proc`` (started with ``start_new_session``): SIGTERM,
    then SIGKILL to whatever is left after ``grace`` seconds."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        pass
    try:                                # children that outlived the leader, or ignored SIGTERM
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()


def run_tool(command: Sequence[str], *, tool: str, log: Path, cwd: Path | None = None,
             env: dict[str, str] | None = None, error: type[Exception] = ToolError,
             append: bool = False) -> None:
    """Run ``command`` in a process group of its own, its output (stdout and stderr) in ``log``.

    Parameters
    ----------
    command : sequence of str
        The program and its arguments.
    tool : str
        The tool's name in messages (``"Verilator"``, ``"nextpnr-ice40"``).
    log : Path
        The log file (rewritten).
    cwd, env
        Working directory and environment of the tool.
    error : type
        The exception raised on failure (a :class:`ToolError` subclass or one taking a message).
    append : bool
        Add to ``log`` instead of rewriting it (several commands of one step).

    Raises
    ------
    error
        When the tool exits with a non-zero status or is killed.
    KeyboardInterrupt
        After killing the tool's process group.
    """
    log = Path(log)
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a" if append else "w") as out:
        try:
            proc = subprocess.Popen(list(command), cwd=cwd, env=env, stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        except OSError as exc:          # the program is missing or not executable
            out.write(f"{exc}\n")
            raise error(f"{tool} could not be started ({exc.strerror or exc}); see {log}") \
                from None
        try:
            returncode = proc.wait()
        except BaseException:
            kill_group(proc)
            raise
    if returncode != 0:
        raise error(failure_message(tool, returncode, log))
