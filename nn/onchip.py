"""The fixed-point training step of the on-chip trainer: its integer golden model.

The net is ``sizes = (N, M_1, ..., M_{L-1}, C)`` (:class:`OnChipConfig`): ``k``-bit
unsigned pixels ``q`` -> ``L - 1`` hidden layers of sign units -> ``C`` linear class
scores, no batch norm and no bias. Every parameter is a *hidden weight*, an integer
clipped to ``[-W0, W0]`` (``W0 = 2**weight_bits``); the forward pass uses its effective
weight ``T(w)``: ``+1 if w >= 0 else -1`` (binary) or ``sign(w) if |w| > W0/2 else 0``
(ternary). One training sample ``(q, label)`` is, with all arithmetic on integers:

* forward: ``x_0 = q``; ``s_l = T(W_l) x_{l-1}``; hidden layers ``x_l = h_l = +1 if
  s_l >= 0 else -1`` and the straight-through gate ``g_l = |s_l| < 2**gate_shifts[l-1]``;
  the prediction is the first index of the largest ``s_L``;
* squared-hinge error: targets ``t = ±1`` (one-hot), margin ``2**score_shift`` in units of
  ``s_L``: ``d_L = t * max(0, 2**score_shift - t s_L)`` (proportional to minus the loss
  gradient);
* back-propagation through the effective weights the forward pass used, add/subtract only:
  ``e_l = T(W_{l+1})^T d_{l+1}``, ``d_l = g_l * rshift_round(e_l, backprop_shifts[l-1])``;
* quantized back-propagation (QBP): each pixel ``q_k > 0`` becomes ``2**e_k`` with
  ``e_k = floor(log2 q_k)`` rounded up with probability ``q_k / 2**floor - 1`` (unbiased),
  ``input_bits - 1`` random bits per pixel drawn from an LFSR, pixels in order, for every
  training sample; the hidden activations ``±1`` are already ``±2**0``;
* update, a shift of the error (a barrel shifter) rounded half away from zero, with
  ``x = lr_extra(samples done)``: ``U_1[j, k] = [q_k > 0] rshift_round(d_1[j],
  lr_shifts[0] + x - e_k)`` and ``U_l[j, k] = h_{l-1,k} rshift_round(d_l[j],
  lr_shifts[l-1] + x)``;
* mini-batches of ``B = 2**batch_shift`` samples: ``A_l += U_l`` for each sample (all
  computed with the weights of the batch's start); after the ``B``-th,
  ``W_l = clip(W_l + rshift_round(A_l, batch_shift), -W0, W0)`` and ``A_l = 0``. With
  ``B = 1`` this is ``W_l = clip(W_l + U_l)`` after every sample.

An inference request (:meth:`OnChipNet.infer`) is the forward pass alone: no LFSR draw,
no update, not counted as a training sample.

:class:`FloatTwin` runs the same algorithm in floating point (no rounding of the shifted
errors and updates) with the same random draws, to measure how far the fixed-point
trajectory strays from the exact one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from fewmul.arith.onchip import LFSR_TAPS, LFSR_WIDTH, OnChipConfig

# OnChipConfig is defined in fewmul.arith.onchip (the gateware reads it too) and re-exported.
__all__ = ["OnChipConfig", "Lfsr", "qbp_exponents", "rshift_round", "effective_weights",
           "OnChipNet", "StepTrace", "FloatTwin", "train_order"]


class Lfsr:
    """Fibonacci LFSR: each step outputs ``b = XOR of the tap bits`` and shifts it in at bit 0.

    Tap ``t`` (1-based) is state bit ``t - 1``; the state is ``(state << 1 | b)``
    truncated to ``width`` bits.

    The output bits obey ``y_n = XOR_t y_{n-t}`` (``y_{-1-i}`` is seed bit ``i``), and so,
    squaring the characteristic polynomial over GF(2), ``y_n = XOR_t y_{n - t b}`` for any
    power of two ``b``: blocks of ``b`` bits are computed at once from the ones before
    (:meth:`bits_array`), ahead of use; :attr:`state` is the state after the bits drawn.
    """

    #: Largest block of output bits computed in one go.
    BLOCK = 1 << 16

    def __init__(self, seed: int, width: int = LFSR_WIDTH, taps: tuple[int, ...] = LFSR_TAPS):
        if not 0 < seed < (1 << width):
            raise ValueError(f"LFSR seed must be a non-zero {width}-bit integer, not {seed!r}")
        if not taps or max(taps) > width or min(taps) < 1:
            raise ValueError(f"LFSR taps must be in 1..{width}, not {taps!r}")
        self.width, self.taps = width, tuple(taps)
        # Output bits, oldest first: the seed's bits (y_{-width} .. y_{-1}), then the sequence.
        self._y = np.array([(seed >> (width - 1 - i)) & 1 for i in range(width)], np.uint8)
        self._len = width                   # bits of _y computed (the rest is room)
        self._pos = width                   # index in _y of the next bit to draw

    @property
    def state(self) -> int:
        """The register: bit ``i`` is the ``i + 1``-th latest output (the seed before any)."""
        recent = self._y[self._pos - self.width:self._pos][::-1]
        return int(sum(int(b) << i for i, b in enumerate(recent)))

    def copy(self) -> "Lfsr":
        """An LFSR in the same state (and with the same bits computed ahead)."""
        other = Lfsr.__new__(Lfsr)
        other.width, other.taps = self.width, self.taps
        other._y, other._len, other._pos = self._y[:self._len].copy(), self._len, self._pos
        return other

    def _extend(self, n: int) -> None:
        """Compute output bits until ``n`` bits lie ahead of the next one drawn."""
        span = max(self.taps)
        while self._len < self._pos + n:
            length = self._len
            block = 1
            while block * 2 <= min(self.BLOCK, length // span):
                block *= 2
            if length + block > len(self._y):
                # Keep what the state and the next blocks need, at the front of a buffer
                # with room for many more blocks (grown if one draw needs more).
                start = min(self._pos - self.width, length - span * self.BLOCK)
                start = max(start, 0)
                size = max(4 * (length - start + block), 2 * (self._pos + n - start), 1024)
                y = np.empty(size, np.uint8)
                y[:length - start] = self._y[start:length]
                self._y, self._pos, self._len = y, self._pos - start, length - start
                length = self._len
            # y_m, m in [length, length + block), from y_{m - t block}: the last span * block
            # bits (valid once length >= span * block: P(z)^block = P(z^block) over GF(2)).
            hist = self._y[length - span * block:length]
            new = self._y[length:length + block]
            new[:] = 0
            for t in self.taps:
                new ^= hist[(span - t) * block:(span - t + 1) * block]
            self._len = length + block

    def bits_array(self, n: int) -> np.ndarray:
        """The next ``n`` output bits (``uint8``, first drawn first)."""
        self._extend(n)
        out = self._y[self._pos:self._pos + n].copy()
        self._pos += n
        return out

    def step(self) -> int:
        """Advance once; the bit shifted in."""
        return int(self.bits_array(1)[0])

    def bits(self, n: int) -> int:
        """The next ``n`` output bits as an integer, the first drawn in bit 0."""
        return int(sum(int(b) << i for i, b in enumerate(self.bits_array(n))))


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


def effective_weights(w: np.ndarray, cfg: OnChipConfig, dtype=np.int8) -> np.ndarray:
    """``T(w)``: the sign (``+1`` for ``w >= 0``), or for ternary weights
    ``sign(w)`` where ``|w| > W0/2`` and 0 elsewhere (``int8`` unless ``dtype`` says)."""
    w = np.asarray(w)
    if cfg.weights == "ternary":
        threshold = cfg.ternary_threshold
        t = (w > threshold).astype(dtype)
        t -= w < -threshold
        return t
    t = (w >= 0).astype(dtype)
    t *= 2
    t -= 1
    return t


@dataclass
class StepTrace:
    """What one training sample computed (every value the hardware also computes).

    Per-layer lists are input layer first: ``s`` and ``d`` have ``L`` entries, ``h``,
    ``gates`` and ``e`` one per hidden layer; ``exponents`` are the pixels' QBP exponents;
    ``applied`` says whether this sample ended a batch (the weights changed).
    """
    s: list[np.ndarray]
    h: list[np.ndarray]
    gates: list[np.ndarray]
    prediction: int
    e: list[np.ndarray] = field(default_factory=list)
    d: list[np.ndarray] = field(default_factory=list)
    exponents: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    applied: bool = False


def _clip(w: np.ndarray, w0: int) -> np.ndarray:
    """``w`` clipped to ``[-w0, w0]`` in place (a new array the caller made)."""
    return np.clip(w, -w0, w0, out=w)


class _Trainer:
    """The training algorithm, for integer (:class:`OnChipNet`) or float (:class:`FloatTwin`)
    weights: they differ in :meth:`_shift` (rounded or exact) and the weights' dtype."""

    cfg: OnChipConfig
    weights: list[np.ndarray]
    acc: list[np.ndarray]
    lfsr: Lfsr
    steps: int

    # -- the arithmetic that differs ------------------------------------------
    def _shift(self, a: np.ndarray, shift) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    def _update_table(self, d: np.ndarray, low: int, count: int) -> np.ndarray:
        """``(len(d), count)``: column ``c`` is ``d`` shifted right by ``low + c``."""
        return np.stack([self._shift(d, low + c) for c in range(count)], axis=1)

    # -- effective weights, cached until the weights change -------------------
    def _effective(self) -> list[np.ndarray]:
        if self._t is None:
            self._t = [effective_weights(w, self.cfg, self._dot) for w in self.weights]
        return self._t

    def _changed(self) -> None:
        self._t = None

    # -- inference ------------------------------------------------------------
    def scores(self, q: np.ndarray) -> list[np.ndarray]:
        """Every layer's sums ``s_l`` for a batch of pixel vectors ``q`` (``(n, N)``)."""
        x = np.asarray(q, self._dot)
        out = []
        t = self._effective()
        for i, ti in enumerate(t):
            s = np.rint(x @ ti.T).astype(np.int64)
            out.append(s)
            x = np.where(s >= 0, 1, -1).astype(self._dot)
        return out

    def predict(self, q: np.ndarray) -> np.ndarray:
        """Predicted classes of a batch of pixel vectors (``(n, N)``)."""
        return self.scores(np.atleast_2d(q))[-1].argmax(1)

    def accuracy(self, q: np.ndarray, y: np.ndarray) -> float:
        """Share of ``q`` predicted as ``y``."""
        return float((self.predict(q) == np.asarray(y)).mean())

    def infer(self, q: np.ndarray) -> int:
        """An inference request: the prediction for one pixel vector; nothing changes."""
        return int(self.predict(np.asarray(q)[None, :])[0])

    # -- training -------------------------------------------------------------
    def _forward(self, q: np.ndarray) -> StepTrace:
        cfg = self.cfg
        t = self._effective()
        x = np.asarray(q, self._dot)
        s, h, gates = [], [], []
        for i, ti in enumerate(t):
            si = np.rint(ti @ x).astype(np.int64)
            s.append(si)
            if i < len(t) - 1:
                h.append(np.where(si >= 0, 1, -1))
                gates.append(np.abs(si) < (1 << cfg.gate_shifts[i]))
                x = h[-1].astype(self._dot)
        return StepTrace(s, h, gates, int(np.argmax(s[-1])))

    def errors(self, q: np.ndarray, label: int) -> StepTrace:
        """Forward pass, output error and back-propagated errors of one sample (no update,
        no random draw)."""
        cfg = self.cfg
        if not 0 <= int(label) < cfg.sizes[-1]:
            raise ValueError(f"Label must be in 0..{cfg.sizes[-1] - 1}, not {label!r}")
        trace = self._forward(q)
        target = np.full(cfg.sizes[-1], -1, np.int64)
        target[int(label)] = 1
        margin = 1 << cfg.score_shift
        d = [None] * cfg.layers
        e = [None] * (cfg.layers - 1)
        d[-1] = target * np.maximum(0, margin - target * trace.s[-1])
        t = self._effective()
        for i in range(cfg.layers - 2, -1, -1):
            back = t[i + 1].T @ d[i + 1].astype(self._dot)
            e[i] = np.rint(back).astype(np.int64) if self._integer else back
            d[i] = np.where(trace.gates[i], self._shift(e[i], cfg.backprop_shifts[i]), 0)
        trace.d, trace.e = d, e
        return trace

    def draw_exponents(self, q: np.ndarray) -> np.ndarray:
        """QBP exponents of one pixel vector; draws ``random_bits`` LFSR bits per pixel, in order."""
        q = np.asarray(q)
        k = self.cfg.random_bits
        if k:
            bits = self.lfsr.bits_array(len(q) * k).reshape(len(q), k).astype(np.int64)
            random = bits @ (np.int64(1) << np.arange(k, dtype=np.int64))
        else:
            random = np.zeros(len(q), np.int64)
        return qbp_exponents(q, random)

    def updates(self, q: np.ndarray, trace: StepTrace) -> list[np.ndarray]:
        """One sample's updates ``U_l`` of every layer (before batching and the clip)."""
        cfg = self.cfg
        x = cfg.lr_extra(self.steps)
        # Layer 1: the shift is lr_shifts[0] + x - e_k, one of k + 1 values; a table of d_1
        # shifted by each, then a gather per pixel (column k of the table; zero for q_k = 0).
        low = cfg.lr_shifts[0] + x - cfg.max_exponent
        table = self._update_table(trace.d[0], low, cfg.max_exponent + 2)
        table[:, -1] = 0
        column = np.where(np.asarray(q) > 0, cfg.max_exponent - trace.exponents,
                          cfg.max_exponent + 1)
        out = [table.astype(self._wtype)[:, column]]
        for i in range(1, cfg.layers):
            shifted = self._shift(trace.d[i], cfg.lr_shifts[i] + x).astype(self._wtype)
            out.append(np.multiply.outer(shifted, trace.h[i - 1].astype(self._wtype)))
        return out

    def step(self, q: np.ndarray, label: int) -> StepTrace:
        """One training sample ``(q, label)``: updates the batch sums, the LFSR and, after the
        last sample of a batch, the weights, in place."""
        cfg = self.cfg
        q = np.asarray(q)
        if q.shape != (cfg.sizes[0],):
            raise ValueError(f"Sample must have {cfg.sizes[0]} pixels, not shape {q.shape}")
        trace = self.errors(q, label)
        trace.exponents = self.draw_exponents(q)
        updates = self.updates(q, trace)
        w0 = cfg.w0
        if cfg.batch_shift == 0:
            self.weights = [_clip(w + u, w0) for w, u in zip(self.weights, updates)]
            trace.applied = True
        else:
            for a, u in zip(self.acc, updates):
                a += u
            if (self.steps + 1) % cfg.batch == 0:
                self.weights = [_clip(w + self._shift(a, cfg.batch_shift).astype(self._wtype), w0)
                                for w, a in zip(self.weights, self.acc)]
                for a in self.acc:
                    a[...] = 0
                trace.applied = True
        if trace.applied:
            self._changed()
        self.steps += 1
        return trace


class OnChipNet(_Trainer):
    """Hidden weights of the on-chip net and its integer training step.

    Parameters
    ----------
    cfg : OnChipConfig
    weights : list of numpy.ndarray
        Hidden weights of every layer, input layer first; layer ``l``'s is
        ``cfg.shapes[l-1]`` = ``(M_l, M_{l-1})`` (row ``j``: unit ``j``'s incoming weights, as
        the weight memories hold them), integers in ``[-W0, W0]``.
    lfsr : Lfsr, optional
        The random source of the QBP rounding; a new one from ``cfg.lfsr_seed`` by default.
    steps : int
        Training samples done (the learning-rate decay counts them; a batch ends after every
        ``cfg.batch``-th).
    acc : list of numpy.ndarray, optional
        The batch sums ``A_l`` (zeros by default).
    """

    _integer = True

    def __init__(self, cfg: OnChipConfig, weights: list[np.ndarray], lfsr: Lfsr | None = None,
                 steps: int = 0, acc: list[np.ndarray] | None = None):
        if not isinstance(cfg, OnChipConfig):
            raise TypeError(f"Configuration must be an OnChipConfig, not {cfg!r}")
        self.cfg = cfg
        # Sums are exact in float32 below 2**24 (BLAS is fast), weights and updates in int32.
        exact32 = max(cfg.s_bounds + cfg.e_bounds) < (1 << 24)
        self._dot = np.float32 if exact32 else np.float64
        self._wtype = np.int32 if max(cfg.acc_bounds) + cfg.w0 < (1 << 31) else np.int64
        self.weights = self._check_weights(weights, integer=True)
        self.lfsr = lfsr if lfsr is not None else Lfsr(cfg.lfsr_seed)
        if not isinstance(steps, (int, np.integer)) or steps < 0:
            raise ValueError(f"Steps done must be a non-negative integer, not {steps!r}")
        self.steps = int(steps)
        self.acc = ([np.zeros(shape, np.int64) for shape in cfg.shapes] if acc is None
                    else [np.array(a, np.int64) for a in acc])
        self._t = None

    def _check_weights(self, weights, integer: bool) -> list[np.ndarray]:
        cfg = self.cfg
        weights = list(weights)
        if len(weights) != cfg.layers:
            raise ValueError(f"Expected {cfg.layers} weight arrays (one per layer of sizes "
                             f"{cfg.sizes}), not {len(weights)}")
        out = []
        for i, (w, shape) in enumerate(zip(weights, cfg.shapes)):
            w = np.asarray(w)
            if w.shape != shape:
                raise ValueError(f"Weights of layer {i + 1} must have shape {shape}, not {w.shape}")
            if integer and w.dtype.kind not in "iu" and not np.array_equal(w, np.rint(w)):
                raise ValueError(f"Weights of layer {i + 1} must be integers")
            if np.abs(w).max(initial=0) > cfg.w0:
                raise ValueError(f"Weights of layer {i + 1} must lie in [-{cfg.w0}, {cfg.w0}]")
            out.append(w.astype(self._wtype if integer else np.float64))
        return out

    @classmethod
    def init(cls, cfg: OnChipConfig) -> "OnChipNet":
        """Uniform integers in ``[-W0, W0]`` from ``cfg.seed``, layer by layer."""
        rng = np.random.default_rng(cfg.seed)
        weights = [rng.integers(-cfg.w0, cfg.w0 + 1, size=shape) for shape in cfg.shapes]
        return cls(cfg, weights, Lfsr(cfg.lfsr_seed))

    def copy(self) -> "OnChipNet":
        """An independent net in the same state (weights, batch sums, LFSR, steps)."""
        return OnChipNet(self.cfg, [w.copy() for w in self.weights], self.lfsr.copy(),
                         self.steps, [a.copy() for a in self.acc])

    def _shift(self, a, shift):
        return rshift_round(a, shift)

    def __repr__(self) -> str:
        return f"OnChipNet(sizes={self.cfg.sizes}, weights={self.cfg.weights!r}, steps={self.steps})"


class FloatTwin(_Trainer):
    """The same training algorithm in floating point: shifts are exact divisions.

    It starts from the integer net's weights, batch sums, steps and LFSR state and takes the
    same QBP exponents (they depend only on the pixels and the LFSR), so the only difference
    from :class:`OnChipNet` is the fixed-point rounding of the shifted errors and updates
    (the back-propagation shift, the learning-rate shifts and the batch average).
    """

    _integer = False
    _dot = np.float64
    _wtype = np.float64

    def __init__(self, net: OnChipNet):
        self.cfg = net.cfg
        self.weights = [w.astype(np.float64) for w in net.weights]
        self.acc = [a.astype(np.float64) for a in net.acc]
        self.lfsr = net.lfsr.copy()
        self.steps = net.steps
        self._t = None

    def _shift(self, a, shift):
        return np.asarray(a, np.float64) * np.exp2(-np.asarray(shift, np.float64))

    def __repr__(self) -> str:
        return f"FloatTwin(sizes={self.cfg.sizes}, weights={self.cfg.weights!r}, steps={self.steps})"


def train_order(n_train: int, steps: int, seed: int) -> np.ndarray:
    """Indices of the training samples of ``steps`` steps: reshuffled every epoch."""
    rng = np.random.default_rng(seed)
    epochs = -(-steps // n_train)
    return np.concatenate([rng.permutation(n_train) for _ in range(epochs)])[:steps]
