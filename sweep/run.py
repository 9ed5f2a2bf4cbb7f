"""Run the missing points of a sweep: on Dask distributed, or serially in this process.

:func:`run_points` looks at ``OUT/points/`` first: a point whose ``result.json`` matches its
inputs is done, one whose ``error.json`` does has failed (run again with ``retry_failed``),
and only the others become tasks. Each task is :func:`~fewmul.sweep.points.run_point`, which
takes the point's lock, so a point never runs twice at once even when two sweeps, or a
resubmitted task and a worker thought lost, reach it together. A task whose worker dies is
run again by the scheduler on another worker (the dead worker's lock is stale), and a client
that dies loses nothing: every finished point is on disk, and the same command runs the rest.

Without ``scheduler`` a :class:`distributed.LocalCluster` is started with one single-threaded
worker *process* per core (the work is CPU-bound Python and subprocesses, which threads would
serialize); with it, the client connects to that scheduler (``tcp://host:8786``, a
``dask-jobqueue`` cluster's ``scheduler_address``...). The workers must see ``OUT/`` at the
same path (a shared file system) and have fewmul installed.
"""

from __future__ import annotations

import os
import time

import yaml

from fewmul.boards.targets import BOARDS
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .points import DONE, FAILED, MISSING, Point, PointOutcome, point_state, run_point

__all__ = ["SweepRun", "SchedulerError", "run_points", "default_workers", "work_estimate"]


class SchedulerError(RuntimeError):
    """The Dask scheduler given cannot be reached."""


@dataclass
class SweepRun:
    """What one run of a sweep did.

    Attributes
    ----------
    outcomes : dict
        Point id -> :class:`~fewmul.sweep.points.PointOutcome`, every point of the sweep.
    seconds : float
        Wall time of this run.
    workers : int
        Worker processes that ran the points (1 serially).
    interrupted : bool
        Ctrl-C stopped it; the missing points are for the next run.
    """
    outcomes: dict[str, PointOutcome] = field(default_factory=dict)
    seconds: float = 0.0
    workers: int = 1
    interrupted: bool = False

    def count(self, status: str) -> int:
        return sum(o.status == status for o in self.outcomes.values())

    @property
    def ran(self) -> int:
        return sum(o.ran for o in self.outcomes.values())


def default_workers() -> int:
    """One worker process per core this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:          # not on Linux
        return max(1, os.cpu_count() or 1)


class _Bar:
    """A tqdm bar of points done / failed / running."""

    def __init__(self, total: int, done: int, failed: int, enabled: bool, desc: str):
        from tqdm import tqdm
        self.done, self.failed, self.running = done, failed, 0
        self.bar = tqdm(total=total, initial=done + failed, desc=desc, unit="point",
                        disable=not enabled, dynamic_ncols=True)
        self._postfix()

    def _postfix(self) -> None:
        self.bar.set_postfix_str(f"done {self.done}, failed {self.failed}, "
                                 f"running {self.running}", refresh=True)

    def set_running(self, n: int) -> None:
        if n != self.running:
            self.running = n
            self._postfix()

    def finish(self, outcome: PointOutcome) -> None:
        if outcome.status == DONE:
            self.done += 1
        elif outcome.status == FAILED:
            self.failed += 1
            self.bar.write(f"point {outcome.id} failed: {outcome.error}")
        else:
            self.bar.write(f"point {outcome.id} did not finish: {outcome.error}")
        self.bar.update(1 if outcome.status in (DONE, FAILED) else 0)
        self._postfix()

    def close(self) -> None:
        self.bar.close()


def work_estimate(point: Point) -> float:
    """A rough relative cost of ``point``, to hand the longest points out first.

    Place and route dominates a point with a build, and grows with the design: the weights'
    bits over the cycles per inference they are spread on (the width of the datapath); the
    iCE40 flow takes about twice the ECP5 one on the same net. Only the order matters: the
    cluster's last minutes are then spent on the short points, with no long one left alone.
    """
    try:
        layers = yaml.safe_load(point.spec_text).get("layers") or []
        units = [int(layer.get("units") or layer.get("filters") or 1) for layer in layers]
    except (yaml.YAMLError, AttributeError, TypeError, ValueError):
        units = [1]
    weights = sum(a * b for a, b in zip(units, units[1:])) + units[0] * 64
    if not point.stages.build:
        return float(weights) / 1e6
    cycles = max(int(point.options.get("target_cycles") or 1), 1)
    board = BOARDS.get(str(point.options.get("board")))
    family = 2.0 if board is not None and board.family == "ice40" else 1.0
    return 1.0 + family * weights / cycles


def run_points(points: list[Point], out: str | Path, *, scheduler: str | None = None,
               workers: int | None = None, serial: bool = False, retry_failed: bool = False,
               progress: bool = True, desc: str = "sweep",
               on_outcome: Callable[[PointOutcome], None] | None = None) -> SweepRun:
    """Run the points of ``points`` that are not finished in ``out/points/``.

    Parameters
    ----------
    points : list of Point
    out : str or Path
        The sweep folder; point ``p`` goes to ``out/points/<p.id>/``.
    scheduler : str, optional
        Address of a running Dask scheduler; default: a local cluster.
    workers : int, optional
        Worker processes of the local cluster (default: one per core).
    serial : bool
        Run the points one after the other in this process, without Dask.
    retry_failed : bool
        Run the points that failed before again.
    progress : bool
        Show the progress bar.
    on_outcome : callable, optional
        Called with each point's outcome as it arrives.

    Returns
    -------
    SweepRun

    Raises
    ------
    SchedulerError
        When ``scheduler`` cannot be reached.

    Notes
    -----
    The local cluster's workers are new Python processes that import the calling script's
    main module: a script that calls this must do so under ``if __name__ == "__main__":``.
    """
    t0 = time.perf_counter()
    points_dir = Path(out).resolve() / "points"
    points_dir.mkdir(parents=True, exist_ok=True)
    ids = [p.id for p in points]
    if len(set(ids)) != len(ids):
        raise ValueError("two points of the sweep have the same id (the same axis values)")
    run = SweepRun()
    todo = []
    for p in points:
        status, record = point_state(p, points_dir)
        if status == DONE or (status == FAILED and not retry_failed):
            run.outcomes[p.id] = PointOutcome(p.id, status,
                                              error=record.get("message") if record else None)
        else:
            todo.append(p)
    bar = _Bar(len(points), run.count(DONE), run.count(FAILED), progress, desc)

    def record(outcome: PointOutcome) -> None:
        run.outcomes[outcome.id] = outcome
        bar.finish(outcome)
        if on_outcome is not None:
            on_outcome(outcome)

    try:
        if not todo:
            pass
        elif serial:
            for p in todo:
                bar.set_running(1)
                record(run_point(p, points_dir, retry_failed=retry_failed))
            bar.set_running(0)
        else:
            _run_dask(todo, points_dir, scheduler, workers, retry_failed, bar, record, run)
    except KeyboardInterrupt:
        run.interrupted = True
    finally:
        bar.close()
    for p in points:
        run.outcomes.setdefault(p.id, PointOutcome(p.id, MISSING, error="not run"))
    run.seconds = time.perf_counter() - t0
    return run


def _run_dask(todo: list[Point], points_dir: Path, scheduler: str | None,
              workers: int | None, retry_failed: bool, bar: _Bar,
              record: Callable[[PointOutcome], None], run: SweepRun) -> None:
    """The points of ``todo`` as Dask tasks; ``run.workers``: the worker threads."""
    import dask
    from distributed import Client, LocalCluster, wait
    from distributed.client import FIRST_COMPLETED

    cluster = None
    # a point is minutes of work: no work stealing mid-point, no time limit on a silent worker
    with dask.config.set({"distributed.scheduler.work-stealing": False,
                          "distributed.logging.distributed": "error"}):
        if scheduler is None:
            n = workers or default_workers()
            # memory_limit 0: the nanny must not pause or restart a worker for the memory of
            # a place and route it waits for
            cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                   dashboard_address=":0", silence_logs=40, memory_limit=0)
            client = Client(cluster)
        else:
            try:
                client = Client(scheduler, timeout="30s")
            except (OSError, TimeoutError) as exc:
                raise SchedulerError(f"cannot reach the Dask scheduler at {scheduler}: {exc}") \
                    from None
        try:
            nthreads = run.workers = sum(client.nthreads().values()) or 1
            # the longest points first (a higher priority runs earlier), so that no long
            # point starts last and leaves the other workers idle
            futures = {client.submit(run_point, p, str(points_dir), retry_failed=retry_failed,
                                     key=f"point-{p.id}", pure=False, retries=2,
                                     priority=work_estimate(p)): p
                       for p in todo}
            pending = set(futures)
            while pending:
                bar.set_running(min(len(pending), sum(client.nthreads().values()) or nthreads))
                try:
                    done, pending = wait(pending, timeout=1.0, return_when=FIRST_COMPLETED)
                except TimeoutError:
                    continue
                for future in done:
                    p = futures[future]
                    try:
                        outcome = future.result()
                    except Exception as exc:      # the task itself was lost (KilledWorker, ...)
                        outcome = PointOutcome(p.id, MISSING,
                                               error=f"{type(exc).__name__}: {exc}")
                    record(outcome)
        finally:
            client.close()
            if cluster is not None:
                cluster.close()

