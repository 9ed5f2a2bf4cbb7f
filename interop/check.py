"""Agreement of a QONNX model's execution (qonnx's executor) with fewmul's golden model.

Both run on the same images: the golden model on the integer pixels ``q``, the QONNX model on
``q / (2^input_bits - 1)`` in the shape of its input (``(n, C, H, W)``, or flat in ``(C, H, W)``
order). The labels must agree; the scores must be the golden scores times the model's output
scale.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass
from fractions import Fraction

import numpy as np

from fewmul.ir import Graph
from fewmul.nn.data import SHAPES

__all__ = ["Agreement", "qonnx_inputs", "execute_qonnx", "agreement", "sample_images"]

#: Images per call of the executor.
BATCH = 1000


@dataclass
class Agreement:
    """How a QONNX execution compares with the golden model.

    Attributes
    ----------
    images : int
        Images compared.
    source : str
        ``test set`` or ``random inputs``.
    labels : float
        Fraction of images with the same label (first index of the largest score).
    scores : float
        Fraction of images whose scores all equal ``scale`` times the golden scores (to float32
        rounding of the graph's output).
    accuracy_qonnx, accuracy_golden : float or None
        Test accuracy of each (None for random inputs).
    tied : int
        Images whose labels differ only because the golden scores tie exactly and the graph's
        float32 arithmetic breaks the tie (its label is one of the tied classes).
    """
    images: int
    source: str
    labels: float
    scores: float
    accuracy_qonnx: float | None = None
    accuracy_golden: float | None = None
    tied: int = 0

    def to_dict(self) -> dict:
        return asdict(self)

    def text(self) -> str:
        acc = "" if self.accuracy_qonnx is None else \
            (f"; accuracy {100 * self.accuracy_golden:.2f} % (golden) vs "
             f"{100 * self.accuracy_qonnx:.2f} % (QONNX)")
        ties = f" ({self.tied} differ on exact ties of the scores that float32 breaks)" \
            if self.tied else ""
        return (f"agreement with the QONNX execution on {self.images} {self.source}: labels "
                f"{100 * self.labels:.2f} %{ties}, scores {100 * self.scores:.2f} %{acc}")


def qonnx_inputs(q: np.ndarray, data_set: str, input_bits: int, shape) -> np.ndarray:
    """The QONNX model's input for integer images ``q`` ``(n, pixels)`` in ``(H, W, C)`` order."""
    c, h, w = SHAPES[data_set]
    x = q.reshape(len(q), h, w, c).transpose(0, 3, 1, 2).astype(np.float32)
    x = x / np.float32((1 << input_bits) - 1)
    return x.reshape(len(q), *shape[1:]) if len(shape) == 4 else x.reshape(len(q), -1)


def execute_qonnx(model, x: np.ndarray) -> np.ndarray:
    """The output of a cleaned QONNX model for a batch ``x``, by qonnx's executor, in batches
    of :data:`BATCH` (qonnx's ``ChangeBatchSize`` and shape inference)."""
    from qonnx.core.onnx_exec import execute_onnx
    from qonnx.transformation.change_batchsize import ChangeBatchSize
    from qonnx.transformation.infer_shapes import InferShapes
    inp, out = model.graph.input[0].name, model.graph.output[0].name
    sized = {}
    outs = []
    for start in range(0, len(x), BATCH):
        chunk = x[start:start + BATCH]
        if len(chunk) not in sized:
            m = copy.deepcopy(model).transform(ChangeBatchSize(len(chunk)))
            sized[len(chunk)] = m.transform(InferShapes())
        outs.append(np.asarray(execute_onnx(sized[len(chunk)], {inp: chunk})[out]))
    return np.concatenate(outs).reshape(len(x), -1)


def agreement(net: Graph, model, q: np.ndarray, data_set: str, input_shape,
              scale: Fraction, labels: np.ndarray | None = None,
              source: str = "test images") -> Agreement:
    """Compare the golden model on ``q`` with the QONNX execution; ``labels`` gives the
    accuracies."""
    golden = net.scores(q).astype(np.float64)
    ref = execute_qonnx(model, qonnx_inputs(q, data_set, net.input_bits, input_shape))
    want = golden * float(scale)
    tol = 1e-6 * np.maximum(np.abs(want).max(1, keepdims=True), 1e-30)
    same_scores = (np.abs(ref - want) <= tol).all(1)
    g_lab, r_lab = golden.argmax(1), ref.argmax(1)
    acc = (None, None) if labels is None else \
        (float((r_lab == labels).mean()), float((g_lab == labels).mean()))
    top = golden.max(1, keepdims=True)
    tied = int(((g_lab != r_lab) & ((golden == top).sum(1) > 1) &
                (golden[np.arange(len(q)), r_lab] == top[:, 0])).sum())
    return Agreement(len(q), source, float((g_lab == r_lab).mean()), float(same_scores.mean()),
                     *acc, tied=tied)


def sample_images(data_set: str, input_bits: int, count: int | None,
                seed: int = 0) -> tuple[np.ndarray, np.ndarray | None, str]:
    """``(q, labels, source)``: the test images of the data set, or random ones when it is not
    on this machine."""
    from fewmul.nn.config import DataConfig
    from fewmul.nn.data import load_dataset
    try:
        data = load_dataset(DataConfig(set=data_set, input_bits=input_bits))
        q, y = data.test.x, data.test.y
        if count is not None:
            q, y = q[:count], y[:count]
        return q, y, "test images"
    except (FileNotFoundError, OSError, ValueError):
        c, h, w = SHAPES[data_set]
        rng = np.random.default_rng(seed)
        q = rng.integers(0, 1 << input_bits, (count or 1000, h * w * c)).astype(np.uint8)
        return q, None, "random inputs"
