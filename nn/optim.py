"""Optimizers with the papers' geometric learning-rate decay.

Binary and ternary layers scale the learning rate of their hidden weights by
``1 / W0`` and clip the hidden weights to ``[-W0, W0]`` after every update, as
the BinaryConnect code does.

With ``OptimizerConfig.lr_pow2`` the effective learning rate of every
parameter (after the ``1 / W0`` scaling) is rounded to the nearest power of
two, so that with SGD and quantized back-propagation the whole weight update
``lr * dz * x_q`` is a shift of the error.
"""

from __future__ import annotations

import numpy as np

from .config import OptimizerConfig
from .model import Model
from .quantize import ap2

__all__ = ["learning_rate", "Optimizer"]


def learning_rate(cfg: OptimizerConfig, epoch: int, epochs: int) -> float:
    """``lr`` decayed geometrically so that it reaches ``lr_final`` at the last epoch."""
    if epochs <= 1:
        return cfg.lr
    return cfg.lr * (cfg.lr_final / cfg.lr) ** (epoch / (epochs - 1))


class Optimizer:
    """SGD, Adam, or shift-based AdaMax (steps rounded to powers of two)."""

    def __init__(self, model: Model, cfg: OptimizerConfig):
        if cfg.name not in ("sgd", "adam", "adamax_shift"):
            raise ValueError(f"Optimizer must be 'sgd', 'adam' or 'adamax_shift', not {cfg.name!r}")
        self.model, self.cfg = model, cfg
        self.t = 0
        self.m = [{k: np.zeros_like(v) for k, v in l.params().items()} for l in model.layers]
        self.v = [{k: np.zeros_like(v) for k, v in l.params().items()} for l in model.layers]

    def state(self) -> dict[str, np.ndarray]:
        out = {"t": np.int64(self.t)}
        for i, (m, v) in enumerate(zip(self.m, self.v)):
            out.update({f"m{i}.{k}": a for k, a in m.items()})
            out.update({f"v{i}.{k}": a for k, a in v.items()})
        return out

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        self.t = int(state["t"])
        for i, (m, v) in enumerate(zip(self.m, self.v)):
            for k in m:
                m[k][...] = state[f"m{i}.{k}"]
                v[k][...] = state[f"v{i}.{k}"]

    def step(self, grads: list[dict[str, np.ndarray]], lr: float) -> None:
        self.t += 1
        b1, b2, eps = np.float32(0.9), np.float32(0.999), np.float32(1e-8)
        for layer, g, m, v in zip(self.model.layers, grads, self.m, self.v):
            for name, p in layer.params().items():
                scale = lr / layer.w0 if (name == "w" and layer.clipped) else lr
                if self.cfg.lr_pow2:
                    scale = float(ap2(np.float32(scale)))
                gp = g[name]
                if self.cfg.name == "sgd":
                    step = gp
                elif self.cfg.name == "adam":
                    m[name] = b1 * m[name] + (1 - b1) * gp
                    v[name] = b2 * v[name] + (1 - b2) * gp * gp
                    mh = m[name] / (1 - b1 ** self.t)
                    vh = v[name] / (1 - b2 ** self.t)
                    step = mh / (np.sqrt(vh) + eps)
                else:  # AdaMax with the step rounded to a power of two (a shift)
                    m[name] = b1 * m[name] + (1 - b1) * gp
                    v[name] = np.maximum(b2 * v[name], np.abs(gp))
                    step = ap2(m[name] / (1 - b1 ** self.t)) * ap2(1 / (v[name] + eps))
                p -= np.float32(scale) * step.astype(np.float32)
                if name == "w" and layer.clipped:
                    np.clip(p, -layer.w0, layer.w0, out=p)

