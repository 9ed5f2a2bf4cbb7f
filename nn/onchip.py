"""The fixed-point training step of the on-chip trainer: its integer golden model.

The net has one hidden layer: ``k``-bit unsigned pixels ``q`` (``N`` of them)
-> ``M`` sign units -> ``C`` linear class scores, binary weights in both
layers, no batch norm and no bias. Every parameter is a *hidden weight*, an
integer clipped to ``[-W0, W0]`` with ``W0 = 2**weight_bits``; the forward
pass uses its sign (``sign(0) = +1``). One training step on one sample
``(q, label)`` is, with all arithmetic on integers:

* forward: ``s1 = sign(W1) q``, ``h = (s1 >= 0)`` as ±1,
  ``s2 = sign(W2) h``; the prediction is the first index of the largest ``s2``;
* squared-hinge error: targets ``t = ±1`` (one-hot), the margin is
  ``2**score_shift`` in units of ``s2``: ``d2 = t * max(0, 2**score_shift - t s2)``
  (proportional to minus the loss gradient);
* back-propagation through the binary weights, add/subtract only:
  ``d1 = gate * (sign(W2)^T d2)`` with the straight-through gate
  ``gate = |s1| < 2**gate_shift``;
* quantized back-propagation (QBP): each pixel ``q_k > 0`` becomes
  ``2**e_k`` with ``e_k = floor(log2 q_k)`` rounded up with probability
  ``q_k / 2**floor - 1`` (unbiased), the random bits drawn from an LFSR;
  the hidden activations ``±1`` are already ``±2**0``;
* update, a shift of the error (a barrel shifter) rounded half away from zero,
  then a clip: ``W2[i, j] += h_j * rshift(d2[i], lr_shift2 + x)``,
  ``W1[j, k] += [q_k > 0] * rshift(d1[j], lr_shift1 + x - e_k)``,
  ``W <- clip(W, -W0, W0)``; the learning rate halves every ``lr_decay_steps``
  steps, ``lr_decay_max`` times: ``x = min(steps_done // lr_decay_steps, lr_decay_max)``.

``W2`` is updated with the same (old) weights that were used for ``d1``.
:class:`FloatTwin` runs the same algorithm in floating point (no rounding of
the shifted updates) with the same random draws, to measure how far the
fixed-point trajectory strays from the exact one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from fewmul.arith.onchip import LFSR_TAPS, LFSR_WIDTH, OnChipConfig

# OnChipConfig is defined in fewmul.arith.onchip (the gateware reads it too) and re-exported.
__all__ = ["OnChipConfig", "Lfsr", "qbp_exponents", "rshift_round", "OnChipNet", "StepTrace",
           "FloatTwin", "train_order"]


class Lfsr:
    """Fibonacci LFSR: each step outputs ``b = XOR of the tap bits`` and shifts it in at bit 0.

    Tap ``t`` (1-based) is state bit ``t - 1``; the state is ``(state << 1 | b)``
    truncated to ``width`` bits.
    """

    def __init__(self, seed: int, width: int = LFSR_WIDTH, taps: tuple[int, ...] = LFSR_TAPS):
        if not 0 < seed < (1 << width):
            raise ValueError(f"LFSR seed must be a non-zero {width}-bit integer, not {seed!r}")
        self.width, self.taps, self.state = width, taps, seed

    def step(self) -> int:
        b = 0
        for t in self.taps:
            b ^= (self.state >> (t - 1)) & 1
        self.state = ((self.state << 1) | b) & ((1 << self.width) - 1)
        return b

    def bits(self, n: int) -> int:
        """The next ``n`` output bits as an integer, the first drawn in bit 0."""
        return sum(self.step() << i for i in range(n))


def qbp_exponents(q: np.ndarray, random: np.ndarray) -> np.ndarray:
    """Stochastic power-of-two exponents of unsigned pixels ``q`` (QBP).

    ``e = floor(log2 q)``, plus one when ``random mod 2**e < q mod 2**e``: with
    ``random`` uniform on ``[0, 2**(k-1))`` that happens with probability
    ``q / 2**e - 1``. The result for ``q = 0`` is 0 (those pixels are skipped).
    """
    q = np.asarray(q, np.int64)
    e = np.zeros_like(q)
    for b in range(1, 9):
        e = np.where(q >> b > 0, b, e)
    low = (1 << e) - 1
    return e + ((np.asarray(random, np.int64) & low) < (q & low))


def rshift_round(a: np.ndarray, shift) -> np.ndarray:
    """``a / 2**shift`` rounded to nearest, ties away from zero (sign-magnitude shift)."""
    a = np.asarray(a, np.int64)
    shift = np.asarray(shift, np.int64)
    mag = ((np.abs(a) << 1) >> shift)
    mag = (mag >> 1) + (mag & 1)
    return np.where(a < 0, -mag, mag)


@dataclass
class StepTrace:
    """What one training step computed (every value the hardware also computes)."""
    s1: np.ndarray
    h: np.ndarray
    s2: np.ndarray
    prediction: int
    d2: np.ndarray
    d1: np.ndarray
    exponents: np.ndarray


def _signs(w: np.ndarray) -> np.ndarray:
    return np.where(w >= 0, 1, -1)


@dataclass
class OnChipNet:
    """Hidden weights of the on-chip net and its integer training step.

    ``w1`` is ``(hidden, inputs)``, ``w2`` is ``(classes, hidden)``: row ``j`` holds
    neuron ``j``'s incoming weights, as the weight memories do.
    """
    cfg: OnChipConfig
    w1: np.ndarray
    w2: np.ndarray
    lfsr: Lfsr = field(repr=False, default=None)
    steps: int = 0                          # steps done

    @property
    def weights(self) -> list[np.ndarray]:
        """The hidden weights of every layer, input layer first (``[w1, w2]``)."""
        return [self.w1, self.w2]

    @classmethod
    def init(cls, cfg: OnChipConfig) -> "OnChipNet":
        rng = np.random.default_rng(cfg.seed)
        w1 = rng.integers(-cfg.w0, cfg.w0 + 1, size=(cfg.hidden, cfg.inputs))
        w2 = rng.integers(-cfg.w0, cfg.w0 + 1, size=(cfg.classes, cfg.hidden))
        return cls(cfg, w1.astype(np.int64), w2.astype(np.int64), Lfsr(cfg.lfsr_seed))

    def copy(self) -> "OnChipNet":
        lfsr = Lfsr(self.lfsr.state)
        return OnChipNet(self.cfg, self.w1.copy(), self.w2.copy(), lfsr, self.steps)

    # -- inference ---------------------------------------------------------
    def scores(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(s1, s2)`` of a batch of pixel vectors ``q`` (``(n, inputs)``)."""
        s1 = np.asarray(q, np.int64) @ _signs(self.w1).T
        s2 = np.where(s1 >= 0, 1, -1) @ _signs(self.w2).T
        return s1, s2

    def predict(self, q: np.ndarray) -> np.ndarray:
        return self.scores(q)[1].argmax(1)

    def accuracy(self, q: np.ndarray, y: np.ndarray) -> float:
        return float((self.predict(q) == np.asarray(y)).mean())

    # -- training ----------------------------------------------------------
    def draw_exponents(self, q: np.ndarray) -> np.ndarray:
        """QBP exponents of one pixel vector; draws ``random_bits`` LFSR bits per pixel, in order."""
        random = np.array([self.lfsr.bits(self.cfg.random_bits) for _ in range(len(q))])
        return qbp_exponents(q, random)

    def errors(self, q: np.ndarray, label: int) -> StepTrace:
        """Forward pass, output error and back-propagated error of one sample (no update)."""
        cfg = self.cfg
        q = np.asarray(q, np.int64)
        s1 = _signs(self.w1) @ q
        h = np.where(s1 >= 0, 1, -1)
        s2 = _signs(self.w2) @ h
        t = np.full(cfg.classes, -1)
        t[label] = 1
        d2 = t * np.maximum(0, (1 << cfg.score_shift) - t * s2)
        d1 = np.where(np.abs(s1) < (1 << cfg.gate_shift), _signs(self.w2).T @ d2, 0)
        return StepTrace(s1, h, s2, int(np.argmax(s2)), d2, d1, np.zeros(0, np.int64))

    def step(self, q: np.ndarray, label: int) -> StepTrace:
        """One training step on ``(q, label)``; updates the weights and the LFSR in place."""
        cfg = self.cfg
        trace = self.errors(q, label)
        trace.exponents = self.draw_exponents(q)
        nz = np.asarray(q) > 0
        extra = cfg.lr_extra(self.steps)
        self.w2 = np.clip(self.w2 + trace.h[None, :]
                          * rshift_round(trace.d2, cfg.lr_shift2 + extra)[:, None],
                          -cfg.w0, cfg.w0)
        d1 = np.broadcast_to(trace.d1[:, None], self.w1.shape)
        shift1 = cfg.lr_shift1 + extra - trace.exponents[None, :]
        dw1 = np.where(nz[None, :], rshift_round(d1, shift1), 0)
        self.w1 = np.clip(self.w1 + dw1, -cfg.w0, cfg.w0)
        self.steps += 1
        return trace


class FloatTwin:
    """The same training algorithm in floating point: updates are not rounded.

    It starts from the integer net's weights and LFSR state and takes the same
    QBP exponents (they depend only on the pixels and the LFSR), so the only
    difference from :class:`OnChipNet` is the fixed-point rounding of the updates.
    """

    def __init__(self, net: OnChipNet):
        self.cfg = net.cfg
        self.w1 = net.w1.astype(np.float64)
        self.w2 = net.w2.astype(np.float64)
        self.lfsr = Lfsr(net.lfsr.state)
        self.steps = net.steps

    def _view(self) -> OnChipNet:
        return OnChipNet(self.cfg, self.w1, self.w2, self.lfsr)

    def accuracy(self, q: np.ndarray, y: np.ndarray) -> float:
        return self._view().accuracy(q, y)

    def step(self, q: np.ndarray, label: int) -> StepTrace:
        cfg = self.cfg
        view = self._view()
        trace = view.errors(q, label)
        trace.exponents = view.draw_exponents(q)
        nz = np.asarray(q) > 0
        extra = cfg.lr_extra(self.steps)
        self.w2 = np.clip(self.w2 + np.outer(trace.d2 * 2.0 ** -(cfg.lr_shift2 + extra), trace.h),
                          -cfg.w0, cfg.w0)
        scale = np.where(nz, 2.0 ** (trace.exponents - cfg.lr_shift1 - extra), 0.0)
        self.w1 = np.clip(self.w1 + np.outer(trace.d1, scale), -cfg.w0, cfg.w0)
        self.steps += 1
        return trace


def train_order(n_train: int, steps: int, seed: int) -> np.ndarray:
    """Indices of the training samples of ``steps`` steps: reshuffled every epoch."""
    rng = np.random.default_rng(seed)
    epochs = -(-steps // n_train)
    return np.concatenate([rng.permutation(n_train) for _ in range(epochs)])[:steps]
