"""The trainer: mini-batch training of a :class:`~fewmul.nn.model.Model`.

Each epoch records the loss and the accuracies of the deployed (quantized)
weights and of the full-resolution hidden weights on the three splits. The
parameters of the epoch with the best deployed validation accuracy are kept
(the papers report test error at the best validation epoch).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from tqdm import tqdm

from .config import LayerConfig, TrainConfig
from .data import Dataset
from .losses import loss_and_grad
from .model import Model
from .optim import Optimizer, learning_rate

__all__ = ["EpochMetrics", "TrainResult", "train", "accuracy"]


@dataclass
class EpochMetrics:
    epoch: int
    lr: float
    loss: float
    train_acc: float
    val_acc: float
    test_acc: float
    val_acc_float: float
    test_acc_float: float
    seconds: float


@dataclass
class TrainResult:
    model: Model
    history: list[EpochMetrics] = field(default_factory=list)
    best_epoch: int = -1


def accuracy(model: Model, x: np.ndarray, y: np.ndarray, tcfg: TrainConfig,
             quantized: bool = True) -> float:
    return float((model.predict(x, tcfg, quantized) == y).mean())


def train(data: Dataset, layers: list[LayerConfig], tcfg: TrainConfig, *,
          progress: bool = True,
          on_epoch: Callable[[TrainResult], None] | None = None) -> TrainResult:
    """Train a fresh model on ``data``; ``on_epoch`` is called after every epoch."""
    model = Model.init(data.inputs, layers, tcfg.seed)
    opt = Optimizer(model, tcfg.optimizer)
    rng = np.random.default_rng(tcfg.seed + 1)
    xtr, ytr = data.scale(data.train.x), data.train.y
    xva, xte = data.scale(data.val.x), data.scale(data.test.x)
    result = TrainResult(model)
    best_state, best_val = None, -1.0
    batch = tcfg.optimizer.batch
    bar = tqdm(range(tcfg.epochs), desc="train", unit="epoch", disable=not progress)
    for epoch in bar:
        t0 = time.perf_counter()
        lr = learning_rate(tcfg.optimizer, epoch, tcfg.epochs)
        order = rng.permutation(len(ytr))
        losses = []
        for start in range(0, len(order), batch):
            idx = order[start:start + batch]
            if len(idx) < 2:      # batch norm needs at least two samples
                continue
            scores = model.forward(xtr[idx], tcfg, train=True, rng=rng)
            loss, g = loss_and_grad(scores, ytr[idx], tcfg.loss)
            opt.step(model.backward(g), lr)
            losses.append(loss)
        m = EpochMetrics(
            epoch=epoch, lr=lr, loss=float(np.mean(losses)),
            train_acc=accuracy(model, xtr, ytr, tcfg),
            val_acc=accuracy(model, xva, data.val.y, tcfg),
            test_acc=accuracy(model, xte, data.test.y, tcfg),
            val_acc_float=accuracy(model, xva, data.val.y, tcfg, quantized=False),
            test_acc_float=accuracy(model, xte, data.test.y, tcfg, quantized=False),
            seconds=time.perf_counter() - t0)
        result.history.append(m)
        if m.val_acc > best_val:
            best_val, best_state = m.val_acc, {k: v.copy() for k, v in model.state().items()}
            result.best_epoch = epoch
        bar.set_postfix(loss=f"{m.loss:.4f}", val=f"{m.val_acc:.3f}", test=f"{m.test_acc:.3f}")
        if on_epoch is not None:
            on_epoch(result)
    if best_state is not None:
        model.load_state(best_state)
    return result
