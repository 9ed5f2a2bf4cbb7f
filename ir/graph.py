"""The network IR: a graph of typed ops, and the golden model that executes it.

A :class:`Graph` holds its ops in order, each taking the output of the one before (a
sequence for now; every op is named, so edges can become explicit when branches come). Its
ops fall into *layers*: an op whose binding has a folding of its own
(:attr:`~fewmul.ir.op.Binding.starts_layer`, e.g. :class:`~.ops.MatVec`) is a layer's head,
the ops before it that feed it (:attr:`~fewmul.ir.op.Binding.feeds_layer`, the
:class:`~.ops.SlidingWindow` of a convolution) and the ops after it that stream its beats (the
activations, a :class:`~.ops.MaxPool`) belong to it; an op that takes whole vectors and has no
folding (:class:`~.ops.Argmax`) stands alone.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from .op import OP_KINDS, Op
from .types import TensorType

__all__ = ["Layer", "Graph", "FORMAT_VERSION"]

#: Version of the ``.npz`` files written by :meth:`Graph.save`.
FORMAT_VERSION = 2

#: Elements of the largest op output that :meth:`Graph.predict` holds at a time: it runs
#: a batch in chunks of images (a conv layer's windows are ``kernel^2`` times its input).
PREDICT_ELEMENTS = 1 << 24


@dataclass(frozen=True)
class Layer:
    """The ops of one layer: those that feed its head, the head (the op that sets its
    folding), then those that stream its output.

    Attributes
    ----------
    index : int
        Position among the graph's layers.
    ops : tuple of Op
    """
    index: int
    ops: tuple[Op, ...]

    @property
    def name(self) -> str:
        return f"layer{self.index}"

    @property
    def head(self) -> Op:
        """The op whose folding the layer's is (the first that starts a layer)."""
        return next(op for op in self.ops if op.binding_class.starts_layer)

    @property
    def first(self) -> Op:
        """The op that takes the layer's input."""
        return self.ops[0]

    @property
    def last(self) -> Op:
        """The op whose output is the layer's output."""
        return self.ops[-1]

    @property
    def in_type(self) -> TensorType:
        return self.first.in_type

    @property
    def out_type(self) -> TensorType:
        return self.last.out_type

    @property
    def inputs(self) -> int:
        """Inputs of each of the head's neurons (a convolution's window)."""
        return self.head.in_type.channels

    @property
    def units(self) -> int:
        """Elements of the layer's output per image."""
        return self.out_type.size

    def forward(self, x: np.ndarray) -> np.ndarray:
        for op in self.ops:
            x = op.forward(x)
        return x


class Graph:
    """A folded integer network.

    Parameters
    ----------
    ops : sequence of Op
        From input to output; each op's input type is the previous op's output type (up to
        flattening).

    Attributes
    ----------
    layers : list of Layer
        See the module docstring.
    tail : list of Op
        Ops after the last layer that belong to none (e.g. the argmax).
    """

    def __init__(self, ops: Sequence[Op]):
        ops = list(ops)
        if not ops:
            raise ValueError("A graph must have at least one op")
        names = [op.name for op in ops]
        for op in ops:
            if not isinstance(op, Op):
                raise TypeError(f"Ops must be Op instances, not {op!r}")
            if names.count(op.name) > 1:
                raise ValueError(f"Op name {op.name!r} is used more than once")
        for before, after in zip(ops, ops[1:]):
            given, wanted = before.out_type, after.in_type
            if (given.size, given.kind, given.bits) != (wanted.size, wanted.kind, wanted.bits):
                raise ValueError(f"{after.name} takes {wanted} but {before.name} gives {given}")
        self.ops = ops
        self.layers: list[Layer] = []
        self.tail: list[Op] = []
        current: list[Op] = []         # the layer being grouped, once it has its head
        feeding: list[Op] = []         # ops waiting for the head they feed
        for op in ops:
            binding = op.binding_class
            if (binding.starts_layer or binding.feeds_layer) and self.tail:
                # the lowering places the ops that stand alone after the layers
                raise ValueError(f"{op.name}: a {op.kind} after {self.tail[-1].name}; ops "
                                 f"that stand alone must end the graph")
            if binding.feeds_layer:
                if current:
                    self.layers.append(Layer(len(self.layers), tuple(current)))
                    current = []
                feeding.append(op)
            elif binding.starts_layer:
                if current:
                    self.layers.append(Layer(len(self.layers), tuple(current)))
                current, feeding = feeding + [op], []
            elif feeding:
                raise ValueError(f"{feeding[-1].name}: a {feeding[-1].kind} must feed an op "
                                 f"that starts a layer, not a {op.kind}")
            elif current and not binding.takes_vector:
                current.append(op)
            elif not current and not self.layers:
                raise ValueError(f"{op.name}: the first op must start a layer (have a folding), "
                                 f"not be a {op.kind}")
            else:
                if current:
                    self.layers.append(Layer(len(self.layers), tuple(current)))
                    current = []
                self.tail.append(op)
        if feeding:
            raise ValueError(f"{feeding[-1].name}: a {feeding[-1].kind} must feed an op that "
                             f"starts a layer, but it ends the graph")
        if current:
            self.layers.append(Layer(len(self.layers), tuple(current)))

    @property
    def in_type(self) -> TensorType:
        return self.ops[0].in_type

    @property
    def input_bits(self) -> int:
        return self.in_type.bits

    def execute(self, x: np.ndarray) -> list[np.ndarray]:
        """Every op's output for a batch ``x`` of shape ``(n, inputs)``."""
        outs = []
        x = np.asarray(x)
        for op in self.ops:
            x = op.forward(x)
            outs.append(x)
        return outs

    def forward(self, x: np.ndarray) -> list[np.ndarray]:
        """Every layer's output for a batch ``x``: what the hardware's layers stream out."""
        outs = dict(zip((op.name for op in self.ops), self.execute(x)))
        return [outs[layer.last.name] for layer in self.layers]

    def scores(self, x: np.ndarray, batch: int | None = None) -> np.ndarray:
        """The last layer's output (the class scores) for a batch ``x``, ``batch`` images at a
        time (default: as many as keep every op's output under PREDICT_ELEMENTS)."""
        x = np.asarray(x)
        if batch is None:
            largest = max(op.out_type.size for op in self.ops)
            batch = max(1, PREDICT_ELEMENTS // largest)
        if len(x) <= batch:
            return self.forward(x)[-1]
        return np.concatenate([self.forward(x[i:i + batch])[-1] for i in range(0, len(x), batch)])

    def predict(self, x: np.ndarray, batch: int | None = None) -> np.ndarray:
        """Labels, the first index of the largest score of the last layer (see :meth:`scores`)."""
        return self.scores(x, batch).argmax(1)

    def summary(self) -> str:
        return "\n".join(f"{op.name}: {op.describe()}" for op in self.ops)

    # --- files ---------------------------------------------------------------------------------

    def arrays(self) -> dict[str, np.ndarray]:
        """The graph as named arrays, for an ``.npz`` file (see :meth:`from_arrays`)."""
        meta = [{"kind": op.kind, "name": op.name,
                 "in_type": {"shape": list(op.in_type.shape), "kind": op.in_type.kind,
                             "bits": op.in_type.bits, "bound": op.in_type.bound}}
                for op in self.ops]
        arrays = {f"op{i}.{key}": value for i, op in enumerate(self.ops)
                  for key, value in op.arrays().items()}
        return {"format": np.array(FORMAT_VERSION), "ops": np.array(json.dumps(meta)), **arrays}

    @classmethod
    def from_arrays(cls, f, source="graph") -> "Graph":
        """The graph of :meth:`arrays` (or a folded network of format 1: a list of dense
        layers); ``f`` maps names to arrays (e.g. an open ``.npz`` file), ``source`` names it
        in errors."""
        if "ops" not in f:
            return _load_dense_layers(source, f)
        if int(f["format"]) > FORMAT_VERSION:
            raise ValueError(f"{source}: format {int(f['format'])} is newer than this fewmul "
                             f"reads ({FORMAT_VERSION})")
        ops = []
        for i, entry in enumerate(json.loads(str(f["ops"]))):
            kind = OP_KINDS.get(entry["kind"])
            if kind is None:
                raise ValueError(f"{source}: unknown op kind {entry['kind']!r}; known kinds are "
                                 f"{sorted(OP_KINDS)}")
            t = entry["in_type"]
            in_type = TensorType(tuple(t["shape"]), t["kind"], t["bits"], t["bound"])
            prefix = f"op{i}."
            arrays = {key[len(prefix):]: f[key] for key in f if key.startswith(prefix)}
            ops.append(kind.from_arrays(entry["name"], in_type, arrays))
        return cls(ops)

    @classmethod
    def load(cls, path) -> "Graph":
        """Read an ``.npz`` file of :meth:`arrays`."""
        with np.load(path) as f:
            return cls.from_arrays({key: f[key] for key in f.files}, str(path))


def _load_dense_layers(path, f) -> Graph:
    """Format 1: ``layer{i}.weights``, ``.input``, ``.thresholds`` or ``.shifts``/``.offsets``,
    and ``.weight_kind`` (absent: binary)."""
    from .build import dense_layer, dense_net

    layers, i = [], 0
    while f"layer{i}.weights" in f:
        bipolar, bits = f[f"layer{i}.input"]
        extra = {name: f[f"layer{i}.{name}"] for name in ("thresholds", "shifts", "offsets")
                 if f"layer{i}.{name}" in f}
        if f"layer{i}.weight_kind" in f:
            extra["weight_kind"] = str(f[f"layer{i}.weight_kind"])
        layers.append(dense_layer(f[f"layer{i}.weights"], "bipolar" if bipolar else "unsigned",
                                  int(bits), **extra))
        i += 1
    if not layers:
        raise ValueError(f"{path}: no folded layers found")
    return dense_net(layers)
