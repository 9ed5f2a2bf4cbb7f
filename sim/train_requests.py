"""The samples a run of the fast training harness streams into the design.

:func:`plan_requests` lays out the training samples of a run in the build's
order, mixes in a few inference requests when the design has a ``train`` bit
and marks the steps after which the harness writes a snapshot of the on-chip
weights; :class:`Requests` holds them as the harness reads them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .fast import pack_words

if TYPE_CHECKING:
    from .train_harness import TrainHarness
    from .train_runner import TrainingBuild

__all__ = ["Requests", "plan_requests"]


@dataclass
class Requests:
    """The samples streamed into the design, in order.

    Attributes
    ----------
    train : numpy.ndarray of bool
        Whether each request is a training sample (else an inference request).
    index : numpy.ndarray of int
        The sample's index in the training set (training) or the test set (inference).
    step : numpy.ndarray of int
        Training steps done when its result comes: its own step for a training sample, the
        steps before it for an inference request.
    words : numpy.ndarray of uint32
        Per request a flags word (bit 0: write a snapshot after its result) and the payload.
    """
    train: np.ndarray
    index: np.ndarray
    step: np.ndarray
    words: np.ndarray

    def where(self, i: int) -> str:
        """Request ``i`` for a message: ``"step 5"`` or ``"inference request after step 5"``."""
        if self.train[i]:
            return f"step {int(self.step[i])}"
        return f"inference request after step {int(self.step[i])}"


def _place(words: np.ndarray, values: np.ndarray, offset: int, bits: int) -> None:
    """OR the ``bits``-bit ``values`` (one per row) into ``words`` at bit ``offset``."""
    values = np.asarray(values, np.uint64)
    for b in range(bits):
        word, bit = divmod(offset + b, 32)
        words[:, word] |= (((values >> np.uint64(b)) & np.uint64(1)) << np.uint64(bit)).astype(
            np.uint32)


def plan_requests(build: TrainingBuild, steps: int, eval_every: int, spec: TrainHarness,
                  inference: int | None = None, data=None) -> Requests:
    """The requests of a run of ``steps`` training steps.

    Training samples come in :meth:`TrainingBuild.order`. When the layout has a ``train`` bit,
    ``inference`` inference requests (default 8; test images in order) are mixed in: one
    before the first step and the others spread evenly over the run. A snapshot follows every
    ``eval_every``-th step and the last one. ``data`` is the build's data set if already loaded.
    """
    lay = build.layout
    has_train = "train_offset" in lay
    if inference is None:
        inference = 8 if has_train else 0
    if not isinstance(inference, int) or isinstance(inference, bool) or inference < 0:
        raise ValueError(f"Inference request count must be a non-negative integer, not "
                         f"{inference!r}")
    if inference and not has_train:
        raise ValueError("inference requests need a design with a train bit (train_offset in "
                         "train.json's layout)")
    data = build.dataset() if data is None else data
    order = build.order(steps)
    after = sorted(set(int(round(k * steps / inference)) for k in range(inference))) \
        if inference else []
    train, index, step = [], [], []
    infer_at = 0
    for s in range(steps + 1):
        while infer_at < len(after) and after[infer_at] == s:
            train.append(False)
            index.append(infer_at % len(data.test.y))
            step.append(s)
            infer_at += 1
        if s < steps:
            train.append(True)
            index.append(int(order[s]))
            step.append(s + 1)
    train, index, step = np.array(train), np.array(index, np.int64), np.array(step, np.int64)
    pixels = np.where(train[:, None], data.train.x[np.where(train, index, 0)],
                      data.test.x[np.where(train, 0, index)])
    labels = np.where(train, data.train.y[np.where(train, index, 0)],
                      data.test.y[np.where(train, 0, index)])
    payload = pack_words(pixels.astype(np.int64), build.cfg.input_bits, spec.in_words)
    _place(payload, labels, lay["label_offset"], max(1, int(labels.max()).bit_length()))
    if has_train:
        _place(payload, train.astype(np.int64), lay["train_offset"], 1)
    flags = (train & ((step % eval_every == 0) | (step == steps))).astype(np.uint32)
    return Requests(train, index, step, np.concatenate([flags[:, None], payload], axis=1))
