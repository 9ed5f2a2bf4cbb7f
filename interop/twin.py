"""The float model of an imported network: ``model.npz`` of its run folder.

An imported run's network is its exact IR (``net.npz``); ``model.npz`` holds the float
parameters of fewmul's model (:class:`fewmul.nn.model.Model`) that fold
(:func:`fewmul.ir.fold.fold`) into it where fold can express it: a sign layer's threshold ``T``
becomes the batch-norm mean ``c (T - 1/2)`` (``c`` the float scale of the integer sums), which
folds back to ``T`` exactly. A ``k``-bit layer's thresholds are fitted by one scale and offset
(exact when they are equally spaced as fold places them), the output layer's shifts and offsets
likewise. :func:`folds_exactly` tells whether the result is exact.
"""

from __future__ import annotations

import numpy as np

from fewmul.compiler.spec import NetworkSpec
from fewmul.ir import Graph
from fewmul.ir.fold import fold
from fewmul.ir.ops import MatVec, MultiThreshold, Scores
from fewmul.nn.data import SHAPES
from fewmul.nn.model import Model

__all__ = ["float_state", "folds_exactly"]

F32 = np.float32


def _layer_params(matvec: MatVec, act, c: float, eps: float) -> dict[str, np.ndarray]:
    """``gamma, beta, mean, var`` of a layer whose integer sums have float scale ``c``."""
    m = matvec.weights.shape[0]
    gamma, beta = np.ones(m), np.zeros(m)
    mean, var = np.zeros(m), np.full(m, 1.0 - eps)
    if isinstance(act, MultiThreshold) and act.levels == 1:
        mean = c * (act.thresholds.astype(np.float64) - 0.5)
    elif isinstance(act, MultiThreshold):
        t = act.thresholds.astype(np.float64)
        levels = act.levels
        span = np.maximum(t[:, -1] - t[:, 0], 1.0)
        a = (levels - 1) / levels / span                   # y = a s + b, per unit of s
        b = 0.5 / levels - a * (t[:, 0] - 0.5)
        gamma = a / c
        mean = -b / a * c
    else:                                                  # Scores: (s << shift) + offset
        rel = np.exp2(act.shifts - act.shifts.min())
        gamma = rel / c
        beta = act.offsets / np.exp2(act.shifts) * rel
    return {"gamma": gamma, "beta": beta, "mean": mean, "var": var}


def float_state(net: Graph, spec: NetworkSpec) -> dict[str, np.ndarray]:
    """``model.npz`` arrays of a float model that folds into ``net`` (see the module)."""
    model = Model.init(SHAPES[spec.data.set], spec.layers, spec.train.seed)
    state = model.state()
    weighted = [i for i, cfg in enumerate(spec.layers) if cfg.kind != "maxpool"]
    in_scale = 1 / ((1 << spec.data.input_bits) - 1)
    for i, layer in zip(weighted, net.layers):
        matvec = layer.head
        act = next(op for op in layer.ops if isinstance(op, (MultiThreshold, Scores)))
        signed = matvec.weights.astype(np.float64)
        if matvec.weight_kind == "binary":
            signed = 2 * signed - 1
        w0 = float(state[f"layer{i}.w0"])
        state[f"layer{i}.w"] = (signed.T * w0).astype(F32)
        params = _layer_params(matvec, act, w0 * in_scale, spec.train.bn_eps)
        for key, value in params.items():
            state[f"layer{i}.{key}"] = np.asarray(value, F32)
        cfg = spec.layers[i]
        in_scale = 1 / ((1 << cfg.act_bits) - 1) if cfg.act == "quant" else 1.0
    return state


def folds_exactly(net: Graph, state: dict, spec: NetworkSpec) -> bool:
    """Whether ``state`` folds into exactly ``net``."""
    model = Model.init(SHAPES[spec.data.set], spec.layers, spec.train.seed)
    model.load_state(state)
    try:
        folded = fold(model, spec.data.input_bits, spec.train)
    except ValueError:
        return False
    a, b = folded.arrays(), net.arrays()
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
