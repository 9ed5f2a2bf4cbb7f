"""One function per QONNX node pattern: each maps a node onto fewmul's run folder and IR.

:func:`step` dispatches a node of the graph's data path to its handler in :data:`HANDLERS`. A
handler reads the node's constant inputs from the :class:`Walk`, updates its current value
(:class:`~.values.Activations` or :class:`~.values.Sums`) and, where an activation closes a
layer, appends the layer's IR ops and spec entry. Whatever is not exactly representable
raises :class:`~.errors.Unsupported` naming the node.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Callable

import numpy as np

from fewmul.ir.ops import Argmax, MatVec, MaxPool, MultiThreshold, Scores, SlidingWindow
from fewmul.ir.types import TensorType

from .errors import SUPPORTED, Unsupported, node_text
from .values import Activations, Step, Sums, exact, is_power_of_two, quant_steps, \
    rounding_function, thresholds

__all__ = ["Walk", "HANDLERS", "step", "finish"]

#: Largest relative power-of-two scale between two classes, and fraction bits of the offsets.
MAX_SCORE_SHIFT = 24
MAX_FRACTION_BITS = 32


@dataclass
class Walk:
    """The state of an import: the model, the current value, and what has been built.

    Attributes
    ----------
    consts : dict
        Values of the initializers and of the nodes computed from them alone.
    producers : dict
        The node that produces each tensor.
    value : Activations or Sums
        What the current tensor of the data path holds.
    ops : list
        IR ops of the finished layers.
    layers : list of dict
        Spec entries of the finished layers.
    """
    consts: dict
    producers: dict
    value: Activations | Sums
    ops: list = field(default_factory=list)
    layers: list = field(default_factory=list)
    output_scale: Fraction | None = None

    @property
    def index(self) -> int:
        """The IR layer the next matrix-vector unit starts."""
        return sum(1 for layer in self.layers if layer.get("kind", "dense") != "maxpool")

    def const(self, node, i: int, what: str) -> np.ndarray:
        """Input ``i`` of ``node``, which must be a constant."""
        if i >= len(node.input) or node.input[i] == "":
            raise Unsupported(node_text(node), f"the {what} input is missing")
        name = node.input[i]
        if name not in self.consts:
            raise Unsupported(node_text(node), f"its {what} ({name!r}) is not a constant")
        return np.asarray(self.consts[name])

    def optional(self, node, i: int) -> np.ndarray | None:
        if i >= len(node.input) or node.input[i] == "":
            return None
        return self.const(node, i, f"input {i}")


def _attrs(node) -> dict:
    from onnx import helper
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _need_acts(node, walk: Walk) -> Activations:
    if isinstance(walk.value, Sums) and walk.value.relu:
        raise Unsupported(node_text(node), "a Relu must be followed by a quantizer",
                          "Relu then Quant, BipolarQuant or MultiThreshold")
    if not isinstance(walk.value, Activations):
        raise Unsupported(node_text(node), "it follows a MatMul/Conv whose sums have no "
                          "activation yet", "an activation between two weighted layers")
    return walk.value


def _need_sums(node, walk: Walk, what: str) -> Sums:
    if not isinstance(walk.value, Sums):
        raise Unsupported(node_text(node), f"{what} of activations (not of a MatMul/Conv's sums)")
    if walk.value.relu:
        raise Unsupported(node_text(node), "a Relu must be followed by a quantizer",
                          "Relu then Quant, BipolarQuant or MultiThreshold")
    return walk.value


def _channelwise(node, walk: Walk, c: np.ndarray, channels: int, ndim: int) -> np.ndarray:
    """A constant operand as ``(channels,)`` Fractions: a scalar or one value per channel."""
    arr = np.asarray(c, dtype=np.float64)
    if arr.size == 1:
        return exact(np.full(channels, arr.reshape(-1)[0]))
    shape = (1,) * (ndim - arr.ndim) + arr.shape
    if len(shape) == ndim and shape[1] == channels and \
            all(d == 1 for k, d in enumerate(shape) if k != 1):
        return exact(arr.reshape(-1))
    raise Unsupported(node_text(node), f"a constant of shape {list(arr.shape)} on a tensor of "
                      f"{channels} channels", "a scalar or one value per channel")


def _ndim(value) -> int:
    return 2 if value.flat else 4


def _channels(value) -> int:
    return value.shape[0] if isinstance(value, Sums) else value.type.channels


# --------------------------------------------------------------------------- weights

def _weights(node, walk: Walk, w: np.ndarray, i: int) -> tuple[np.ndarray, str, np.ndarray]:
    """``(integer weights, kind, per-row magnitude)`` of a float weight matrix ``(M, N)``."""
    producer = walk.producers.get(node.input[i])
    if producer is not None and producer.op_type == "Quant":
        zp = walk.const(producer, 2, "zero-point")
        bits = walk.const(producer, 3, "bit width")
        if np.any(zp != 0):
            raise Unsupported(node_text(producer), "weights with a non-zero zero-point",
                              "zero-point 0")
        if float(bits.reshape(-1)[0]) > 2:
            raise Unsupported(node_text(producer),
                              f"{int(bits.reshape(-1)[0])}-bit weights",
                              "1-bit (+-1) and 2-bit narrow-range (-1/0/+1) weights")
    w = np.asarray(w, dtype=np.float64)
    mags = np.abs(w)
    scale = np.ones(len(w))
    for m, row in enumerate(mags):
        values = np.unique(row[row > 0])
        if len(values) > 1:
            raise Unsupported(node_text(node), f"the weights of output {m} take {len(values)} "
                              f"magnitudes (e.g. {values[0]:.6g}, {values[1]:.6g})",
                              "binary (+-a) or ternary (-a, 0, +a) weights, one a per output")
        if len(values):
            scale[m] = values[0]
    signed = np.sign(w).astype(np.int8)
    kind = "ternary" if (signed == 0).any() else "binary"
    return signed, kind, exact(scale)


def _open_layer(node, walk: Walk, signed: np.ndarray, kind: str, mag: np.ndarray,
                act: Activations, window, shape, layer: dict, flat: bool) -> None:
    """Start a layer: the sums ``a s + b`` of ``signed`` weights on ``act``.

    The constant term of the input offsets is added to ``b``; the columns of ``signed`` are
    already in fewmul's order, with the window's ``(kh, kw, c)`` positions for a convolution.
    """
    m, n = signed.shape
    channels = act.type.channels
    col_channel = np.arange(n) % channels            # fewmul orders channels innermost
    b = np.zeros(m, dtype=object)
    for c in range(channels):
        if act.offset[c] != 0:
            counts = signed[:, col_channel == c].astype(np.int64).sum(1)
            b = b + np.array([act.offset[c] * int(k) for k in counts], dtype=object)
    b = b * mag
    a = mag * act.scale
    in_type = act.type if window is None else SlidingWindow("w", act.type, *window).out_type
    if window is None:
        in_type = TensorType.vector(act.type.size, act.type.kind, act.type.bits)
    walk.value = Sums(signed, kind, in_type, shape, a, b, layer, window, act, flat)


def _hwc_columns(act: Activations) -> np.ndarray:
    """For each fewmul input position (``(H, W, C)`` order), the ONNX one (``(C, H, W)``)."""
    c, h, w = act.type.shape
    return np.arange(c * h * w).reshape(c, h, w).transpose(1, 2, 0).reshape(-1)


def matmul(node, walk: Walk) -> None:
    """``MatMul(x, W)``: a fully-connected layer (``W`` is ``(inputs, outputs)``)."""
    w = walk.const(node, 1, "weight")
    _dense(node, walk, w.T, 1)


def gemm(node, walk: Walk) -> None:
    """``Gemm(x, W, bias)`` with ``transA = 0``: a fully-connected layer."""
    at = _attrs(node)
    if at.get("transA", 0):
        raise Unsupported(node_text(node), "transA = 1", "Gemm with transA = 0")
    w = walk.const(node, 1, "weight")
    w = w if at.get("transB", 0) else w.T
    alpha, beta = Fraction(float(at.get("alpha", 1.0))), Fraction(float(at.get("beta", 1.0)))
    _dense(node, walk, w, 1)
    sums = walk.value
    sums.a = sums.a * alpha
    sums.b = sums.b * alpha
    bias = walk.optional(node, 2)
    if bias is not None:
        sums.b = sums.b + _channelwise(node, walk, bias, sums.shape[0], 2) * beta


def _dense(node, walk: Walk, w: np.ndarray, i: int) -> None:
    act = _need_acts(node, walk)
    if not act.flat and act.type.shape[1:] != (1, 1):
        raise Unsupported(node_text(node), f"a matrix product on a {act.type.shape} tensor",
                          "Flatten or Reshape before a MatMul/Gemm")
    if w.ndim != 2 or w.shape[1] != act.type.size:
        raise Unsupported(node_text(node), f"weights of shape {list(w.shape)} for "
                          f"{act.type.size} inputs")
    signed, kind, mag = _weights(node, walk, w, i)
    signed = signed[:, _hwc_columns(act)]
    units = signed.shape[0]
    layer = {"units": units, "weights": kind, "bn": True}
    _open_layer(node, walk, signed, kind, mag, act, None, (units, 1, 1), layer, True)


def conv(node, walk: Walk) -> None:
    """``Conv(x, W, bias)``: square kernel and stride, ``valid`` or ``same`` padding, one
    group."""
    act = _need_acts(node, walk)
    if act.flat:
        raise Unsupported(node_text(node), "a convolution of a flattened tensor")
    at = _attrs(node)
    w = walk.const(node, 1, "weight")
    m, c, kh, kw = w.shape
    strides = list(at.get("strides", [1, 1]))
    pads = list(at.get("pads", [0, 0, 0, 0]))
    if kh != kw or strides[0] != strides[1] or at.get("group", 1) != 1 or \
            any(d != 1 for d in at.get("dilations", [1, 1])) or \
            at.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
        raise Unsupported(node_text(node), f"kernel {kh}x{kw}, strides {strides}, group "
                          f"{at.get('group', 1)}, dilations {list(at.get('dilations', [1, 1]))}",
                          "square kernels and strides, group 1, dilation 1, explicit pads")
    if len(set(pads)) != 1:
        raise Unsupported(node_text(node), f"asymmetric pads {pads}", "equal pads on all sides")
    pad = pads[0]
    if pad and act.pad:
        raise Unsupported(node_text(node), "a Pad node and the Conv's own pads")
    if pad and any(v != 0 for v in act.zero_code_value()):
        raise Unsupported(node_text(node), "zero padding of an input whose zero is not one "
                          "of its codes (e.g. +-1 activations): the hardware pads with code 0",
                          "a Pad node with the value of code 0, or inputs whose code 0 is 0")
    pad = pad or act.pad
    if c != act.type.channels:
        raise Unsupported(node_text(node), f"{c} input channels, the input has "
                          f"{act.type.channels}")
    if pad not in (0, (kh - 1) // 2) or (pad and kh % 2 == 0):
        raise Unsupported(node_text(node), f"padding {pad} for a {kh}x{kh} kernel",
                          "padding 0 (valid) or (kernel - 1) / 2 with an odd kernel (same)")
    window = (int(kh), int(strides[0]), int(pad))
    out = SlidingWindow("w", act.type, *window).out_type
    flat = w.transpose(0, 2, 3, 1).reshape(m, -1)          # (kh, kw, c) columns
    signed, kind, mag = _weights(node, walk, flat, 1)
    layer = {"kind": "conv", "filters": int(m), "kernel": int(kh), "stride": int(strides[0]),
             "padding": "same" if pad else "valid", "weights": kind, "bn": True}
    _open_layer(node, walk, signed, kind, mag, act, window, (int(m), *out.shape[1:]), layer,
                False)
    bias = walk.optional(node, 2)
    if bias is not None:
        walk.value.b = walk.value.b + exact(bias.reshape(-1))


# --------------------------------------------------------------------------- scale and bias

def batchnorm(node, walk: Walk) -> None:
    """``BatchNormalization`` (inference) of the sums, per channel."""
    sums = _need_sums(node, walk, "batch norm")
    gamma, beta, mean, var = (walk.const(node, i, what).astype(np.float64).reshape(-1)
                              for i, what in ((1, "scale"), (2, "bias"), (3, "mean"), (4, "var")))
    eps = float(np.float32(_attrs(node).get("epsilon", 1e-5)))
    inv = exact(1 / np.sqrt(var + eps))
    g = exact(gamma) * inv
    sums.a = sums.a * g
    sums.b = (sums.b - exact(mean)) * g + exact(beta)


def _operands(node, walk: Walk) -> tuple[np.ndarray, bool]:
    """The constant operand of a binary node and whether it comes first."""
    first = node.input[0] in walk.consts
    return walk.const(node, 0 if first else 1, "operand"), first


def mul(node, walk: Walk) -> None:
    """``Mul`` by a constant (scalar or per channel)."""
    c, _ = _operands(node, walk)
    _scale(node, walk, c, invert=False)


def div(node, walk: Walk) -> None:
    """``Div`` by a constant."""
    c, first = _operands(node, walk)
    if first:
        raise Unsupported(node_text(node), "a constant divided by the tensor")
    _scale(node, walk, c, invert=True)


def _scale(node, walk: Walk, c, invert: bool) -> None:
    value = walk.value
    f = _channelwise(node, walk, c, _channels(value), _ndim(value))
    if invert:
        if any(x == 0 for x in f):
            raise Unsupported(node_text(node), "division by zero")
        f = np.array([1 / x for x in f], dtype=object)
    if isinstance(value, Sums):
        _need_sums(node, walk, "scaling")
        value.a, value.b = value.a * f, value.b * f
        return
    if value.pad:
        raise Unsupported(node_text(node), "an op between a Pad and its Conv")
    if len(set(f)) != 1 or f[0] <= 0:
        raise Unsupported(node_text(node), "a per-channel or non-positive scale of activations",
                          "one positive scale per activation tensor")
    value.scale, value.offset = value.scale * f[0], value.offset * f[0]


def add(node, walk: Walk) -> None:
    """``Add`` of a constant (scalar or per channel)."""
    c, _ = _operands(node, walk)
    _shift(node, walk, c, sign=1, negate=False)


def sub(node, walk: Walk) -> None:
    """``Sub`` of a constant, or from a constant (``c - x``, sums only)."""
    c, first = _operands(node, walk)
    _shift(node, walk, c, sign=1 if first else -1, negate=first)


def _shift(node, walk: Walk, c, sign: int, negate: bool) -> None:
    value = walk.value
    f = _channelwise(node, walk, c, _channels(value), _ndim(value)) * sign
    if isinstance(value, Sums):
        _need_sums(node, walk, "a bias")
        if negate:
            value.a, value.b = -value.a, -value.b
        value.b = value.b + f
        return
    if negate:
        raise Unsupported(node_text(node), "activations subtracted from a constant")
    if value.pad:
        raise Unsupported(node_text(node), "an op between a Pad and its Conv")
    value.offset = value.offset + f


# --------------------------------------------------------------------------- activations

def _per_channel_scale(node, walk: Walk, scale: np.ndarray, channels: int, ndim: int):
    s = _channelwise(node, walk, scale, channels, ndim)
    if any(x <= 0 for x in s):
        raise Unsupported(node_text(node), "a scale that is not positive")
    return s


def _uniform(node, s: np.ndarray) -> Fraction:
    if len(set(s)) != 1:
        raise Unsupported(node_text(node), "a per-channel scale of activations (the next "
                          "layer's sums would not be one integer dot product)",
                          "one scale per activation tensor")
    return s[0]


def bipolar_quant(node, walk: Walk) -> None:
    """``BipolarQuant(x, scale)``: ``+scale`` where ``x >= 0``, else ``-scale``."""
    value = walk.value
    channels = _channels(value)
    s = _per_channel_scale(node, walk, walk.const(node, 1, "scale"), channels, _ndim(value))
    cuts = np.zeros((channels, 1), dtype=object)
    _activate(node, walk, Step(cuts + Fraction(0), np.zeros((channels, 1), bool)),
              lambda x, c: s[c] if x >= 0 else -s[c], "bipolar", _uniform(node, s),
              np.zeros(channels, dtype=object) + Fraction(0))


def quant(node, walk: Walk) -> None:
    """``Quant(x, scale, zeropt, bitwidth)``: a ``k``-bit uniform quantizer, zero-point 0."""
    value = walk.value
    channels = _channels(value)
    at = _attrs(node)
    s = _per_channel_scale(node, walk, walk.const(node, 1, "scale"), channels, _ndim(value))
    zp = walk.const(node, 2, "zero-point")
    bits = float(walk.const(node, 3, "bit width").reshape(-1)[0])
    if np.any(zp != 0):
        raise Unsupported(node_text(node), "a non-zero zero-point", "zero-point 0")
    if bits != int(bits) or not 1 <= bits <= 8:
        raise Unsupported(node_text(node), f"bit width {bits:g}", "1 to 8 bits")
    bits, signed, narrow = int(bits), bool(at.get("signed", 1)), bool(at.get("narrow", 0))
    mode = at.get("rounding_mode", "ROUND")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    rnd = rounding_function(mode)
    if rnd is None:
        raise Unsupported(node_text(node), f"rounding mode {mode!r}")
    if bits == 1 and signed:                       # qonnx: a 1-bit signed Quant is bipolar
        cuts = np.zeros((channels, 1), dtype=object) + Fraction(0)
        _activate(node, walk, Step(cuts, np.zeros((channels, 1), bool)),
                  lambda x, c: s[c] if x / s[c] >= 0 else -s[c], "bipolar", _uniform(node, s),
                  np.zeros(channels, dtype=object) + Fraction(0))
        return
    from qonnx.custom_op.general.quant import max_int, min_int
    qmin, qmax = int(min_int(signed, narrow, bits)), int(max_int(signed, narrow, bits))
    steps = quant_steps(rnd, qmin, qmax)
    cuts = np.array([[s[c] * cut for cut, _ in steps] for c in range(channels)], dtype=object)
    strict = np.array([[st for _, st in steps] for _ in range(channels)], dtype=bool)

    def f(x, c):
        return s[c] * min(max(rnd(x / s[c]), qmin), qmax)
    scale = _uniform(node, s)
    _levels(node, walk, Step(cuts, strict), f, scale, qmin)


def _levels(node, walk: Walk, step: Step, f, scale: Fraction, low) -> None:
    """An activation with ``L`` levels: level ``l`` has value ``scale * (l + low)``."""
    channels = step.cuts.shape[0]
    low = np.zeros(channels, dtype=object) + Fraction(low)
    if step.cuts.shape[1] == 1:                   # two levels: a bipolar bit
        _activate(node, walk, step, f, "bipolar", scale / 2, scale * low + scale / 2)
    else:
        _activate(node, walk, step, f, "unsigned", scale, scale * low)


def multithreshold(node, walk: Walk) -> None:
    """``MultiThreshold(x, T)``: ``out_scale * #(x >= T_j) + out_bias``, channels first."""
    value = walk.value
    channels = _channels(value)
    at = _attrs(node)
    layout = at.get("data_layout", b"")
    layout = layout.decode() if isinstance(layout, bytes) else layout
    if layout not in ("", "NCHW", "NC"):
        raise Unsupported(node_text(node), f"data layout {layout}", "channels-first tensors")
    t = walk.const(node, 1, "thresholds").astype(np.float64)
    if t.ndim != 2 or t.shape[0] not in (1, channels):
        raise Unsupported(node_text(node), f"thresholds of shape {list(t.shape)} for "
                          f"{channels} channels")
    t = np.sort(np.broadcast_to(t, (channels, t.shape[1])), axis=1)
    out_scale = Fraction(float(np.float32(at.get("out_scale", 1.0))))
    out_bias = Fraction(float(np.float32(at.get("out_bias", 0.0))))
    if out_scale <= 0:
        raise Unsupported(node_text(node), "out_scale <= 0")
    cuts = exact(t)

    def f(x, c):
        return out_scale * sum(1 for cut in cuts[c] if x >= cut) + out_bias
    _levels(node, walk, Step(cuts, np.zeros(t.shape, bool)), f, out_scale, out_bias / out_scale)


def sign(node, walk: Walk) -> None:
    """ONNX ``Sign``: -1, 0 or +1; refused where a sum can make it 0."""
    value = walk.value
    channels = _channels(value)
    if isinstance(value, Sums):
        _need_sums(node, walk, "Sign")
        parity = value.parity()
        for m, (a, b) in enumerate(zip(value.a, value.b)):
            zero = (a == 0 and b == 0) or (a != 0 and (-b / a).denominator == 1 and
                                           abs(-b / a) <= value.bound and
                                           (parity is None or int(-b / a) % 2 == parity))
            if zero:
                raise Unsupported(node_text(node), f"output {m} is 0 when its sum is "
                                  f"{-b / a if a else 0} (Sign(0) = 0 is not a bit)",
                                  "Sign where no sum gives exactly 0, or BipolarQuant")
    cuts = np.zeros((channels, 1), dtype=object) + Fraction(0)
    _activate(node, walk, Step(cuts, np.ones((channels, 1), bool)),
              lambda x, c: Fraction((x > 0) - (x < 0)), "bipolar", Fraction(1),
              np.zeros(channels, dtype=object) + Fraction(0))


def relu(node, walk: Walk) -> None:
    """``Relu``: on sums it must be followed by a quantizer; on activations it must not change
    them."""
    value = walk.value
    if isinstance(value, Sums):
        _need_sums(node, walk, "Relu")
        value.relu = True
        return
    _remap(node, walk, lambda x, c: max(x, Fraction(0)))


def _activate(node, walk: Walk, step: Step, f: Callable, kind: str, scale: Fraction,
              offset: np.ndarray) -> None:
    """Close the pending layer with an activation (or, on activations, check that the node
    keeps their codes)."""
    value = walk.value
    if isinstance(value, Activations):
        _remap(node, walk, f)
        return
    sums = value
    if sums.relu:                                # max(y, 0) >= c is always true for c <= 0
        always = np.array([[c < 0 or (c == 0 and not st) for c, st in zip(cr, sr)]
                           for cr, sr in zip(step.cuts, step.strict)], dtype=bool)
    else:
        always = np.zeros(step.cuts.shape, bool)
    t, flip = thresholds(sums, step)
    t[always] = -sums.bound
    levels = t.shape[1]
    bits = levels.bit_length()
    if kind == "unsigned" and bits > 8:
        raise Unsupported(node_text(node), f"{levels + 1} activation levels", "up to 8 bits")
    if kind == "unsigned" and levels < (1 << bits) - 1:    # never-reached levels fill the code
        t = np.concatenate([t, np.full((len(t), (1 << bits) - 1 - levels), sums.bound + 1)], 1)
    t = np.sort(t, axis=1)
    prefix = f"layer{walk.index}"
    ops = _weighted_ops(walk, sums, flip, prefix)
    if kind == "bipolar":
        ops.append(MultiThreshold(f"{prefix}.threshold", ops[-1].out_type, t[:, 0]))
        walk.layers.append({**sums.layer, "act": "sign", "act_bits": 1})
    else:
        ops.append(MultiThreshold(f"{prefix}.threshold", ops[-1].out_type, t))
        walk.layers.append({**sums.layer, "act": "quant", "act_bits": bits})
    walk.ops += ops
    out = ops[-1].out_type
    walk.value = Activations(out, scale, offset, flat=sums.flat)


def _weighted_ops(walk: Walk, sums: Sums, flip: np.ndarray, prefix: str) -> list:
    signed = sums.weights.copy()
    signed[flip] *= -1
    weights = signed if sums.weight_kind == "ternary" else (signed > 0).astype(np.uint8)
    ops = []
    in_type = sums.in_act.type
    if sums.window is not None:
        ops.append(SlidingWindow(f"{prefix}.window", in_type, *sums.window))
        in_type = ops[-1].out_type
    else:
        in_type = TensorType.vector(in_type.size, in_type.kind, in_type.bits)
    ops.append(MatVec(f"{prefix}.matvec", in_type, weights, sums.weight_kind))
    return ops


def _remap(node, walk: Walk, f: Callable) -> None:
    """An elementwise node on activations: it must map every code's value to an affine function
    of the code (one positive scale, an offset per channel), which it then is."""
    act = walk.value
    if act.pad:
        raise Unsupported(node_text(node), "an op between a Pad and its Conv")
    codes = act.codes()
    old = act.values()
    new = np.array([[Fraction(f(x, c)) for x in row] for c, row in enumerate(old)], dtype=object)
    lo, hi = codes[0], codes[-1]
    scales = {(row[-1] - row[0]) / (hi - lo) for row in new}
    scale = scales.pop() if len(scales) == 1 else None
    offsets = np.array([row[0] - (scale or 0) * lo for row in new], dtype=object)
    if scale is None or scale <= 0 or any(
            row[k] != scale * v + offsets[c] for c, row in enumerate(new)
            for k, v in enumerate(codes)):
        raise Unsupported(node_text(node), "it does not map the input's levels one to one onto "
                          "equally spaced values (it would quantize them again)",
                          "input quantizers that keep every input level, e.g. Quant with scale "
                          "1/(2^k - 1) on pixels scaled to [0, 1]")
    act.scale, act.offset = scale, offsets


# --------------------------------------------------------------------------- shape

def flatten(node, walk: Walk) -> None:
    """``Flatten`` (axis 1): later layers see ``(C, H, W)`` order, re-ordered to fewmul's."""
    if _attrs(node).get("axis", 1) != 1:
        raise Unsupported(node_text(node), "a Flatten axis other than 1")
    _flat(node, walk)


def reshape(node, walk: Walk) -> None:
    """``Reshape`` to ``(batch, C*H*W)``."""
    shape = [int(d) for d in walk.const(node, 1, "shape").reshape(-1)]
    size = walk.value.type.size if isinstance(walk.value, Activations) else \
        int(np.prod(walk.value.shape))
    if len(shape) != 2 or shape[1] not in (size, -1):
        raise Unsupported(node_text(node), f"a Reshape to {shape}", "a Reshape to (batch, -1)")
    _flat(node, walk)


def _flat(node, walk: Walk) -> None:
    value = walk.value
    if isinstance(value, Sums):
        if value.shape[1:] != (1, 1):
            raise Unsupported(node_text(node), "flattening a convolution's sums before their "
                              "activation")
        value.flat = True
        return
    if value.pad:
        raise Unsupported(node_text(node), "an op between a Pad and its Conv")
    value.flat = True


def pad(node, walk: Walk) -> None:
    """``Pad`` (constant) of the height and width by the value of code 0, for the next Conv."""
    act = _need_acts(node, walk)
    at = _attrs(node)
    mode = at.get("mode", b"constant")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    pads = at.get("pads") or [int(p) for p in walk.const(node, 1, "pads").reshape(-1)]
    value = at.get("value", 0.0)
    if len(node.input) > 2 and node.input[2]:
        value = float(walk.const(node, 2, "value").reshape(-1)[0])
    pads = list(pads)
    if mode != "constant" or act.flat or len(pads) != 8 or any(pads[k] for k in (0, 1, 4, 5)) \
            or len(set(pads[k] for k in (2, 3, 6, 7))) != 1:
        raise Unsupported(node_text(node), f"mode {mode!r}, pads {pads}",
                          "constant padding of height and width, equal on all sides")
    zero = act.zero_code_value()
    if any(z != Fraction(float(np.float32(value))) for z in zero):
        raise Unsupported(node_text(node), f"padding with {value}, which is not the value of "
                          f"the code the hardware pads with ({float(zero[0]):g})")
    act.pad = int(pads[2])


def maxpool(node, walk: Walk) -> None:
    """``MaxPool`` of a convolution's activations, kernel = stride, no padding."""
    if isinstance(walk.value, Sums):
        raise Unsupported(node_text(node), "a max-pool of sums before their activation",
                          "MaxPool after the activation")
    act = walk.value
    at = _attrs(node)
    k = list(at.get("kernel_shape", []))
    strides = list(at.get("strides", [1] * len(k)))
    if len(k) != 2 or k[0] != k[1] or strides != k or any(at.get("pads", [0])) or \
            any(d != 1 for d in at.get("dilations", [1, 1])) or act.flat or act.pad:
        raise Unsupported(node_text(node), f"kernel {k}, strides {strides}, pads "
                          f"{list(at.get('pads', [0, 0, 0, 0]))}",
                          "square max-pools with stride = kernel and no padding")
    if not walk.ops or not isinstance(walk.ops[-1], MultiThreshold) or \
            walk.layers[-1].get("kind") != "conv":
        raise Unsupported(node_text(node), "a max-pool that does not follow a convolution's "
                          "activation")
    size = int(k[0])
    _, h, w = act.type.shape
    if h % size or w % size:
        raise Unsupported(node_text(node), f"a {size}x{size} pool of a {h}x{w} tensor",
                          "pool sizes that divide the height and width")
    op = MaxPool(f"layer{walk.index - 1}.pool", act.type, size)
    walk.ops.append(op)
    walk.layers.append({"kind": "maxpool", "size": size, "pools": "activations"})
    act.type = op.out_type


def identity(node, walk: Walk) -> None:
    """``Identity`` and ``Dropout`` (inference): nothing."""


HANDLERS: dict[str, Callable] = {
    "MatMul": matmul, "Gemm": gemm, "Conv": conv, "BatchNormalization": batchnorm,
    "Mul": mul, "Div": div, "Add": add, "Sub": sub, "BipolarQuant": bipolar_quant,
    "Quant": quant, "MultiThreshold": multithreshold, "Sign": sign, "Relu": relu,
    "Flatten": flatten, "Reshape": reshape, "Pad": pad, "MaxPool": maxpool,
    "Identity": identity, "Dropout": identity,
}


def step(node, walk: Walk) -> None:
    """Map one node of the data path."""
    handler = HANDLERS.get(node.op_type)
    if handler is None:
        raise Unsupported(node_text(node), "an op type fewmul does not import", SUPPORTED)
    handler(node, walk)


def finish(walk: Walk, where: str) -> None:
    """Close the output layer: its sums become power-of-two scaled scores with integer offsets.

    The scores equal the graph's outputs divided by one positive constant.
    """
    value = walk.value
    if not isinstance(value, Sums) or value.relu:
        raise Unsupported(where, "the graph output is not the linear output of a MatMul/Gemm "
                          "(with scale and bias)", "linear class scores as the output")
    if value.window is not None:
        raise Unsupported(where, "the output layer is a convolution",
                          "a fully-connected output layer")
    flip = np.array([a < 0 for a in value.a], dtype=bool)
    a = np.array([-x if f else x for x, f in zip(value.a, flip)], dtype=object)
    b = value.b
    if any(x == 0 for x in a):
        raise Unsupported(where, "an output with scale 0")
    c0 = min(a)
    rel = [x / c0 for x in a]
    if not all(is_power_of_two(r) for r in rel) or max(rel) > (1 << MAX_SCORE_SHIFT):
        raise Unsupported(where, "the output scales of the classes differ by factors that are not "
                          "powers of two", "per-class output scales that are powers of two "
                          "apart (the hardware shifts)")
    shifts = np.array([r.numerator.bit_length() - 1 for r in rel], dtype=np.int64)
    if is_power_of_two(c0) and c0 >= 1 and all(x.denominator == 1 for x in b):
        frac = 0
        shifts = shifts + (c0.numerator.bit_length() - 1)
        scale = Fraction(1)
    else:
        for frac in range(MAX_FRACTION_BITS + 1):
            scale = c0 / (1 << frac)
            if all((x / scale).denominator == 1 for x in b):
                break
        else:
            raise Unsupported(where, "the output biases are not multiples of 2^-32 of the "
                              "smallest output scale (the hardware adds integer offsets)",
                              "biases that are exact in fixed point relative to the scale, e.g. "
                              "power-of-two scales, or no bias")
        shifts = shifts + frac
    offsets = np.array([int(x / scale) for x in b], dtype=np.int64)
    prefix = f"layer{walk.index}"
    ops = _weighted_ops(walk, value, flip, prefix)
    ops.append(Scores(f"{prefix}.scores", ops[-1].out_type, shifts, offsets))
    ops.append(Argmax("argmax", ops[-1].out_type))
    walk.ops += ops
    walk.layers.append({**value.layer, "act": "none", "act_bits": 1})
    walk.output_scale = scale
