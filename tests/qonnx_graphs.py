"""QONNX graphs built with onnx.helper for the interop tests (no PyTorch).

:class:`GraphBuilder` appends nodes to a chain from the input ``x``; constants become
initializers, quantizers are qonnx's ``Quant``/``BipolarQuant``/``MultiThreshold`` nodes.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

QONNX_DOMAIN = "qonnx.custom_op.general"


class GraphBuilder:
    """A chain of nodes from the graph input ``x`` of ``shape`` (with the batch dimension)."""

    def __init__(self, shape, seed: int = 0):
        self.shape = list(shape)
        self.nodes, self.inits = [], []
        self.current = "x"
        self.rng = np.random.default_rng(seed)
        self.count = 0

    def name(self, stem: str) -> str:
        self.count += 1
        return f"{stem}{self.count}"

    def const(self, value, stem="c") -> str:
        name = self.name(stem)
        value = np.asarray(value)
        value = value if value.dtype == np.int64 else value.astype(np.float32)
        self.inits.append(numpy_helper.from_array(value, name))
        return name

    def node(self, op, *consts, domain="", inputs=None, **attrs) -> str:
        out = self.name(op.lower() + "_out")
        ins = [self.current] + [c if isinstance(c, str) else self.const(c) for c in consts] \
            if inputs is None else inputs
        self.nodes.append(helper.make_node(op, ins, [out], name=self.name(op), domain=domain,
                                           **attrs))
        self.current = out
        return out

    # weights ------------------------------------------------------------------------------
    def bipolar_weights(self, shape, scale=1.0) -> str:
        w = self.rng.standard_normal(shape).astype(np.float32)
        out = self.name("wq")
        self.nodes.append(helper.make_node("BipolarQuant", [self.const(w, "w"), self.const(scale)],
                                           [out], name=self.name("BipolarQuant"),
                                           domain=QONNX_DOMAIN))
        return out

    def quant_weights(self, shape, bits=2, scale=0.5, narrow=1, zeropt=0.0) -> str:
        w = self.rng.uniform(-1.5, 1.5, shape).astype(np.float32) * scale
        out = self.name("wq")
        self.nodes.append(helper.make_node(
            "Quant", [self.const(w, "w"), self.const(scale), self.const(zeropt),
                      self.const(float(bits))], [out], name=self.name("Quant"),
            domain=QONNX_DOMAIN, signed=1, narrow=narrow, rounding_mode="ROUND"))
        return out

    # layers -------------------------------------------------------------------------------
    def matmul(self, n_in, n_out, **kw) -> str:
        return self.node("MatMul", self.bipolar_weights((n_in, n_out), **kw))

    def conv(self, c_in, c_out, k=3, pads=0, weights=None, **attrs) -> str:
        w = weights or self.bipolar_weights((c_out, c_in, k, k))
        return self.node("Conv", w, kernel_shape=[k, k], pads=[pads] * 4, **attrs)

    def batchnorm(self, c, seed_shift=0.0) -> str:
        r = self.rng
        return self.node("BatchNormalization", r.uniform(0.5, 2, c) * r.choice([-1, 1], c),
                         r.standard_normal(c), r.standard_normal(c) * 3 + seed_shift,
                         r.uniform(1, 30, c), epsilon=1e-4)

    def bipolar_act(self, scale=1.0) -> str:
        return self.node("BipolarQuant", np.float32(scale), domain=QONNX_DOMAIN)

    def quant_act(self, bits=2, scale=0.25, signed=0, narrow=0, zeropt=0.0,
                  rounding="ROUND") -> str:
        return self.node("Quant", np.float32(scale), np.float32(zeropt), np.float32(bits),
                         domain=QONNX_DOMAIN, signed=signed, narrow=narrow,
                         rounding_mode=rounding)

    def model(self, out_dims) -> onnx.ModelProto:
        graph = helper.make_graph(
            self.nodes, "net",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, self.shape)],
            [helper.make_tensor_value_info(self.current, TensorProto.FLOAT, out_dims)],
            self.inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13),
                                                        helper.make_opsetid(QONNX_DOMAIN, 1)])
        model.ir_version = 8
        return model


def tfc(n_in=64, hidden=(32, 32), seed=0, *, act="bipolar", out_bias=True) -> onnx.ModelProto:
    """A fully-connected binary net: MatMul -> BN -> activation, ..., MatMul -> Mul -> Add."""
    g = GraphBuilder([1, n_in], seed)
    width = n_in
    for units in hidden:
        g.matmul(width, units)
        g.batchnorm(units)
        if act == "bipolar":
            g.bipolar_act()
        else:
            g.quant_act()
        width = units
    g.matmul(width, 10)
    g.node("Mul", np.float32(0.125) * np.array([1, 1, 2, 1, 1, 4, 1, 1, 1, 1], np.float32))
    if out_bias:
        g.node("Add", g.rng.integers(-40, 40, 10).astype(np.float32) / 16)
    return g.model([1, 10])
