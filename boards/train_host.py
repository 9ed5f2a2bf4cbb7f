"""``fewmul run --train``: train a board's on-chip trainer over its serial port and check it.

The driver speaks :mod:`fewmul.boards.train_protocol` through any object with pyserial's
``write(bytes)`` and ``read(n)`` (fewer bytes on a timeout), opening the board folder and
reading the frames with :mod:`fewmul.boards.host_line` as the inference driver
(:mod:`fewmul.boards.host`) does. It streams the training samples in the golden model's order
(:meth:`~fewmul.sim.train_runner.TrainingBuild.order`, reshuffled every epoch), at most the
link's ``window`` unanswered, and checks every prediction against the golden model trained
alongside; then it reads every weight row back (at most
:data:`~fewmul.boards.train_protocol.READ_WINDOW` reads unanswered) and compares them, bit for
bit, with the golden model's weights after the same steps; then it sends the test set as
inference requests and compares the board's predictions with the golden model's.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from fewmul.nn.artifacts import write_atomic

from .host_line import HostLinkError, SerialLine, open_board
from .protocol import RESULT_SYNC
from .train_protocol import READ_WINDOW, ROW_SYNC, TrainLinkFormat

__all__ = ["run_training", "format_training_run"]


def run_training(port, build_dir: Path, *, steps: int | None = None, epochs: int | None = None,
                 board: str | None = None, timeout: float = 2.0, test_images: int | None = None,
                 progress: bool = True) -> dict:
    """Train the board of training build ``build_dir`` and check it against the golden model.

    Parameters
    ----------
    port
        The serial port (``write``, ``read``).
    build_dir : Path
        Written by ``fewmul compile --train`` and ``fewmul build``.
    steps, epochs : int or None
        Training samples: ``steps`` if given, else ``epochs`` times the training set, else one
        epoch. The board must be fresh (just programmed): it starts from the build's initial
        weights.
    board : str or None
        The board folder, when several were built.
    timeout : float
        Seconds to wait for each answer.
    test_images : int or None
        Test images sent as inference requests (None: the whole test set).

    Returns
    -------
    dict
        Also written to ``BUILD/<board>/train_run.json``: ``steps``, ``prediction_mismatches``
        (training predictions unlike the golden model's), ``weights_equal`` and
        ``weight_mismatch_rows``, ``test_images``, ``inference_mismatches``,
        ``test_accuracy`` (the board's inference predictions), ``golden_test_accuracy``,
        ``read_weights_test_accuracy`` (the golden model holding the weights read back),
        ``samples_per_s`` over the link, ``seconds`` per phase, ``complete``.

    Raises
    ------
    HostLinkError
        The board did not answer as the protocol says (partial results are written first).
    """
    from fewmul.sim.train_runner import TrainingBuild

    try:
        build = TrainingBuild.load(build_dir)
    except FileNotFoundError as exc:
        raise HostLinkError(f"{build_dir} is not a training build ({exc}); 'fewmul run "
                            f"--train' takes a folder of 'fewmul compile --train'") from None
    board_dir, fmt = open_board(build.path, board, TrainLinkFormat.load)
    if fmt.rows != tuple(build.cfg.sizes[1:]) or fmt.input_count != build.cfg.sizes[0]:
        raise HostLinkError(f"{board_dir / 'link.json'} is of a trainer of sizes "
                            f"{[fmt.input_count, *fmt.rows]}, the build's is "
                            f"{list(build.cfg.sizes)}: build the board again")
    data = build.dataset()
    n_train = len(data.train.y)
    if steps is None:
        steps = (epochs or 1) * n_train
    if steps < 1:
        raise ValueError(f"Steps must be a positive integer, not {steps!r}")
    order = build.order(steps)
    x, y = data.train.x[order], data.train.y[order]
    net = build.initial_net()
    golden = np.array([net.step(x[i], int(y[i])).prediction for i in range(steps)])
    test_x, test_y = data.test.x, data.test.y
    if test_images is not None:
        test_x, test_y = test_x[:test_images], test_y[:test_images]
    golden_test = net.predict(test_x)

    line = SerialLine(port, timeout, bitstream="training bitstream", track=True)
    result = {"board": board_dir.name, "net": list(build.cfg.sizes), "steps": steps,
              "epochs": steps / n_train, "complete": False, "seconds": {}}
    predictions: list = []
    rows: list = []
    inferred: list = []
    path = board_dir / "train_run.json"

    def summary() -> dict:
        done = len(predictions)
        bad = np.flatnonzero(np.array(predictions, dtype=np.int64) != golden[:done])
        result.update(steps_done=done, prediction_mismatches=int(bad.size),
                      first_prediction_mismatch=(
                          f"step {bad[0] + 1}: board {predictions[bad[0]]}, golden model "
                          f"{int(golden[bad[0]])}" if bad.size else None),
                      online_accuracy=float((np.array(predictions) == y[:done]).mean())
                      if done else None)
        if inferred:
            board_test = np.array(inferred, dtype=np.int64)
            result.update(test_images=len(inferred),
                          inference_mismatches=int((board_test != golden_test[:len(inferred)])
                                                   .sum()),
                          test_accuracy=float((board_test == test_y[:len(inferred)]).mean()),
                          golden_test_accuracy=float((golden_test == test_y).mean()))
        return result

    def fail(exc: HostLinkError, phase: str):
        result["error"] = f"{phase}: {exc}"
        write_atomic(path, json.dumps(summary(), indent=2))
        return HostLinkError(f"{phase}: {exc}; partial results in {path}")

    sample_size = 2
    t0 = time.perf_counter()
    try:
        line.stream([fmt.encode_sample(x[i], int(y[i])) for i in range(steps)], fmt.window,
                    RESULT_SYNC, sample_size, lambda frame, _: fmt.decode_prediction(frame),
                    predictions, what="training sample", progress=progress)
    except HostLinkError as exc:
        raise fail(exc, f"training, {len(predictions)} of {steps} samples answered") from None
    result["seconds"]["train"] = time.perf_counter() - t0
    result["samples_per_s"] = steps / result["seconds"]["train"]

    where = [(layer, row) for layer in range(fmt.layers) for row in range(fmt.rows[layer])]
    t0 = time.perf_counter()
    try:
        line.stream([fmt.encode_read(layer, row) for layer, row in where], READ_WINDOW,
                    ROW_SYNC, 2 + fmt.row_bytes,
                    lambda frame, index: fmt.decode_row(frame, where[index][0]),
                    rows, what="weight row read", progress=progress)
    except HostLinkError as exc:
        raise fail(exc, f"weight read-out, {len(rows)} of {len(where)} rows") from None
    result["seconds"]["read"] = time.perf_counter() - t0
    read = [np.zeros(shape, np.int64) for shape in build.cfg.shapes]
    for (layer, row), values in zip(where, rows):
        read[layer][row] = values
    differ = [f"w{layer + 1}[{row}]" for layer, row in where
              if (read[layer][row] != net.weights[layer][row]).any()]
    result.update(weights_equal=not differ, weight_mismatch_rows=len(differ),
                  first_weight_mismatch=differ[0] if differ else None,
                  read_weights_test_accuracy=build.net_with(read).accuracy(test_x, test_y))

    t0 = time.perf_counter()
    try:
        line.stream([fmt.encode_infer(q) for q in test_x], fmt.window, RESULT_SYNC,
                    sample_size, lambda frame, _: fmt.decode_prediction(frame),
                    inferred, what="inference request", progress=progress)
    except HostLinkError as exc:
        raise fail(exc, f"inference, {len(inferred)} of {len(test_x)} test images") from None
    result["seconds"]["infer"] = time.perf_counter() - t0
    result["complete"] = True
    write_atomic(path, json.dumps(summary(), indent=2))
    return result


def format_training_run(result: dict, baud: int) -> str:
    """What ``fewmul run --train`` prints."""
    ok = (result["prediction_mismatches"] == 0 and result["weights_equal"]
          and result["inference_mismatches"] == 0)
    lines = [
        f"board training {'OK' if ok else 'FAIL'}: {result['steps']} steps "
        f"({result['epochs']:.2f} epochs) at {result['samples_per_s']:,.0f} samples/s over "
        f"{baud} baud, {result['prediction_mismatches']} prediction mismatches with the golden "
        f"model; weights read back {'equal' if result['weights_equal'] else 'DIFFER FROM'} the "
        f"golden model's bit for bit"
        + ("" if result["weights_equal"] else
           f" ({result['weight_mismatch_rows']} rows, first {result['first_weight_mismatch']})"),
        f"test accuracy on the board: {100 * result['test_accuracy']:.2f} % "
        f"({result['test_images']} inference requests, {result['inference_mismatches']} "
        f"mismatches; golden model {100 * result['golden_test_accuracy']:.2f} %, the weights "
        f"read back {100 * result['read_weights_test_accuracy']:.2f} %)",
    ]
    if result.get("first_prediction_mismatch"):
        lines.append(f"first prediction mismatch: {result['first_prediction_mismatch']}")
    return "\n".join(lines)
