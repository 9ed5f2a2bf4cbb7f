"""The float model: fully-connected and convolutional layers with quantized weights,
batch norm and binary/k-bit activations, and max-pooling, with a hand-written
backward pass.

Tensors between layers are ``(n, H, W, C)``, channels innermost; the model's
input is what the data sets give, ``(n, pixels)`` flattened in ``(H, W, C)``
order. A fully-connected layer flattens its input the same way, so a dense
layer after a convolution sees ``(n, H * W * C)``. Convolutions and
max-pooling are in :mod:`fewmul.nn.conv`; a convolution is this module's
fully-connected layer applied to the matrix of its input windows.

A layer computes ``z = x Wq`` (``Wq`` the quantized hidden weights, or the
hidden weights themselves when evaluating at full resolution), then batch norm
``y = gamma (z - mean) / sqrt(var + eps) + beta`` (or ``y = z + b`` without it),
then the activation. Gradients flow to the hidden weights straight through the
quantizer.

Shift-based batch norm (``TrainConfig.bn_kind == "shift"``, BNN paper) rounds
the normalizing factor ``1 / sqrt(var + eps)`` and the scale ``gamma`` to
powers of two (:func:`~fewmul.nn.quantize.ap2`) and estimates the variance as
``mean((z - mean) * AP2(z - mean))``, so batch norm needs only shifts; the
backward pass treats ``AP2`` as the identity (straight through).

With quantized back-propagation (``TrainConfig.qbp``) the layer input ``x`` in
the weight gradient ``dW = x^T dz`` is replaced by its unbiased power-of-two
rounding (:func:`~fewmul.nn.quantize.qbp_round`), so every product in
``dW`` is a shift of ``dz``. The error ``dz`` itself is exact, including the
batch-norm Jacobian: the fully-connected code of the paper skips that Jacobian
in its QBP backward pass, but here the gradient stays the true gradient of
the quantized forward pass, only ``x`` being rounded (the rounding is
unbiased, so the expected weight gradient is unchanged).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np

from .config import LayerConfig, TrainConfig
from .quantize import activation_gate, ap2, glorot_scale, qbp_round, quantize_activation, quantize_weights

__all__ = ["Layer", "Model", "Shape"]

F32 = np.float32

#: ``(channels, height, width)`` of the tensor a layer takes or gives.
Shape = tuple[int, int, int]

#: Floats of one layer's activations a batch of :meth:`Model.predict` may hold (256 MB).
EVAL_FLOATS = 1 << 26


@dataclass
class Layer:
    """A fully-connected layer: its parameters and batch-norm state.

    ``in_shape`` and ``out_shape`` are ``(C, H, W)``; a dense layer's output is
    ``(units, 1, 1)``. :class:`~fewmul.nn.conv.Conv` is this layer applied to windows.
    """
    cfg: LayerConfig
    in_shape: Shape
    out_shape: Shape
    w: np.ndarray                       # (fan_in, units) hidden weights
    w0: float
    gamma: np.ndarray
    beta: np.ndarray                    # BN shift, or the bias without BN
    mean: np.ndarray
    var: np.ndarray
    cache: dict = field(default_factory=dict, repr=False)

    @classmethod
    def init(cls, cfg: LayerConfig, in_shape: Shape, rng: np.random.Generator) -> "Layer":
        c, h, w = in_shape
        return cls._make(cfg, in_shape, (cfg.units, 1, 1), c * h * w, rng)

    @classmethod
    def _make(cls, cfg: LayerConfig, in_shape: Shape, out_shape: Shape, fan_in: int,
              rng: np.random.Generator, **extra) -> "Layer":
        """Glorot-scaled hidden weights ``(fan_in, units)`` and fresh batch-norm state."""
        w0 = glorot_scale(fan_in, cfg.units)
        w = rng.uniform(-w0, w0, size=(fan_in, cfg.units)).astype(F32)
        m = cfg.units
        return cls(cfg, tuple(in_shape), tuple(out_shape), w, w0, np.ones(m, F32),
                   np.zeros(m, F32), np.zeros(m, F32), np.ones(m, F32), **extra)

    @property
    def clipped(self) -> bool:
        return self.cfg.weights != "float"

    def params(self) -> dict[str, np.ndarray]:
        """Trainable arrays by name (batch-norm scale only when BN is on)."""
        p = {"w": self.w, "beta": self.beta}
        if self.cfg.bn:
            p["gamma"] = self.gamma
        return p

    def weights(self, quantized: bool, stochastic: bool = False,
                rng: np.random.Generator | None = None) -> np.ndarray:
        if not quantized:
            return self.w
        return quantize_weights(self.w, self.w0, self.cfg.weights, stochastic, rng)

    def bn_factors(self, var: np.ndarray, tcfg: TrainConfig) -> tuple[np.ndarray, np.ndarray]:
        """``(inv, gamma)`` actually applied: ``1/sqrt(var + eps)`` and ``gamma``, or their AP2."""
        inv = F32(1) / np.sqrt(var + F32(tcfg.bn_eps))
        if tcfg.bn_kind == "shift":
            return ap2(inv), ap2(self.gamma)
        return inv, self.gamma

    def bn_affine(self, tcfg: TrainConfig) -> tuple[np.ndarray, np.ndarray]:
        """``(a, b)`` in float64 with the inference pre-activation ``y = a z + b``."""
        if not self.cfg.bn:
            return np.ones(self.cfg.units), self.beta.astype(np.float64)
        inv, gamma = self.bn_factors(self.var, tcfg)
        a = gamma.astype(np.float64) * inv.astype(np.float64)
        return a, self.beta.astype(np.float64) - a * self.mean.astype(np.float64)

    def forward(self, x: np.ndarray, wq: np.ndarray, train: bool, tcfg: TrainConfig) -> np.ndarray:
        """Activations ``(n, units)`` of a batch ``x`` (any shape ``(n, ...)``, flattened)."""
        z = self.linear(x, wq)          # a fresh array: batch norm works in place on it
        if self.cfg.bn:
            rows = len(z)
            if train:
                mean = _column_sums(z) / rows
                centred = _by_channel(np.subtract, z, mean, out=z)
                if tcfg.bn_kind == "shift":
                    var = _column_dots(centred, ap2(centred)) / rows
                else:
                    var = _column_dots(centred, centred) / rows
                mom = F32(tcfg.bn_momentum)
                self.mean = ((1 - mom) * self.mean + mom * mean).astype(F32)
                unbiased = var * F32(rows / (rows - 1))
                self.var = ((1 - mom) * self.var + mom * unbiased).astype(F32)
            else:
                mean, var = self.mean, self.var
                centred = _by_channel(np.subtract, z, mean, out=z)
            inv, gamma = self.bn_factors(var, tcfg)
            y = _by_channel(np.multiply, centred, inv * gamma)      # gamma xhat, xhat = centred inv
            _by_channel(np.add, y, self.beta, out=y)
        else:
            centred = inv = gamma = None
            y = _by_channel(np.add, z, self.beta, out=z)
        if train:
            self.cache = {"x": x, "wq": wq, "centred": centred, "inv": inv, "gamma": gamma, "y": y}
        return quantize_activation(y, self.cfg.act, self.cfg.act_bits)

    def backward(self, g_out: np.ndarray, need_input_grad: bool, tcfg: TrainConfig,
                 rng: np.random.Generator | None = None) -> tuple[dict, np.ndarray | None]:
        """Gradients of the parameters and, if asked, of the layer input.

        With ``tcfg.qbp`` the weight gradient uses the power-of-two rounded input
        (drawn from ``rng``).
        """
        c = self.cache
        g_out = g_out.reshape(c["y"].shape)
        gy = activation_gate(c["y"], self.cfg.act)      # a fresh array: worked on in place
        if gy.dtype == np.result_type(gy, g_out):
            gy *= g_out
        else:                                           # float64 errors through a float32 gate
            gy = gy * g_out
        grads = {"beta": _column_sums(gy)}
        if self.cfg.bn:
            # dz = inv gamma (gy - mean(gy) - xhat mean(gy xhat)): the batch-norm Jacobian,
            # with sum(gy gamma) = gamma dbeta, sum(gy gamma xhat) = gamma dgamma and
            # xhat = centred inv
            centred, inv = c["centred"], c["inv"]
            grads["gamma"] = _column_dots(gy, centred) * inv
            rows = gy.dtype.type(len(gy))
            t = _by_channel(np.multiply, centred, grads["gamma"] * inv / rows)
            _by_channel(np.add, t, grads["beta"] / rows, out=t)
            gy -= t
            _by_channel(np.multiply, gy, inv * c["gamma"], out=gy)
        gz = self.sum_grad(gy)
        grads["w"] = self.weight_grad(c["x"], gz, tcfg, rng)
        return grads, self.input_grad(gz, c["wq"]) if need_input_grad else None

    def sum_grad(self, gz: np.ndarray) -> np.ndarray:
        """The gradient of :meth:`linear`'s output from that of what batch norm took (the same,
        unless the layer pools its sums)."""
        return gz

    # The three products, which a convolution computes on its windows.
    def linear(self, x: np.ndarray, wq: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """``z = x wq`` with ``x`` flattened to ``(n, fan_in)``."""
        return np.matmul(x.reshape(len(x), -1), wq, out=out)

    def weight_grad(self, x: np.ndarray, gz: np.ndarray, tcfg: TrainConfig,
                    rng: np.random.Generator | None) -> np.ndarray:
        """``dL/dW = x^T gz``, with ``x`` rounded to powers of two under QBP."""
        x = x.reshape(len(x), -1)
        if tcfg.qbp:
            x = qbp_round(x, rng, tcfg.qbp_exp_min, tcfg.qbp_exp_max)
        return x.T @ gz

    def input_grad(self, gz: np.ndarray, wq: np.ndarray) -> np.ndarray:
        """``dL/dx = gz wq^T`` from ``dL/dz``."""
        return gz @ wq.T


def _column_dots(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(a * b).sum(0)`` without the temporary."""
    return np.einsum("ij,ij->j", a, b)


def _by_channel(op: np.ufunc, a: np.ndarray, v: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``op(a, v)`` for ``a`` ``(rows, C)`` and a per-column ``v`` ``(C,)``.

    With few columns NumPy's inner loop is one row, and its cost is per loop: the rows are
    taken ``r`` at a time, as ``(rows / r, r C)`` against ``v`` repeated ``r`` times.
    """
    rows, cols = a.shape
    r = _fold(rows, cols)
    if r == 1:
        return op(a, v, out=out)
    wide = (rows // r, r * cols)
    res = op(a.reshape(wide), np.tile(v, r), out=None if out is None else out.reshape(wide))
    return res.reshape(rows, cols)


@functools.lru_cache(maxsize=256)
def _fold(rows: int, cols: int, width: int = 2048) -> int:
    """The largest ``r`` dividing ``rows`` with ``r cols <= width``."""
    for r in range(max(1, width // cols), 0, -1):
        if rows % r == 0:
            return r
    return 1


def _column_sums(a: np.ndarray) -> np.ndarray:
    """``a.sum(0)`` as a matrix-vector product (several times faster for a few columns)."""
    return np.ones(len(a), a.dtype) @ a


class Model:
    """A stack of layers: :class:`Layer` (dense), :class:`~fewmul.nn.conv.Conv` and
    :class:`~fewmul.nn.conv.MaxPool`, one per entry of the spec's layer list."""

    def __init__(self, layers: list):
        self.layers = layers

    @classmethod
    def init(cls, input_shape: Shape | int, cfgs: list[LayerConfig], seed: int) -> "Model":
        """Fresh layers for inputs of ``input_shape`` ``(C, H, W)`` (an int ``n`` means ``(n, 1, 1)``).

        A convolution pads with -1 when its input comes from ``sign`` activations (directly
        or through max-pooling) and with 0 otherwise (the image, ``quant`` or ``relu``).
        """
        from .conv import Conv, MaxPool
        shape = (int(input_shape), 1, 1) if np.isscalar(input_shape) else tuple(input_shape)
        rng = np.random.default_rng(seed)
        layers, pad = [], 0.0
        for i, cfg in enumerate(cfgs):
            try:
                if cfg.kind == "dense":
                    layer = Layer.init(cfg, shape, rng)
                elif cfg.kind == "conv":
                    layer = Conv.init(cfg, shape, rng, pad_value=pad)
                elif cfg.kind == "maxpool":
                    if not layers or not isinstance(layers[-1], Conv) or layers[-1].pool > 1:
                        raise ValueError("a max-pool must follow a conv layer")
                    if cfg.pools == "sums":     # the conv pools its sums, before batch norm
                        layer = MaxPool.init(cfg, layers[-1].grid, fused=True)
                        layers[-1].pool_sums(cfg.size)
                    else:
                        layer = MaxPool.init(cfg, shape)
                else:
                    raise ValueError(f"kind must be 'dense', 'conv' or 'maxpool', not {cfg.kind!r}")
            except ValueError as exc:
                raise ValueError(f"layers[{i}]: {exc}") from None
            if cfg.kind != "maxpool":
                pad = -1.0 if cfg.act == "sign" else 0.0
            layers.append(layer)
            shape = layer.out_shape
        return cls(layers)

    def forward(self, x: np.ndarray, tcfg: TrainConfig, *, train: bool = False,
                quantized: bool = True, rng: np.random.Generator | None = None) -> np.ndarray:
        """Output scores ``(n, outputs)`` of inputs ``(n, pixels)``.

        ``quantized=False`` runs the full-resolution hidden weights.
        """
        stochastic = train and tcfg.quantize == "stochastic"
        n = len(x)
        for layer in self.layers:
            x = layer.forward(x, layer.weights(quantized, stochastic, rng), train, tcfg)
        return x.reshape(n, -1)

    def backward(self, g: np.ndarray, tcfg: TrainConfig,
                 rng: np.random.Generator | None = None) -> list[dict]:
        """Parameter gradients of every layer, given ``dL/dscores`` of the last forward pass."""
        grads = []
        for i in reversed(range(len(self.layers))):
            gr, g = self.layers[i].backward(g, i > 0, tcfg, rng)
            grads.append(gr)
        return grads[::-1]

    def predict(self, x: np.ndarray, tcfg: TrainConfig, quantized: bool = True,
                batch: int | None = None) -> np.ndarray:
        """Labels of ``x``, ``batch`` images at a time (default: up to 2000, fewer when a
        layer's activations would pass EVAL_FLOATS floats)."""
        if batch is None:
            largest = max(int(np.prod(layer.out_shape)) for layer in self.layers)
            batch = int(np.clip(EVAL_FLOATS // largest, 1, 2000))
        return np.concatenate([self.forward(x[i:i + batch], tcfg, quantized=quantized).argmax(1)
                               for i in range(0, len(x), batch)])

    # -- persistence -------------------------------------------------------
    _STATE = ("w", "gamma", "beta", "mean", "var")

    def _weighted(self):
        """``(i, layer)`` of the layers with parameters (``i`` the index in the spec's list)."""
        return [(i, layer) for i, layer in enumerate(self.layers) if isinstance(layer, Layer)]

    def state(self) -> dict[str, np.ndarray]:
        """``layer{i}.w`` etc. for every dense and conv layer (max-pooling has none)."""
        out = {}
        for i, layer in self._weighted():
            for name in self._STATE:
                out[f"layer{i}.{name}"] = getattr(layer, name)
            out[f"layer{i}.w0"] = np.float64(layer.w0)
        return out

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        for i, layer in self._weighted():
            for name in self._STATE:
                key = f"layer{i}.{name}"
                if key not in state:
                    raise ValueError(f"Model state lacks {key!r}")
                if state[key].shape != getattr(layer, name).shape:
                    raise ValueError(f"{key}: shape {state[key].shape} does not match the spec's "
                                     f"{getattr(layer, name).shape}")
                setattr(layer, name, np.asarray(state[key], F32).copy())
