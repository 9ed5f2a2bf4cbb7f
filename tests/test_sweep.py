"""``fewmul sweep``: the sweep file, points, locks, failures, resuming, and a Dask cluster whose
worker and client are killed mid-sweep."""

from __future__ import annotations

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from fewmul.cli import main
from fewmul.compiler.spec import SpecError, parse_spec
from fewmul.sweep.lock import PointLock, is_stale, lock_owner
from fewmul.sweep.points import DONE, FAILED, MISSING, Point, Stages, point_state, run_point
from fewmul.sweep.results import collect, pareto_front, write_csv
from fewmul.sweep.run import run_points
from fewmul.sweep.spec import load_sweep, parse_sweep

#: The installed command, beside this Python.
FEWMUL = [str(Path(sys.executable).with_name("fewmul"))]


def _sweep(tmp_path: Path, text: str, name: str = "s.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


SMALL = """\
base: digits-bnn.yaml
axes:
  layers.0.units: [16, 12]
  layers.1.units: [16]
  hardware.pe: [[8, 1, 1]]
stages: {train: false, compile: false}
"""


def test_points_are_the_product_of_the_axes_with_stable_ids(tmp_path):
    text = """\
base: digits-bnn.yaml
axes:
  layers.1.units: [16, 32]
  layers[0].weights: [binary, ternary]
  train.epochs: {from: 1, to: 5, step: 2}
  target_cycles: [16]
stages: {sim: 3}
"""
    spec = parse_sweep(text, "s.yaml", tmp_path)
    points = spec.points()
    assert len(points) == 2 * 2 * 3
    assert [a.values for a in spec.axes][2] == [1, 3, 5]
    assert len({p.id for p in points}) == len(points)
    assert [p.id for p in parse_sweep(text, "s.yaml", tmp_path).points()] == [p.id for p in points]
    last = points[-1]
    assert last.values == {"layers.1.units": 32, "layers[0].weights": "ternary",
                           "train.epochs": 5, "target_cycles": 16}
    net = parse_spec(last.spec_text)
    assert (net.layers[1].units, net.layers[0].weights, net.train.epochs) == (32, "ternary", 5)
    assert net.layers[0].units == 256          # the base spec's, untouched
    assert last.options == {"target_cycles": 16}
    assert last.stages.sim == 3 and last.stages.compiles
    assert points[0].fingerprint() != last.fingerprint()


def test_a_bad_sweep_file_names_file_line_and_column(tmp_path, capsys):
    path = _sweep(tmp_path, """\
base: digits-bnn.yaml
axes:
  layers.0.unitz: [16]
  layers.1.units: [16, abc]
  train.epochs: {from: 3, to: 1}
  board: [ice40]
stages: {build: true, bogus: 1}
""")
    with pytest.raises(SpecError) as info:
        load_sweep(path)
    text = str(info.value).splitlines()
    assert text[0] == f"{path}:3:3: axes.layers.0.unitz: no such key in the base spec; did you " \
                      f"mean 'layers.0.units'?"
    assert f"{path}:4:24: axes.layers.1.units[1]: layers[1].units: expected a positive " \
           f"integer, got \"abc\"" in text
    assert any(line.startswith(f"{path}:5:17: axes.train.epochs: expected a range with from "
                               f"<= to") for line in text)
    assert any(line.startswith(f"{path}:6:11: axes.board[0]: expected one of") for line in text)
    assert any(line.startswith(f"{path}:7:23: stages.bogus: unknown key") for line in text)
    assert main(["sweep", str(path), "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "axes.layers.0.unitz" in err
    assert not (tmp_path / "out").exists()


def test_a_build_needs_a_board_axis(tmp_path):
    with pytest.raises(SpecError, match=r"s.yaml:3:\d+: stages.build: a build needs a board"):
        parse_sweep("base: digits-bnn.yaml\naxes: {train.epochs: [1]}\nstages: {build: true}\n",
                    "s.yaml", tmp_path)


def test_the_lock_is_exclusive_and_stale_locks_are_broken(tmp_path):
    first, second = PointLock(tmp_path / "p"), PointLock(tmp_path / "p")
    assert first.try_acquire()
    owner = lock_owner(first.path)
    assert owner["pid"] == os.getpid() and owner["host"] == socket.gethostname()
    assert not second.try_acquire()          # held by a live process
    first.release()
    assert not first.path.exists()
    # a lock of a process of this host that is gone
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    first.path.write_text(json.dumps({"host": socket.gethostname(), "pid": dead.pid}))
    assert is_stale(first.path, lock_owner(first.path))
    assert second.try_acquire()
    assert lock_owner(second.path)["pid"] == os.getpid()
    second.release()
    # another host's lock: live while it is touched, stale when it is not
    first.path.write_text(json.dumps({"host": "elsewhere", "pid": 1}))
    assert not is_stale(first.path, lock_owner(first.path))
    old = time.time() - 3600
    os.utime(first.path, (old, old))
    assert is_stale(first.path, lock_owner(first.path))


def test_a_failing_point_is_recorded_and_the_sweep_goes_on(tmp_path, capsys):
    path = _sweep(tmp_path, SMALL)
    out = tmp_path / "out"
    assert main(["sweep", str(path), "-o", str(out), "--serial", "-q"]) == 0
    stdout = capsys.readouterr().out
    assert "1 done, 1 failed, 0 missing (2 run now serially" in stdout
    points = load_sweep(path).points()
    good, bad = points                      # pe 8 divides 16 units, not 12
    assert point_state(good, out / "points")[0] == DONE
    status, record = point_state(bad, out / "points")
    assert status == FAILED, record
    assert (record["stage"], record["kind"]) == ("spec", "spec")
    assert "a divisor of layers[0].units = 12" in record["message"]
    assert record["message"].startswith(str(out / "points" / bad.id / "spec.yaml"))
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert [r["status"] for r in rows] == ["done", "failed"]
    assert rows[1]["error_kind"] == "spec" and rows[1]["layers.0.units"] == "12"
    assert not list((out / "points").glob("*/lock"))
    # again: nothing runs; with --retry-failed the failed point runs (and fails) again
    assert main(["sweep", str(path), "-o", str(out), "--serial", "-q"]) == 0
    assert "(0 run now" in capsys.readouterr().out
    assert main(["sweep", str(path), "-o", str(out), "--serial", "-q", "--retry-failed"]) == 0
    assert "1 done, 1 failed, 0 missing (1 run now" in capsys.readouterr().out
    assert main(["sweep", str(path), "-o", str(out), "--list"]) == 0
    listing = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in listing] == ["done", "failed"]


def test_changed_inputs_make_a_point_missing_and_a_held_point_is_not_run(tmp_path):
    spec = parse_sweep(SMALL.replace("[16, 12]", "[16]"), "s.yaml", tmp_path)
    (point,) = spec.points()
    out = tmp_path / "out"
    outcome = run_point(point, out / "points")
    assert (outcome.status, outcome.ran) == (DONE, True)
    assert run_point(point, out / "points").ran is False
    point.spec_text = point.spec_text.replace("epochs: 60", "epochs: 61")   # a new base spec
    assert point_state(point, out / "points")[0] == MISSING
    lock = PointLock(out / "points" / point.id)
    assert lock.try_acquire()
    try:
        held = run_point(point, out / "points", wait=False)
        assert (held.status, held.ran) == (MISSING, False)
    finally:
        lock.release()
    assert run_point(point, out / "points").status == DONE


def test_pareto_front_and_csv(tmp_path):
    assert pareto_front([(1, 0.5), (2, 0.4), (3, 0.9), (3, 0.8), (4, 0.9)]) == [(1, 0.5), (3, 0.9)]
    rows = [{"id": "a", "status": "done", "x": 1, "lut": 10, "test_acc": 0.5, "curve": [0.1]},
            {"id": "b", "status": "failed", "x": 2, "error": "line one\nline two",
             "error_kind": "tool"}]
    write_csv(rows, ["x"], tmp_path / "r.csv")
    got = list(csv.DictReader((tmp_path / "r.csv").open()))
    assert list(got[0]) == ["id", "status", "x", "test_acc", "lut", "error_kind", "error"]
    assert got[1]["error"] == "line one" and got[0]["lut"] == "10"


def _wait_for(predicate, timeout: float, what: str):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        found = predicate()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_killed_worker_and_killed_client_lose_nothing(tmp_path):
    """A local cluster of 2 workers: one is killed while it runs a point, then the client and
    its cluster; the same command finishes the sweep without running a finished point again."""
    path = _sweep(tmp_path, """\
base: digits-bnn.yaml
axes:
  layers.0.units: [16, 32]
  layers.1.units: [16, 24]
  train.epochs: [1]
  target_cycles: [64]
stages: {train: true, compile: true}
""")
    out = tmp_path / "out"
    cmd = [*FEWMUL, "sweep", str(path), "-o", str(out), "--workers", "2", "-q"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        lock = _wait_for(lambda: next(iter((out / "points").glob("*/lock")), None)
                         if (out / "points").exists() else None, 120, "a point to start")
        owner = _wait_for(lambda: lock_owner(lock), 10, "the lock's owner")
        assert owner["pid"] != proc.pid                  # a worker process, not the client
        os.kill(owner["pid"], signal.SIGKILL)
        _wait_for(lambda: list((out / "points").glob("*/result.json")), 120, "a finished point")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)              # the client and its cluster
        proc.wait()
    finished = {p.parent.name: (p.stat().st_mtime_ns, p.read_text())
                for p in (out / "points").glob("*/result.json")}
    assert 1 <= len(finished) < 4
    rerun = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert f"4 done, 0 failed, 0 missing ({4 - len(finished)} run now on 2 workers" in rerun.stdout
    for name, (mtime, text) in finished.items():       # not run again, not lost
        result = out / "points" / name / "result.json"
        assert (result.stat().st_mtime_ns, result.read_text()) == (mtime, text)
    assert not list((out / "points").glob("*/lock"))
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert len(rows) == 4 and all(r["status"] == "done" for r in rows)
    assert all(0 < float(r["test_acc"]) <= 1 and int(r["cycles_per_inference"]) <= 64
               for r in rows)
    for plot in ("pareto.png", "speed.png", "epochs.png"):
        assert (out / plot).read_bytes()[:4] == b"\x89PNG"
    # the figures are those of the same points run serially, in one process
    serial = run_points(load_sweep(path).points()[:1], tmp_path / "serial", serial=True,
                        progress=False)
    assert serial.count(DONE) == 1
    again = {r["id"]: r for r in collect(load_sweep(path).points()[:1], tmp_path / "serial")}
    for r in rows[:1]:
        assert float(r["test_acc"]) == again[r["id"]]["test_acc"]
        assert float(r["est_lut"]) == again[r["id"]]["est_lut"]


ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("page, base_dir", [("README.md", ROOT), ("docs/sweeps.md", ROOT / "docs")])
def test_the_documented_sweep_file_is_valid(page, base_dir):
    text = (ROOT / page).read_text()
    block = next(b.split("```", 1)[0] for b in text.split("```yaml\n")[1:] if "axes:" in b)
    spec = parse_sweep(block, page, base_dir)
    assert len(spec.points()) == 3 * 2 * 3 * 2 * 2
    assert spec.stages.build and {a.key for a in spec.axes} >= {"board", "target_cycles"}


def test_a_design_that_does_not_fit_is_a_failed_point_with_its_figures(tmp_path):
    """The planner's estimate refuses the digits demo at 16 cycles on the iCE40UP5K before any
    synthesis: the point fails with the resource and the folding that would fit."""
    path = _sweep(tmp_path, "base: digits-bnn.yaml\naxes: {target_cycles: [16], "
                            "board: [icebreaker]}\nstages: {train: false, build: true}\n")
    out = tmp_path / "out"
    run = run_points(load_sweep(path).points(), out, serial=True, progress=False)
    assert (run.count(FAILED), run.ran) == (1, 1)
    (row,) = collect(load_sweep(path).points(), out)
    assert (row["status"], row["error_stage"], row["error_kind"]) == ("failed", "build",
                                                                      "does not fit")
    assert row["cycles_per_inference"] == 16 and row["est_lut"] > 5280
    record = json.loads(next((out / "points").glob("*/error.json")).read_text())
    assert record["fit"]["resource"] == "lut" and record["fit"]["available"] == 5280
    assert "--pe" in record["fit"]["suggestion"]


@pytest.mark.slow
def test_a_board_build_point_reports_the_placed_design(tmp_path):
    """One place and route of a small net on the iCE40UP5K, as a sweep point on the local
    cluster: the placed figures reach results.csv and the plots."""
    path = _sweep(tmp_path, """\
base: digits-bnn.yaml
axes:
  layers: [[{units: 16}, {units: 10, act: none}]]
  train.epochs: [2]
  target_cycles: [64]
  board: [icebreaker]
stages: {train: true, build: true}
""")
    spec = load_sweep(path)
    assert parse_spec(spec.points()[0].spec_text).layers[0].units == 16
    out = tmp_path / "out"
    assert main(["sweep", str(path), "-o", str(out), "--workers", "1", "-q"]) == 0
    (row,) = csv.DictReader((out / "results.csv").open())
    assert row["status"] == "done", row
    assert 0 < float(row["lut"]) <= 5280 and float(row["fmax_mhz"]) > 0
    assert float(row["inferences_per_s"]) > 0 and int(row["cycles_per_inference"]) <= 64
    assert (out / "pareto.png").exists() and (out / "speed.png").exists()


def test_a_point_asked_for_twice_at_once_runs_once(tmp_path):
    """Two runners of the same point (two sweeps over one folder, or a task given again to
    another worker): the second waits on the lock and takes the first's result."""
    import threading
    (point,) = parse_sweep(SMALL.replace("[16, 12]", "[16]"), "s.yaml", tmp_path).points()
    outcomes = []
    threads = [threading.Thread(target=lambda: outcomes.append(run_point(point, tmp_path)))
               for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(o.ran for o in outcomes) == [False, True]
    assert all(o.status == DONE for o in outcomes)


def test_work_estimate_puts_the_biggest_builds_first():
    """The cluster hands out the longest points first: a wider net, fewer cycles per inference
    and the iCE40 flow each make a point's build longer."""
    from fewmul.sweep.run import work_estimate

    def point(units, cycles, board, build=True):
        spec = BASE_SPEC_FOR_ESTIMATE.format(units=units)
        return Point(id=f"{units}-{cycles}-{board}", values={}, spec_text=spec,
                     options={"target_cycles": cycles, "board": board},
                     stages=Stages(build=build))

    order = sorted([point(8, 64, "ulx3s"), point(24, 32, "icebreaker"), point(24, 64, "ulx3s"),
                    point(24, 32, "icebreaker", build=False), point(8, 32, "icebreaker")],
                   key=work_estimate, reverse=True)
    assert [p.id for p in order[:3]] == ["24-32-icebreaker", "8-32-icebreaker", "24-64-ulx3s"]
    assert order[-1].stages.build is False


BASE_SPEC_FOR_ESTIMATE = """\
name: est
data: {{set: digits}}
layers:
  - {{units: {units}, weights: binary, act: sign}}
  - {{units: 10, weights: binary, act: none}}
"""
