"""The float model: fully-connected layers with quantized weights, batch norm
and binary/k-bit activations, with a hand-written backward pass.

A layer computes ``z = x Wq`` (``Wq`` the quantized hidden weights, or the
hidden weights themselves when evaluating at full resolution), then batch norm
``y = gamma (z - mean) / sqrt(var + eps) + beta`` (or ``y = z + b`` without it),
then the activation. Gradients flow to the hidden weights straight through the
quantizer.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .config import LayerConfig, TrainConfig
from .quantize import activation_gate, glorot_scale, quantize_activation, quantize_weights

__all__ = ["Layer", "Model"]

F32 = np.float32


@dataclass
class Layer:
    """Parameters and state of one layer."""
    cfg: LayerConfig
    w: np.ndarray                       # (fan_in, units) hidden weights
    w0: float
    gamma: np.ndarray
    beta: np.ndarray                    # BN shift, or the bias without BN
    mean: np.ndarray
    var: np.ndarray
    cache: dict = field(default_factory=dict, repr=False)

    @classmethod
    def init(cls, cfg: LayerConfig, fan_in: int, rng: np.random.Generator) -> "Layer":
        w0 = glorot_scale(fan_in, cfg.units)
        w = rng.uniform(-w0, w0, size=(fan_in, cfg.units)).astype(F32)
        m = cfg.units
        return cls(cfg, w, w0, np.ones(m, F32), np.zeros(m, F32), np.zeros(m, F32), np.ones(m, F32))

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

    def forward(self, x: np.ndarray, wq: np.ndarray, train: bool, tcfg: TrainConfig) -> np.ndarray:
        z = x @ wq
        if self.cfg.bn:
            if train:
                mean, var = z.mean(0), z.var(0)
                mom = F32(tcfg.bn_momentum)
                self.mean = ((1 - mom) * self.mean + mom * mean).astype(F32)
                self.var = ((1 - mom) * self.var + mom * var).astype(F32)
            else:
                mean, var = self.mean, self.var
            inv = F32(1) / np.sqrt(var + F32(tcfg.bn_eps))
            xhat = (z - mean) * inv
            y = self.gamma * xhat + self.beta
        else:
            xhat = inv = None
            y = z + self.beta
        if train:
            self.cache = {"x": x, "wq": wq, "xhat": xhat, "inv": inv, "y": y}
        return quantize_activation(y, self.cfg.act, self.cfg.act_bits)

    def backward(self, g_out: np.ndarray, need_input_grad: bool) -> tuple[dict, np.ndarray | None]:
        c = self.cache
        gy = g_out * activation_gate(c["y"], self.cfg.act)
        grads = {"beta": gy.sum(0)}
        if self.cfg.bn:
            xhat, inv = c["xhat"], c["inv"]
            grads["gamma"] = (gy * xhat).sum(0)
            gx = gy * self.gamma
            n = F32(len(gy))
            gz = inv / n * (n * gx - gx.sum(0) - xhat * (gx * xhat).sum(0))
        else:
            gz = gy
        grads["w"] = c["x"].T @ gz
        g_in = gz @ c["wq"].T if need_input_grad else None
        return grads, g_in


class Model:
    """A stack of :class:`Layer` s."""

    def __init__(self, layers: list[Layer]):
        self.layers = layers

    @classmethod
    def init(cls, inputs: int, cfgs: list[LayerConfig], seed: int) -> "Model":
        rng = np.random.default_rng(seed)
        layers, fan_in = [], inputs
        for cfg in cfgs:
            layers.append(Layer.init(cfg, fan_in, rng))
            fan_in = cfg.units
        return cls(layers)

    def forward(self, x: np.ndarray, tcfg: TrainConfig, *, train: bool = False,
                quantized: bool = True, rng: np.random.Generator | None = None) -> np.ndarray:
        """Output scores. ``quantized=False`` runs the full-resolution hidden weights."""
        stochastic = train and tcfg.quantize == "stochastic"
        for layer in self.layers:
            x = layer.forward(x, layer.weights(quantized, stochastic, rng), train, tcfg)
        return x

    def backward(self, g: np.ndarray) -> list[dict]:
        grads = []
        for i in reversed(range(len(self.layers))):
            gr, g = self.layers[i].backward(g, need_input_grad=i > 0)
            grads.append(gr)
        return grads[::-1]

    def predict(self, x: np.ndarray, tcfg: TrainConfig, quantized: bool = True,
                batch: int = 2000) -> np.ndarray:
        return np.concatenate([self.forward(x[i:i + batch], tcfg, quantized=quantized).argmax(1)
                               for i in range(0, len(x), batch)])

    # -- persistence -------------------------------------------------------
    def state(self) -> dict[str, np.ndarray]:
        out = {}
        for i, layer in enumerate(self.layers):
            for name in ("w", "gamma", "beta", "mean", "var"):
                out[f"layer{i}.{name}"] = getattr(layer, name)
            out[f"layer{i}.w0"] = np.float64(layer.w0)
        return out

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        for i, layer in enumerate(self.layers):
            for name in ("w", "gamma", "beta", "mean", "var"):
                key = f"layer{i}.{name}"
                if key not in state:
                    raise ValueError(f"Model state lacks {key!r}")
                if state[key].shape != getattr(layer, name).shape:
                    raise ValueError(f"{key}: shape {state[key].shape} does not match the spec's "
                                     f"{getattr(layer, name).shape}")
                setattr(layer, name, np.asarray(state[key], F32).copy())
