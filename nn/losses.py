"""Losses: value and gradient with respect to the output scores."""

from __future__ import annotations

import numpy as np

__all__ = ["loss_and_grad"]


def loss_and_grad(scores: np.ndarray, labels: np.ndarray, kind: str) -> tuple[float, np.ndarray]:
    """Mean loss over the batch and its gradient ``dL/dscores``.

    ``squared_hinge`` uses ±1 one-hot targets and averages over batch and classes
    (as the BinaryConnect code does); ``cross_entropy`` is softmax cross-entropy.
    """
    n, c = scores.shape
    if kind == "squared_hinge":
        t = -np.ones_like(scores)
        t[np.arange(n), labels] = 1
        margin = np.maximum(0, 1 - t * scores)
        return float((margin ** 2).mean()), (-2 * t * margin / np.float32(n * c)).astype(np.float32)
    if kind == "cross_entropy":
        z = scores - scores.max(1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(1, keepdims=True)
        loss = -np.log(p[np.arange(n), labels] + 1e-12).mean()
        p[np.arange(n), labels] -= 1
        return float(loss), (p / np.float32(n)).astype(np.float32)
    raise ValueError(f"Loss must be 'squared_hinge' or 'cross_entropy', not {kind!r}")
