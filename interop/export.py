"""``fewmul export``: a run's network IR as a QONNX model.

The model computes what the golden model computes, in float32 that holds its integers exactly:

* input: the pixels scaled to ``[0, 1]`` (``(1, C, H, W)``; flat ``(1, C*H*W)`` for a
  fully-connected net), times ``2^k - 1`` and a ``Quant`` (``k`` bits, scale 1) that gives the
  integer pixels back;
* a layer: its ``+-1`` (``BipolarQuant``) or ``-1/0/+1`` (2-bit narrow ``Quant``) weights in a
  ``Conv`` (after a ``Pad`` with -1 for sign activations, which the hardware pads with -1) or a
  ``MatMul`` (after a ``Flatten``, its columns in ``(C, H, W)`` order), then ``MultiThreshold``
  with the integer thresholds (``+-1`` outputs for sign, levels for ``k``-bit), ``MaxPool``;
* output: ``Mul`` by ``2^shift`` and ``Add`` of the offsets: the golden model's scores.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fewmul.ir import Graph
from fewmul.ir.ops import Argmax, MatVec, MaxPool, MultiThreshold, Scores, SlidingWindow

from .errors import Unsupported

__all__ = ["export_graph", "export_run", "check_model"]

DOMAIN = "qonnx.custom_op.general"
#: Words of qonnx's ``verify_node`` messages that report a problem (the others confirm).
PROBLEMS = ("do not exist", "needs", "incorrect", "wrong", "should")


class _Builder:
    """Nodes and initializers of the graph being written, and the current tensor."""

    def __init__(self):
        self.nodes, self.inits = [], []
        self.current = "global_in"
        self.flat = False
        self.bipolar = False
        self.src_shape: tuple[int, int, int] = (1, 1, 1)
        self.n = 0

    def const(self, value, stem: str, dtype=np.float32) -> str:
        from onnx import numpy_helper
        self.n += 1
        name = f"{stem}_{self.n}"
        self.inits.append(numpy_helper.from_array(np.asarray(value, dtype), name))
        return name

    def node(self, op: str, inputs: list, domain: str = "", **attrs) -> str:
        from onnx import helper
        self.n += 1
        out = f"{op}_{self.n}_out"
        self.nodes.append(helper.make_node(op, inputs, [out], name=f"{op}_{self.n}",
                                           domain=domain, **attrs))
        self.current = out
        return out

    def weights(self, signed: np.ndarray, kind: str) -> str:
        """A weight tensor through its quantizer (values unchanged)."""
        from onnx import helper
        w = self.const(signed.astype(np.float32), "weights")
        self.n += 1
        out = f"weights_q_{self.n}"
        if kind == "binary":
            self.nodes.append(helper.make_node("BipolarQuant", [w, self.const(1.0, "scale")],
                                               [out], name=f"BipolarQuant_{self.n}",
                                               domain=DOMAIN))
        else:
            self.nodes.append(helper.make_node(
                "Quant", [w, self.const(1.0, "scale"), self.const(0.0, "zeropt"),
                          self.const(2.0, "bitwidth")], [out], name=f"Quant_{self.n}",
                domain=DOMAIN, signed=1, narrow=1, rounding_mode="ROUND"))
        return out


def _signed(op: MatVec) -> np.ndarray:
    w = op.weights.astype(np.int8)
    return w if op.weight_kind == "ternary" else 2 * w - 1


def _window(b: _Builder, op: SlidingWindow, matvec: MatVec) -> None:
    c = op.in_type.channels
    k = op.kernel
    w = _signed(matvec).reshape(-1, k, k, c).transpose(0, 3, 1, 2)
    pads = [op.padding] * 4
    if op.padding and b.bipolar:       # the hardware pads sign activations with -1
        b.node("Pad", [b.current, b.const(np.array([0, 0, op.padding, op.padding] * 2),
                                          "pads", np.int64),
                       b.const(-1.0, "pad_value")], mode="constant")
        pads = [0] * 4
    b.node("Conv", [b.current, b.weights(w, matvec.weight_kind)], kernel_shape=[k, k],
           strides=[op.stride] * 2, pads=pads)


def _dense(b: _Builder, matvec: MatVec) -> None:
    c, h, w = matvec.in_type.shape
    signed = _signed(matvec)
    src = b.src_shape
    if not b.flat:
        b.node("Flatten", [b.current], axis=1)
        b.flat = True
    cs, hs, ws = src
    order = np.arange(cs * hs * ws).reshape(hs, ws, cs).transpose(2, 0, 1).reshape(-1)
    b.node("MatMul", [b.current, b.weights(signed[:, order].T, matvec.weight_kind)])


def _threshold(b: _Builder, op: MultiThreshold) -> None:
    t = op.thresholds.reshape(op.units, -1).astype(np.float32)
    if op.levels == 1:
        b.node("MultiThreshold", [b.current, b.const(t, "thresholds")], domain=DOMAIN,
               out_dtype="BIPOLAR", out_scale=2.0, out_bias=-1.0)
        b.bipolar = True
    else:
        b.node("MultiThreshold", [b.current, b.const(t, "thresholds")], domain=DOMAIN,
               out_dtype=f"UINT{op.out_type.bits}")
        b.bipolar = False


def export_graph(net: Graph, name: str = "fewmul"):
    """The QONNX ``onnx.ModelProto`` of ``net`` (see the module docstring)."""
    from onnx import TensorProto, helper
    b = _Builder()
    first = net.ops[0]
    c, h, w = first.in_type.shape
    conv_first = isinstance(first, SlidingWindow)
    in_shape = [1, c, h, w] if conv_first else [1, c * h * w]
    b.flat = not conv_first
    b.src_shape = (c, h, w)
    bits = net.input_bits
    b.node("Mul", [b.current, b.const(float((1 << bits) - 1), "levels")])
    b.node("Quant", [b.current, b.const(1.0, "scale"), b.const(0.0, "zeropt"),
                     b.const(float(bits), "bitwidth")], domain=DOMAIN, signed=0, narrow=0,
           rounding_mode="ROUND")
    ops = list(net.ops)
    i = 0
    while i < len(ops):
        op = ops[i]
        if isinstance(op, SlidingWindow):
            _window(b, op, ops[i + 1])
            i += 2
            b.src_shape = ops[i - 1].out_type.shape
            continue
        if isinstance(op, MatVec):
            _dense(b, op)
            b.src_shape = op.out_type.shape
        elif isinstance(op, MultiThreshold):
            _threshold(b, op)
        elif isinstance(op, MaxPool):
            b.node("MaxPool", [b.current], kernel_shape=[op.size] * 2, strides=[op.size] * 2)
            b.src_shape = op.out_type.shape
        elif isinstance(op, Scores):
            b.node("Mul", [b.current, b.const(np.exp2(op.shifts)[None], "shift")])
            b.node("Add", [b.current, b.const(op.offsets[None], "offset")])
        elif isinstance(op, Argmax):
            pass
        else:
            raise Unsupported(op.name, f"an IR op of kind {op.kind!r} has no QONNX form")
        i += 1
    outputs = net.layers[-1].units
    graph = helper.make_graph(
        b.nodes, name, [helper.make_tensor_value_info("global_in", TensorProto.FLOAT, in_shape)],
        [helper.make_tensor_value_info(b.current, TensorProto.FLOAT, [1, outputs])], b.inits)
    model = helper.make_model(graph, producer_name="fewmul",
                              opset_imports=[helper.make_opsetid("", 13),
                                             helper.make_opsetid(DOMAIN, 1)])
    model.ir_version = 8
    return model


def check_model(path: Path):
    """Check a written QONNX model: ``onnx.checker``, then qonnx's cleanup, shape and data type
    inference and every custom op's own ``verify_node``; return the cleaned ModelWrapper."""
    import onnx
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.custom_op.registry import getCustomOp
    from qonnx.transformation.infer_datatypes import InferDataTypes
    from qonnx.util.cleanup import cleanup_model
    onnx.checker.check_model(str(path))
    model = cleanup_model(ModelWrapper(str(path)))
    model = model.transform(InferDataTypes())
    if not model.check_all_tensor_shapes_specified():
        raise ValueError(f"{path}: qonnx cannot infer every tensor's shape")
    for node in model.graph.node:
        if node.domain == DOMAIN:
            for message in getCustomOp(node).verify_node() or []:
                if any(bad in message.lower() for bad in PROBLEMS):
                    raise ValueError(f"{path}: {node.name}: {' '.join(message.split())}")
    return model


def export_run(run_dir: Path, path: Path) -> tuple[Graph, object]:
    """Write the network of ``run_dir`` as QONNX to ``path``; return it and the checked
    (cleaned) model."""
    import onnx
    from fewmul.compiler.training import run_network
    from fewmul.nn.artifacts import write_atomic
    spec, net = run_network(run_dir)
    model = export_graph(net, spec.name)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, model.SerializeToString())
    return net, check_model(path)
