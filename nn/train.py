"""The trainer: mini-batch training of a :class:`~fewmul.nn.model.Model`.

Each epoch records the loss and the accuracies of the deployed (quantized)
weights and of the full-resolution hidden weights on the three splits. The
parameters of the epoch with the best deployed validation accuracy are kept
(the papers report test error at the best validation epoch). "Float" accuracies
use the full-resolution hidden weights (the papers' test protocol); the others
use the deployed quantized weights, which is what the hardware computes.

With a ``checkpoint`` path the state is saved atomically after every epoch,
and ``resume=True`` continues from it with a result identical to an
uninterrupted run. An interruption (Ctrl-C) leaves the last complete
checkpoint in place.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
from tqdm import tqdm

from .checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from .config import LayerConfig, TrainConfig
from .data import Dataset
from .losses import loss_and_grad
from .model import Model
from .optim import Optimizer, learning_rate

__all__ = ["EpochMetrics", "TrainResult", "train", "train_epoch", "accuracy", "recompute_bn_stats"]

#: Images per forward pass when batch-norm statistics are recomputed.
RECOMPUTE_CHUNK = 500


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


def train_epoch(model: Model, opt: Optimizer, x: np.ndarray, y: np.ndarray, tcfg: TrainConfig,
                rng: np.random.Generator, lr: float) -> tuple[float, float]:
    """One pass over ``(x, y)`` in shuffled mini-batches; mean loss and training accuracy.

    The accuracy is that of the training forward passes themselves (weights as
    they were when each batch was seen), which costs nothing extra.
    """
    batch = tcfg.optimizer.batch
    order = rng.permutation(len(y))
    loss_sum, correct, seen = 0.0, 0, 0
    for start in range(0, len(order), batch):
        idx = order[start:start + batch]
        if len(idx) < 2:      # batch norm needs at least two samples
            continue
        scores = model.forward(x[idx], tcfg, train=True, rng=rng)
        loss, g = loss_and_grad(scores, y[idx], tcfg.loss)
        opt.step(model.backward(g, tcfg, rng), lr)
        loss_sum += loss * len(idx)
        correct += int((scores.argmax(1) == y[idx]).sum())
        seen += len(idx)
    return loss_sum / max(seen, 1), correct / max(seen, 1)


def recompute_bn_stats(model: Model, x: np.ndarray, tcfg: TrainConfig) -> None:
    """Batch norm's statistics recomputed on ``x`` with the deployed (deterministically
    quantized) weights: the mean over chunks of RECOMPUTE_CHUNK images of each chunk's
    statistics, each layer seeing the layers before it normalized as in training.

    The running averages of training mix statistics of weights that changed during the
    epoch (binary weights flip); the deployed model is evaluated with its own.
    """
    if len(x) < 2:
        raise ValueError(f"Recomputing batch-norm statistics needs at least 2 images, not {len(x)}")
    for k, chunk in enumerate(np.array_split(x, -(-len(x) // RECOMPUTE_CHUNK))):  # equal sizes
        # momentum 1 / (k + 1): the running value becomes the mean of the chunks so far
        cfg = dataclasses.replace(tcfg, bn_momentum=1 / (k + 1), quantize="deterministic")
        model.forward(chunk, cfg, train=True)
    for layer in model.layers:
        layer.cache = {}


def train(data: Dataset, layers: list[LayerConfig], tcfg: TrainConfig, *,
          progress: bool = True,
          on_epoch: Callable[[TrainResult], None] | None = None,
          checkpoint: Path | None = None, resume: bool = False) -> TrainResult:
    """Train a model on ``data``; ``on_epoch`` is called after every epoch.

    Parameters
    ----------
    checkpoint : Path, optional
        Written atomically after every epoch (see :mod:`fewmul.nn.checkpoint`).
    resume : bool
        Continue from ``checkpoint`` instead of starting afresh; the result is
        identical, bit for bit, to that of an uninterrupted run.
    """
    model = Model.init(data.shape, layers, tcfg.seed)
    opt = Optimizer(model, tcfg.optimizer)
    rng = np.random.default_rng(tcfg.seed + 1)
    xtr, ytr = data.scale(data.train.x), data.train.y
    xva, xte = data.scale(data.val.x), data.scale(data.test.x)
    result = TrainResult(model)
    best_state, best_val, first = None, -1.0, 0
    if resume:
        if checkpoint is None:
            raise ValueError("Resuming needs a checkpoint path")
        ck = load_checkpoint(checkpoint)
        model.load_state(ck.model)
        opt.load_state(ck.optimizer)
        rng.bit_generator.state = ck.rng_state
        best_state, best_val, result.best_epoch = ck.best_model, ck.best_val, ck.best_epoch
        result.history = [EpochMetrics(**m) for m in ck.history]
        first = ck.epoch + 1
    all_float = all(l.weights == "float" for l in layers)
    # the same images every epoch, drawn from their own generator (resuming stays exact)
    recompute = (xtr[np.sort(np.random.default_rng(tcfg.seed + 2).permutation(len(ytr))
                             [:tcfg.bn_recompute])] if tcfg.bn_recompute else None)
    bar = tqdm(range(first, tcfg.epochs), desc="train", unit="epoch", disable=not progress,
               initial=first, total=tcfg.epochs)
    for epoch in bar:
        t0 = time.perf_counter()
        lr = learning_rate(tcfg.optimizer, epoch, tcfg.epochs)
        loss, train_acc = train_epoch(model, opt, xtr, ytr, tcfg, rng, lr)
        if recompute is not None:
            recompute_bn_stats(model, recompute, tcfg)
        val_acc = accuracy(model, xva, data.val.y, tcfg)
        test_acc = accuracy(model, xte, data.test.y, tcfg)
        if all_float:      # nothing is quantized: the two evaluations are the same
            val_acc_float, test_acc_float = val_acc, test_acc
        else:
            val_acc_float = accuracy(model, xva, data.val.y, tcfg, quantized=False)
            test_acc_float = accuracy(model, xte, data.test.y, tcfg, quantized=False)
        m = EpochMetrics(epoch=epoch, lr=lr, loss=loss, train_acc=train_acc, val_acc=val_acc,
                         test_acc=test_acc, val_acc_float=val_acc_float,
                         test_acc_float=test_acc_float, seconds=time.perf_counter() - t0)
        result.history.append(m)
        if m.val_acc > best_val:
            best_val, best_state = m.val_acc, {k: v.copy() for k, v in model.state().items()}
            result.best_epoch = epoch
        if checkpoint is not None:
            save_checkpoint(checkpoint, Checkpoint(
                epoch=epoch, model=model.state(), optimizer=opt.state(),
                rng_state=rng.bit_generator.state, best_model=best_state, best_val=best_val,
                best_epoch=result.best_epoch, history=[dataclasses.asdict(h) for h in result.history]))
        bar.set_postfix(loss=f"{m.loss:.4f}", val=f"{m.val_acc:.3f}", test=f"{m.test_acc:.3f}")
        if on_epoch is not None:
            on_epoch(result)
    if best_state is not None:
        model.load_state(best_state)
    return result
