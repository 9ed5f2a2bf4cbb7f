"""``fewmul import``: a QONNX model in, a run folder out.

The model is read with ``onnx`` (an external data file beside it, ``MODEL.onnx.data``, is read
with it), cleaned by qonnx's own :func:`qonnx.util.cleanup.cleanup_model` (shape inference,
constant folding that keeps the quantizers, readable names), and its nodes are walked from the
input to the output: constant sub-graphs (a weight's ``Quant``) are evaluated with qonnx's
executor, every other node is mapped by its pattern in :mod:`.patterns`.

The model's input is taken to be the data set's pixels scaled to ``[0, 1]``: the integer pixel
``q`` of ``input_bits`` bits is the float ``q / (2^input_bits - 1)``, as fewmul's own float
model sees it (a flat input is in ``(C, H, W)`` order).

The run folder holds the exact IR as ``net.npz`` (what ``fewmul compile`` lowers), a float
model that folds into it where it can (``model.npz``, :mod:`.twin`), the resolved
``spec.yaml`` and a ``metrics.json`` that says where the run came from.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import yaml

from fewmul.compiler.folders import RunFolder
from fewmul.compiler.spec import DEFAULT_INPUT_BITS, NetworkSpec, dump_spec, parse_spec
from fewmul.ir import Graph
from fewmul.ir.types import TensorType
from fewmul.nn.artifacts import save_npz, write_atomic
from fewmul.nn.data import SHAPES

from .errors import Unsupported, node_text
from .patterns import Walk, finish, step
from .twin import float_state, folds_exactly
from .values import Activations

__all__ = ["Imported", "load_qonnx", "import_qonnx", "write_run", "choose_set"]


@dataclass
class Imported:
    """An imported network.

    Attributes
    ----------
    net : Graph
        The exact integer network (the golden model).
    spec : NetworkSpec
        Its resolved spec.
    output_scale : Fraction
        The graph's outputs are ``output_scale`` times the golden model's scores.
    model : qonnx.core.modelwrapper.ModelWrapper
        The cleaned QONNX model.
    source : Path
        The file it was read from.
    """
    net: Graph
    spec: NetworkSpec
    output_scale: Fraction
    model: object
    source: Path


def load_qonnx(path: Path):
    """Read and clean a QONNX model (with its external data) with qonnx's own cleanup."""
    import onnx
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.util.cleanup import cleanup_model
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        proto = onnx.load(str(path))
    except Exception as exc:   # onnx raises DecodeError, OSError, ValidationError...
        raise ValueError(f"{path}: not a readable ONNX model ({type(exc).__name__}: "
                         f"{str(exc).splitlines()[0] if str(exc) else ''})") from None
    if len(proto.graph.input) - len({i.name for i in proto.graph.initializer}
                                    & {i.name for i in proto.graph.input}) != 1 \
            or len(proto.graph.output) != 1:
        raise Unsupported(str(path), "a graph with several inputs or outputs",
                          "one input (the image) and one output (the class scores)")
    try:
        return cleanup_model(ModelWrapper(proto))
    except Exception as exc:
        raise ValueError(f"{path}: qonnx's cleanup failed ({type(exc).__name__}: "
                         f"{str(exc).splitlines()[0] if str(exc) else ''})") from None


def _constants(model) -> tuple[dict, dict]:
    """Values of the initializers and of every node computed from constants alone (evaluated
    with qonnx's executor), and the producer of every tensor."""
    from qonnx.core.onnx_exec import execute_node
    graph = model.graph
    opset = next((o.version for o in model.model.opset_import if o.domain in ("", "ai.onnx")),
                 11)
    ctx = model.make_empty_exec_context()
    const = {init.name for init in graph.initializer}
    producers = {}
    for node in graph.node:
        for out in node.output:
            producers[out] = node
        if all(i == "" or i in const for i in node.input):
            try:
                execute_node(node, ctx, graph, opset)
            except Exception as exc:
                raise Unsupported(node_text(node), f"its constant inputs could not be evaluated "
                                  f"({type(exc).__name__})") from None
            const.update(node.output)
    return {name: np.asarray(ctx[name]) for name in const}, producers


def choose_set(shape: tuple[int, ...], given: str | None) -> str:
    """The data set whose images fit an input of ``shape`` (without the batch dimension)."""
    size = int(np.prod(shape))

    def fits(name: str) -> bool:
        c, h, w = SHAPES[name]
        return tuple(shape) == (c, h, w) if len(shape) == 3 else size == c * h * w
    if given is not None:
        if given not in SHAPES:
            raise ValueError(f"--data must be one of {', '.join(SHAPES)}, not {given!r}")
        if not fits(given):
            raise Unsupported("the graph input", f"shape {list(shape)} does not fit {given}'s "
                              f"{'x'.join(map(str, SHAPES[given]))} images")
        return given
    names = [name for name in SHAPES if fits(name)]
    if len(names) == 1:
        return names[0]
    if not names:
        raise Unsupported("the graph input", f"shape {list(shape)} fits no data set",
                          ", ".join(f"{n} ({'x'.join(map(str, s))})" for n, s in SHAPES.items()))
    raise ValueError(f"the input shape {list(shape)} fits {' and '.join(names)}: give --data")


def import_qonnx(path: Path, *, data_set: str | None = None, input_bits: int | None = None,
                 name: str | None = None) -> Imported:
    """Map a QONNX model onto fewmul's IR and spec.

    Parameters
    ----------
    path : Path
        The ``.onnx`` file.
    data_set : str, optional
        The data set its inputs come from (default: the one whose image shape fits).
    input_bits : int, optional
        Bits per input pixel (default: the data set's default).
    name : str, optional
        Network name (default: the file's stem).

    Raises
    ------
    Unsupported
        For a node, or a quantization, that fewmul cannot represent exactly.
    """
    path = Path(path)
    model = load_qonnx(path)
    graph = model.graph
    consts, producers = _constants(model)
    inp = next(i for i in graph.input if i.name not in consts)
    shape = tuple(int(d) for d in model.get_tensor_shape(inp.name))
    if len(shape) not in (2, 4):
        raise Unsupported("the graph input", f"shape {list(shape)}",
                          "(batch, C, H, W) images or flat (batch, C*H*W) vectors")
    data_set = choose_set(shape[1:], data_set)
    bits = input_bits or DEFAULT_INPUT_BITS.get(data_set, 8)
    c, h, w = SHAPES[data_set]
    act = Activations(TensorType((c, h, w), "unsigned", bits), Fraction(1, (1 << bits) - 1),
                      np.array([Fraction(0)] * c, dtype=object), flat=len(shape) == 2)
    walk = Walk(consts, producers, act)
    current = inp.name
    for node in graph.node:
        data = [i for i in node.input if i and i not in consts]
        if not data:
            continue
        if data != [current] or len(node.output) != 1 and node.op_type not in ("Dropout",):
            raise Unsupported(node_text(node), "a graph that branches or joins here",
                              "a chain of nodes from the input to the output")
        step(node, walk)
        current = node.output[0]
    if current != graph.output[0].name:
        raise Unsupported("the graph output", f"{graph.output[0].name!r} is not the end of the "
                          f"chain from the input")
    finish(walk, f"the output {graph.output[0].name!r}")
    net = Graph(walk.ops)
    tree = {"name": name or path.stem, "data": {"set": data_set, "input_bits": bits},
            "layers": walk.layers}
    spec = parse_spec(yaml.safe_dump(tree, sort_keys=False), str(path))
    return Imported(net, spec, walk.output_scale, model, path)


def write_run(imported: Imported, run_dir: Path, agreement: dict | None = None) -> dict:
    """Write ``run_dir``: ``net.npz``, ``model.npz``, ``spec.yaml``, ``metrics.json``; return
    the summary written in ``metrics.json``."""
    run = RunFolder(run_dir)
    run.path.mkdir(parents=True, exist_ok=True)
    write_atomic(run.spec_path, dump_spec(imported.spec))
    save_npz(run.net_path, imported.net.arrays())
    state = float_state(imported.net, imported.spec)
    save_npz(run.model_path, state)
    summary = {"imported": str(imported.source), "format": "qonnx", "best_epoch": None,
               "output_scale": str(imported.output_scale),
               "model_npz_folds_exactly": folds_exactly(imported.net, state, imported.spec)}
    if agreement is not None:
        summary["agreement"] = agreement
    write_atomic(run.metrics_path, json.dumps({"summary": summary, "epochs": []}, indent=2))
    return summary
