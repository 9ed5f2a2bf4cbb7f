"""The golden model's replay of a run of the fast training harness, and its checks.

:func:`replay_run` starts the harness (:func:`fewmul.sim.train_records.run_harness`)
and, as its records arrive, steps the golden model (:class:`Replay`) on the
same samples: after every step it compares the prediction and the on-chip
weights (their digest, or in detail mode every weight) with the golden
model's. Afterwards it measures the test accuracy of the harness's weight
snapshots and returns the result dict.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import numpy as np

from fewmul.compiler.folders import BuildFolder

from .runner import SimulationError
from .train_harness import TrainHarness
from .train_records import (BAD_WRITE, RESULT, STRAY_RESULT, WRITE, Columns, digest,
                            digest_coefficients, read_snapshots, run_harness)
from .train_requests import Requests
from .train_runner import TrainingBuild

__all__ = ["Replay", "replay_run"]


def _infer(net, q) -> int:
    """The golden model's answer to one inference request."""
    if hasattr(net, "infer"):
        return int(net.infer(q))
    return int(net.predict(np.asarray(q)[None])[0])


def _int64(weights) -> list[np.ndarray]:
    """A copy of the layers' ``weights`` as int64 arrays."""
    return [np.array(w, np.int64) for w in weights]


def _differences(hw: list[np.ndarray], golden: list[np.ndarray]) -> dict | None:
    """Where the on-chip weights first differ from the golden model's, or None."""
    for layer, (mine, want) in enumerate(zip(hw, golden)):
        if not np.array_equal(mine, want):
            rows, cols = np.nonzero(mine != want)
            row = int(rows[0])
            columns = cols[rows == row]
            return {"layer": layer, "name": f"w{layer + 1}", "count": int(len(rows)),
                    "rows": int(len(np.unique(rows))), "row": row,
                    "row_count": int(len(columns)),
                    "columns": columns[:16].tolist(), "got": mine[row, columns[:16]].tolist(),
                    "expected": want[row, columns[:16]].tolist()}
    return None


def _describe(where: dict) -> str:
    """``"w1 differs at 3 weights, first [0, 5]: got 2, expected 3 (2 rows; row 0: ...)"``."""
    more = ", ..." if where["row_count"] > len(where["columns"]) else ""
    return (f"{where['name']} differs at {where['count']} weights, first [{where['row']}, "
            f"{where['columns'][0]}]: got {where['got'][0]}, expected {where['expected'][0]} "
            f"({where['rows']} rows; row {where['row']}: columns {where['columns']}{more}, got "
            f"{where['got']}, expected {where['expected']})")


def _rate(count: int, seconds: float | None) -> float | None:
    """``count`` per second, or None without a time."""
    return count / seconds if seconds else None


class Replay:
    """Steps the golden model on each result and compares; collects the testbench's result."""

    def __init__(self, build: TrainingBuild, data, requests: Requests, mode: str, golden,
                 coefficients: list[np.ndarray]):
        self.build, self.data, self.requests, self.mode = build, data, requests, mode
        self.golden = golden if golden is not None else build.initial_net()
        self.coefficients = coefficients
        self.hw = _int64(build.weights)
        self.result = {"steps": int(requests.train.sum()), "steps_done": 0,
                       "weight_mismatch_steps": 0, "prediction_mismatch_steps": 0,
                       "first_mismatch": None, "mismatch": None, "error": None,
                       "inference_requests": 0, "inference_mismatches": 0}
        self.correct = 0
        self.latencies: list[int] = []
        self.inference_latencies: list[int] = []
        self.results = 0
        self.first_bad = None          # request index of the first mismatch
        self.snapshot_steps: list[int] = []
        self.online: dict[int, float] = {}
        self.busy_s = 0.0              # wall and CPU seconds spent in take()
        self.busy_cpu_s = 0.0

    def take(self, chunk: np.ndarray) -> bool:
        """Replay a chunk of the harness's records; False once the run may stop (a mismatch
        in digest mode, to be located in detail mode)."""
        t, c0 = time.perf_counter(), time.process_time()
        col = Columns.of(chunk, self.mode)
        for k, kind in enumerate(col.kind):
            if kind == WRITE:
                self.write(col.sample[k], col.a[k], col.b[k], col.rows[k])
            elif kind == RESULT:
                if col.sample[k] != self.results:
                    raise SimulationError(f"the training harness sent result {col.sample[k]} "
                                          f"where {self.results} was due")
                self.outcome(col.sample[k], col.a[k], col.b[k], col.c[k], col.digest[k])
            elif kind == BAD_WRITE:
                self.bad_write(col.sample[k], col.a[k], col.b[k])
            elif kind == STRAY_RESULT:
                self.result["error"] = (f"{self.requests.where(col.sample[k])}: the design "
                                        f"offered a result before it took the sample")
        self.busy_s += time.perf_counter() - t
        self.busy_cpu_s += time.process_time() - c0
        return self.mode == "detail" or self.first_bad is None

    def mismatch(self, i: int, problems: list[str], detail: dict | None = None,
                 weights: bool = False) -> None:
        if weights:
            self.result["weight_mismatch_steps"] += 1
        if self.first_bad is None:
            self.first_bad = i
            self.result["first_mismatch"] = f"{self.requests.where(i)}: " + "; ".join(problems)
            if detail is not None or self.result["mismatch"] is None:
                self.result["mismatch"] = {"step": int(self.requests.step[i]),
                                           "train": bool(self.requests.train[i]), **(detail or {})}

    def write(self, i: int, layer: int, row: int, weights: np.ndarray) -> None:
        target = self.hw[layer]
        target[row] = weights[:target.shape[1]]

    def bad_write(self, i: int, layer: int, row: int) -> None:
        self.mismatch(i, [f"a row was written to layer {layer} row {row}, which the net does "
                          f"not have"], weights=True)

    def outcome(self, i: int, prediction: int, latency: int, writes: int,
                weight_digest: int) -> None:
        """The result of request ``i``: step the golden model and compare."""
        req, golden, data = self.requests, self.golden, self.data
        problems, detail, weight_bad = [], None, False
        if req.train[i]:
            index = int(req.index[i])
            q, label = data.train.x[index], int(data.train.y[index])
            trace = golden.step(q, label)
            want = int(trace.prediction)
            self.correct += prediction == label
            self.latencies.append(latency)
        else:
            want = _infer(golden, data.test.x[int(req.index[i])])
            self.result["inference_requests"] += 1
            self.inference_latencies.append(latency)
            if writes:
                problems.append(f"an inference request wrote {writes} weight rows")
                weight_bad = True
        if prediction != want:
            self.result["prediction_mismatch_steps"] += 1
            if not req.train[i]:
                self.result["inference_mismatches"] += 1
            problems.append(f"prediction {prediction}, golden model says {want}")
        weights = golden.weights
        if self.mode == "detail":
            detail = _differences(self.hw, weights)
            if detail is not None:
                problems.append(_describe(detail))
                weight_bad = True
                self.hw = _int64(weights)     # resynchronise
        elif weight_digest != digest(weights, self.coefficients):
            problems.append("the digest of the on-chip weights differs from the golden model's")
            weight_bad = True
        if problems:
            self.mismatch(i, problems, detail, weights=weight_bad)
        if req.train[i]:
            step = int(req.step[i])
            self.result["steps_done"] = step
            if req.words[i, 0] & 1:
                self.snapshot_steps.append(step)
                self.online[step] = self.correct / step
        self.results += 1

    def finish(self, snapshots: list[list[np.ndarray]]) -> dict:
        """The curve (test accuracy of each snapshot's weights), the accuracies and the
        latencies."""
        result, test = self.result, self.data.test

        def accuracy(weights) -> float:
            return self.build.net_with(weights).accuracy(test.x, test.y)

        curve = [{"step": 0, "online_acc": None, "test_acc": accuracy(self.build.weights)}]
        for weights, step in zip(snapshots, self.snapshot_steps):
            curve.append({"step": step, "online_acc": self.online[step],
                          "test_acc": accuracy(weights)})
        result["curve"] = curve
        result["final_test_acc"] = curve[-1]["test_acc"]
        result["online_acc"] = self.correct / max(result["steps_done"], 1)
        result["latency_cycles"] = max(self.latencies) if self.latencies else None
        result["inference_latency_cycles"] = (max(self.inference_latencies)
                                              if self.inference_latencies else None)
        return result


def replay_run(folder: BuildFolder, build: TrainingBuild, data, exe: Path, spec: TrainHarness,
               requests: Requests, mode: str, golden: Callable[[], object] | None) -> dict:
    """One run of the harness on ``requests`` with its replay; the result dict."""
    t0 = time.perf_counter()
    coefficients = digest_coefficients(spec.shapes)
    replay = Replay(build, data, requests, mode, golden() if golden is not None else None,
                    coefficients)
    max_wait = 8 * max(build.latency, build.cycles_per_step) + 100
    end = run_harness(exe, build, requests, spec, mode, coefficients, replay.take,
                      folder.fast_dir, max_wait)
    result = replay.result
    if end is not None and end["timeout"] and result["error"] is None:
        result["error"] = (f"{requests.where(min(replay.results, len(requests.train) - 1))}: "
                           f"no result within {max_wait} cycles")
    replay.finish(read_snapshots(folder.fast_dir, spec.shapes))
    done = result["steps_done"]
    simulator_s = end["seconds"] if end else None
    simulator_cpu_s = end["cpu_s"] if end else None
    result.update({
        "mode": mode, "wall_s": time.perf_counter() - t0,
        "cycles": end["cycles"] if end else None,
        "simulator_s": simulator_s,
        "simulator_steps_per_s": _rate(done, simulator_s),
        "simulator_cpu_s": simulator_cpu_s,
        "simulator_cpu_steps_per_s": _rate(done, simulator_cpu_s),
        "replay_s": replay.busy_s,
        "replay_steps_per_s": _rate(done, replay.busy_s),
        "replay_cpu_s": replay.busy_cpu_s,
        "replay_cpu_steps_per_s": _rate(done, replay.busy_cpu_s),
    })
    result["steps_per_s"] = _rate(done, result["wall_s"])
    return result
