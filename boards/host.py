"""``fewmul run``: send test images to a board over its serial port and check the answers.

The driver speaks :mod:`fewmul.boards.protocol` through any object with
pyserial's ``write(bytes)`` and ``read(n)`` (returning fewer bytes on a
timeout), so it runs against a real port or a stand-in; it opens the board folder and reads
the board's frames with :mod:`fewmul.boards.host_line`, as the training driver does. An image
goes out in one frame whatever the network: a convolutional network's board takes it pixel by
pixel from its image register. A board whose weights are written at start-up (``weights`` in
``link.json``: the iCE40UP5K's SPRAM) gets them first (:func:`load_weights`), each weight
frame acknowledged.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from fewmul.compiler.folders import BuildFolder
from fewmul.nn.artifacts import write_atomic
from .host_line import HostLinkError, SerialLine, find_board_dir, open_board
from .protocol import (BENCH_COMMAND, BENCH_REPORT, BENCH_REPORT_BYTES, RESULT_SYNC, WEIGHT_ACK,
                       BenchReport, LinkFormat, WeightMemory, result_checksum,
                       weight_frame_check)

__all__ = ["HostLinkError", "exchange", "find_board_dir", "check_board", "run_bench",
           "read_bench_report", "load_weights"]


def exchange(port, fmt: LinkFormat, images, *, timeout: float = 2.0,
             progress: bool = False,
             answers: list | None = None) -> list[tuple[int, list[int]]]:
    """Send every image and return the board's ``(label, scores)`` answers, in order.

    At most ``fmt.window`` images are unanswered at a time (``link.json``'s window: 2, or 16
    for a board that keeps up with the line, enough to keep the line busy across the USB
    bridge's latency); the frames of the window go out in one write. The answers are appended
    to ``answers`` when given, so that a caller keeps those received before a
    :class:`HostLinkError`.
    """
    answers = [] if answers is None else answers
    return SerialLine(port, timeout).stream(
        [fmt.encode_image(x) for x in images], fmt.window, RESULT_SYNC, 1 + fmt.out_bytes,
        lambda frame, _: fmt.decode_result(frame), answers, what="image", about="for",
        desc="images", unit="img", progress=progress)


def load_weights(port, board_dir: Path, *, timeout: float = 2.0) -> dict:
    """Write the weight memories that ``link.json`` lists under ``weights`` (none for most
    builds) with weight frames, each acknowledged (its check byte checked) before the next.

    Returns
    -------
    dict
        ``layers`` (loaded), ``frames``, ``bytes`` (sent) and ``seconds``.
    """
    from fewmul.nn.artifacts import read_json

    from .weights import read_weight_file

    board_dir = Path(board_dir)
    info = read_json(board_dir / "link.json")
    try:
        entries = [WeightMemory.from_json(e) for e in info.get("weights") or []]
    except ValueError as exc:
        raise HostLinkError(f"{board_dir / 'link.json'}: {exc}") from None
    baud = float(info.get("baud") or 115200)
    line = SerialLine(port, timeout)
    t0 = time.perf_counter()
    frames = sent = 0
    for entry in entries:
        for frame in entry.frames(read_weight_file(board_dir, entry)):
            port.write(frame)
            check = line.read_frame(WEIGHT_ACK, 2,
                                    f"the board did not acknowledge weight frame {frames}",
                                    f"the acknowledgement of weight frame {frames}",
                                    timeout + 2 * 10 * len(frame) / baud)[1]
            if check != weight_frame_check(frame):
                raise HostLinkError(f"weight frame {frames} was received damaged (check byte "
                                    f"0x{check:02X}, sent 0x{weight_frame_check(frame):02X}): "
                                    f"load the weights again")
            frames += 1
            sent += len(frame)
    return {"layers": [e.layer for e in entries], "frames": frames, "bytes": sent,
            "seconds": time.perf_counter() - t0}


def check_board(port, build_dir: Path, images: int, *, board: str | None = None,
                timeout: float = 2.0, progress: bool = True) -> dict:
    """Send the first ``images`` test images of the build's data set; compare with the golden model.

    Writes and returns ``BUILD/<board>/run.json``: ``images``, ``mismatches``,
    ``first_mismatch``, ``accuracy`` (board labels against the true labels),
    ``inferences_per_s`` over the serial link; ``weights_loaded`` (:func:`load_weights`) when
    the board's weights were sent first.
    """
    from fewmul.nn.data import load_dataset

    build = BuildFolder(build_dir)
    board_dir, fmt = open_board(build.path, board, LinkFormat.load)
    net = build.net()
    data = load_dataset(build.spec().data)
    x, y = data.test.x[:images], data.test.y[:images]
    if x.shape[1] != fmt.input_count or x.shape[1] != net.in_type.size:
        raise HostLinkError(f"the images of {build.spec().data.set} have {x.shape[1]} inputs, "
                            f"but the network takes {net.in_type.size} and the board's link "
                            f"{fmt.input_count}: rebuild the board from this build folder")
    golden = net.scores(x)
    weights = load_weights(port, board_dir, timeout=timeout)
    t0 = time.perf_counter()
    answers: list = []
    try:
        exchange(port, fmt, x, timeout=timeout, progress=progress, answers=answers)
    except HostLinkError as exc:
        partial = _result(board_dir.name, answers, golden, y, time.perf_counter() - t0)
        partial.update(requested=len(x), complete=False, error=str(exc))
        write_atomic(board_dir / "run.json", json.dumps(partial, indent=2))
        raise HostLinkError(f"{exc}; {len(answers)} of {len(x)} images answered "
                            f"({partial['mismatches']} mismatches), partial results in "
                            f"{board_dir / 'run.json'}") from None
    result = _result(board_dir.name, answers, golden, y, time.perf_counter() - t0)
    result.update(requested=len(x), complete=True)
    if weights["frames"]:
        result["weights_loaded"] = weights
    write_atomic(board_dir / "run.json", json.dumps(result, indent=2))
    return result


def _result(board: str, answers: list, golden: np.ndarray, y: np.ndarray, wall: float) -> dict:
    """``run.json`` of the ``answers`` received (the first ``len(answers)`` images)."""
    bad = []
    for i, (label, scores) in enumerate(answers):
        if scores != golden[i].tolist() or label != int(np.argmax(golden[i])):
            bad.append(f"image {i}: board says label {label} scores {scores}, golden model "
                       f"label {int(np.argmax(golden[i]))} scores {golden[i].tolist()}")
    labels = np.array([a[0] for a in answers], dtype=np.int64)
    n = len(answers)
    return {"board": board, "images": n, "mismatches": len(bad),
            "first_mismatch": bad[0] if bad else None,
            "accuracy": float((labels == y[:n]).mean()) if n else None, "wall_s": wall,
            "inferences_per_s": n / wall if wall > 0 else None}


def read_bench_report(port, timeout: float) -> BenchReport:
    """Wait for the benchmark report frame (skipping other bytes) and decode it."""
    return BenchReport.decode(SerialLine(port, timeout).read_frame(
        BENCH_REPORT, 1 + BENCH_REPORT_BYTES, "no benchmark report from the board",
        "the benchmark report"))


def run_bench(port, build_dir: Path, *, board: str | None = None,
              timeout: float = 2.0) -> dict:
    """Run the board's benchmark mode and check it against the golden model.

    Sends :data:`~fewmul.boards.protocol.BENCH_COMMAND`; the board streams the first
    ``bench_images`` test images (``link.json``) from its block RAM through the network and
    reports cycles, correct labels and the checksum of the results. Writes and returns
    ``BUILD/<board>/bench.json``: ``images``, ``cycles``, ``clock_hz``, ``inferences_per_s``
    (images over the cycles at the board clock, one pipeline fill included),
    ``predicted_cycles`` (``(images - 1) * bench_cycles_per_image + latency_cycles``),
    ``correct``, ``accuracy``, ``golden_correct``, ``checksum``, ``golden_checksum``,
    ``checksum_ok``.
    """
    from fewmul.nn.artifacts import read_json
    from fewmul.nn.data import load_dataset

    build = BuildFolder(build_dir)
    board_dir, fmt = open_board(build.path, board, LinkFormat.load)
    info = read_json(board_dir / "link.json")
    count = int(info.get("bench_images") or 0)
    if count == 0:
        raise HostLinkError(f"{board_dir.name}: the bitstream has no benchmark mode; build it "
                            f"with 'fewmul build --bench-images N' (N > 0)")
    clock_hz = float(info["clock_hz"])
    net = build.net()
    test = load_dataset(build.spec().data).test
    x, y = test.x[:count], test.y[:count]
    scores = net.scores(x)
    predicted = scores.argmax(1)
    golden_checksum = result_checksum(
        [fmt.encode_result(int(p), s) for p, s in zip(predicted, scores.tolist())],
        fmt.result_bits)
    weights = load_weights(port, board_dir, timeout=timeout)
    port.write(bytes([BENCH_COMMAND]))
    steady = int(info["bench_cycles_per_image"])
    expected = (count - 1) * steady + int(info.get("latency_cycles", 0))
    report = read_bench_report(port, timeout + 2 * expected / clock_hz)
    result = {"board": board_dir.name, "images": count, "cycles": report.cycles,
              "clock_hz": clock_hz,
              "inferences_per_s": count * clock_hz / report.cycles if report.cycles else None,
              "bench_cycles_per_image": steady, "predicted_cycles": expected,
              "correct": report.correct, "accuracy": report.correct / count,
              "golden_correct": int((predicted == y).sum()),
              "checksum": f"{report.checksum:08x}", "golden_checksum": f"{golden_checksum:08x}",
              "checksum_ok": report.checksum == golden_checksum}
    if weights["frames"]:
        result["weights_loaded"] = weights
    write_atomic(board_dir / "bench.json", json.dumps(result, indent=2))
    return result
