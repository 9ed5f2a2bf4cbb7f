"""The records of the fast training harness and the pipe they come through.

The harness of :mod:`fewmul.sim.train_harness` writes fixed-size records of
little-endian 32-bit words to its stdout; the first word is the record's kind:

* ``RESULT``: sample, prediction, latency, rows written, the 64-bit digest of
  the on-chip weights (two words, low first) and the cycle count;
* ``WRITE`` (detail mode only): sample, layer, row and the row's weights as
  16-bit integers;
* ``BAD_WRITE``: sample, layer and row of a write outside the net;
* ``STRAY_RESULT``: a result before its sample was taken (the run stops);
* ``END``: results, samples sent, flags (1: timeout, 2: stray result), cycles,
  simulated and CPU nanoseconds (64-bit each).

A record is :data:`RESULT_WORDS` long in digest mode, as long as a ``WRITE``
record of the widest row in detail mode. :func:`run_harness` writes the
harness's input files, starts it and hands the records to a sink as they arrive.
"""

from __future__ import annotations

import fcntl
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator, Sequence

import numpy as np

from fewmul.compiler.tools import failure_message, kill_group

from .runner import SimulationError

if TYPE_CHECKING:
    from .train_harness import TrainHarness
    from .train_requests import Requests
    from .train_runner import TrainingBuild

__all__ = ["MODES", "WRITE", "RESULT", "BAD_WRITE", "STRAY_RESULT", "END", "RESULT_WORDS",
           "DIGEST_SEED", "SNAPSHOTS", "digest_coefficients", "digest", "Columns",
           "RecordStream", "run_harness", "read_snapshots"]

#: Record modes of the harness.
MODES = ("digest", "detail")
#: Record kinds in the harness's output.
WRITE, RESULT, BAD_WRITE, STRAY_RESULT, END = 1, 2, 3, 4, 5
#: 32-bit words of a record in digest mode (a detail record is at least as long).
RESULT_WORDS = 10
#: Seed of the digest coefficients.
DIGEST_SEED = 0x5EED_D16E
#: The file (in ``BUILD/fast``) of the harness's snapshots of the on-chip weights.
SNAPSHOTS = "train_snapshots.bin"


def digest_coefficients(shapes) -> list[np.ndarray]:
    """Odd random 64-bit coefficients, one per weight, layer by layer."""
    rng = np.random.default_rng(DIGEST_SEED)
    return [rng.integers(0, 2 ** 63, size=shape, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
            for shape in shapes]


def digest(weights, coefficients) -> int:
    """``sum(w * R) mod 2**64`` over every layer."""
    total = 0
    for w, r in zip(weights, coefficients):
        total += int((np.asarray(w, np.int64).view(np.uint64) * r).sum(dtype=np.uint64))
    return total & ((1 << 64) - 1)


def _u64(words: np.ndarray) -> np.ndarray:
    """Pairs of 32-bit words (low word first, along the last axis) as 64-bit integers."""
    return np.ascontiguousarray(words).view("<u8")


@dataclass
class Columns:
    """The fields of a chunk of records, as lists (one item per record).

    ``a`` and ``b`` are words 2 and 3 (layer and row of a write, prediction and latency of a
    result), ``c`` word 4 (rows written before a result); ``rows`` are the written rows in
    detail mode (None in digest mode).
    """
    kind: list[int]
    sample: list[int]
    a: list[int]
    b: list[int]
    c: list[int]
    digest: list[int]
    rows: np.ndarray | None

    @classmethod
    def of(cls, chunk: np.ndarray, mode: str) -> "Columns":
        words = chunk.view("<u4")
        return cls(chunk[:, 0].tolist(), chunk[:, 1].tolist(), chunk[:, 2].tolist(),
                   chunk[:, 3].tolist(), words[:, 4].tolist(), _u64(words[:, 5:7])[:, 0].tolist(),
                   chunk[:, 4:].view("<i2") if mode == "detail" else None)


def _end(record: np.ndarray) -> dict:
    """The ``END`` record as a dict."""
    results, sent, flags = record[1:4].view("<u4").tolist()
    cycles, ns, cpu_ns = _u64(record[4:RESULT_WORDS]).tolist()
    return {"results": results, "sent": sent, "timeout": bool(flags & 1),
            "stray": bool(flags & 2), "cycles": cycles, "seconds": ns * 1e-9,
            "cpu_s": cpu_ns * 1e-9}


class RecordStream:
    """The harness process and its records, read as they come."""

    def __init__(self, exe: Path, args: list[str], cwd: Path, log: Path, rec_words: int):
        self.rec_bytes = rec_words * 4
        self.rec_words = rec_words
        self.log = log
        self._log = open(log, "wb")
        try:
            self.proc = subprocess.Popen([str(exe), *args], cwd=cwd, stdout=subprocess.PIPE,
                                         stderr=self._log, start_new_session=True)
        except OSError as exc:
            self._log.close()
            raise SimulationError(f"the training harness could not be started "
                                  f"({exc.strerror or exc}); see {log}") from None
        try:        # a larger pipe lets the simulator run further ahead of the replay
            fcntl.fcntl(self.proc.stdout.fileno(), getattr(fcntl, "F_SETPIPE_SZ", 1031), 1 << 20)
        except OSError:
            pass
        self.wait_s = 0.0

    def chunks(self) -> Iterator[np.ndarray]:
        """Arrays of whole records, ``(count, words)`` of int32, as they arrive."""
        pending = b""
        out = self.proc.stdout
        while True:
            t = time.perf_counter()
            chunk = out.read1(1 << 20)
            self.wait_s += time.perf_counter() - t
            if not chunk:
                break
            data = pending + chunk
            whole = len(data) // self.rec_bytes * self.rec_bytes
            pending = data[whole:]
            if whole:
                yield np.frombuffer(data[:whole], "<i4").reshape(-1, self.rec_words)

    def close(self, *, kill: bool = False) -> None:
        if kill and self.proc.poll() is None:
            kill_group(self.proc)
        self.proc.stdout.close()
        code = self.proc.wait()
        self._log.close()
        if code != 0 and not kill:
            raise SimulationError(failure_message("the training harness", code, self.log))


def _flat(arrays, dtype: str) -> bytes:
    """``arrays`` one after the other, flattened, as ``dtype``."""
    return np.concatenate([np.asarray(a).ravel() for a in arrays]).astype(dtype).tobytes()


def run_harness(exe: Path, build: TrainingBuild, requests: Requests, spec: TrainHarness,
                mode: str, coefficients: list[np.ndarray], sink: Callable[[np.ndarray], bool],
                work: Path, max_wait: int) -> dict | None:
    """Run the harness on ``requests``; every chunk of records goes to ``sink``, which returns
    False to stop the run. Returns the harness's end record as a dict (None if stopped)."""
    inputs, snaps = work / "train_samples.bin", work / SNAPSHOTS
    init, coef = work / "train_init.bin", work / "train_digest.bin"
    inputs.write_bytes(np.ascontiguousarray(requests.words, "<u4").tobytes())
    init.write_bytes(_flat(build.weights, "<i2"))
    coef.write_bytes(_flat(coefficients, "<u8"))
    snaps.unlink(missing_ok=True)
    stream = RecordStream(exe, [str(inputs), str(len(requests.words)), str(init), str(coef),
                                str(snaps), mode, str(max_wait)],
                          cwd=build.path, log=work / "train_run.log",
                          rec_words=spec.record_words(mode))
    end = None
    stopped = False
    try:
        for chunk in stream.chunks():
            if chunk[-1, 0] == END:
                end = _end(chunk[-1])
                chunk = chunk[:-1]
            if len(chunk) and not sink(chunk):
                stopped = True
                break
    except BaseException:
        stream.close(kill=True)
        raise
    stream.close(kill=stopped)
    if end is None and not stopped:
        raise SimulationError(f"the training harness ended without its last record; see "
                              f"{stream.log}")
    if end is not None:
        end["wait_s"] = stream.wait_s
    return end


def read_snapshots(work: Path, shapes: Sequence[tuple[int, int]]) -> list[list[np.ndarray]]:
    """The snapshots the harness wrote to ``work``, each as its layers' weights (int64)."""
    path = work / SNAPSHOTS
    total = sum(rows * cols for rows, cols in shapes)
    flat = np.fromfile(path, "<i2") if path.exists() else np.zeros(0, np.int16)
    snapshots = []
    for row in flat[:len(flat) // total * total].reshape(-1, total):
        weights, start = [], 0
        for rows, cols in shapes:
            weights.append(row[start:start + rows * cols].reshape(rows, cols).astype(np.int64))
            start += rows * cols
        snapshots.append(weights)
    return snapshots
