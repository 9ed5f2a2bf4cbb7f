"""Weight and activation quantizers of BinaryConnect, TernaryConnect and BNN/QNN.

All functions take and return float32 arrays. Stochastic variants draw from the
``numpy.random.Generator`` they are given, so a seeded run is reproducible.
"""

from __future__ import annotations

import numpy as np

__all__ = ["glorot_scale", "sign", "ap2", "quantize_weights", "quantize_activation",
           "activation_gate", "qbp_round"]


def glorot_scale(fan_in: int, fan_out: int) -> float:
    """Return ``W0 = sqrt(1.5 / (fan_in + fan_out))``, the BinaryConnect weight scale."""
    if fan_in <= 0 or fan_out <= 0:
        raise ValueError(f"Fan-in and fan-out must be positive, not {fan_in!r}, {fan_out!r}")
    return float(np.sqrt(1.5 / (fan_in + fan_out)))


def sign(x: np.ndarray) -> np.ndarray:
    """``+1`` where ``x >= 0``, ``-1`` elsewhere (``sign(0) = +1``, as the hardware does)."""
    # copysign is several times faster than where(); adding +0.0 turns -0.0 into +0.0 (in a
    # fresh array that copysign then overwrites: one array allocated, not two)
    out = np.add(x, np.float32(0), dtype=np.float32)
    if not isinstance(out, np.ndarray):         # a scalar
        return np.copysign(np.float32(1), out)
    return np.copysign(np.float32(1), out, out=out)


def quantize_weights(w: np.ndarray, w0: float, mode: str, stochastic: bool = False,
                     rng: np.random.Generator | None = None) -> np.ndarray:
    """Quantize hidden weights ``w`` (clipped to ``[-w0, w0]``) for the forward pass.

    Parameters
    ----------
    w : ndarray
        Real-valued hidden weights.
    w0 : float
        Weight scale; quantized weights are in ``{-w0, +w0}`` or ``{-w0, 0, +w0}``.
    mode : str
        ``"float"`` (unchanged), ``"binary"`` or ``"ternary"``.
    stochastic : bool
        Draw the quantized value so that its expectation is the clipped weight.
    rng : numpy.random.Generator
        Required when ``stochastic``.
    """
    if mode == "float":
        return w
    if stochastic and rng is None:
        raise ValueError("Stochastic quantization needs a random generator")
    w0 = np.float32(w0)
    f32 = np.float32
    if mode == "binary":
        if not stochastic:
            return np.copysign(w0, w + f32(0))
        p = (w / w0 + 1) * f32(0.5)                      # P(+w0), clipped by the comparison
        up = rng.random(w.shape, dtype=f32) < p
        return up.astype(f32) * (2 * w0) - w0
    if mode == "ternary":
        if not stochastic:
            h = w0 / 2
            return ((w > h).astype(f32) - (w < -h).astype(f32)) * w0
        keep = rng.random(w.shape, dtype=f32) * w0 < np.abs(w)   # P(keep) = |w| / w0
        return keep.astype(f32) * np.copysign(w0, w)
    raise ValueError(f"Weight mode must be one of 'float', 'binary', 'ternary', not {mode!r}")


def quantize_activation(y: np.ndarray, kind: str, bits: int = 1) -> np.ndarray:
    """Forward activation: ``sign``, ``quant`` (k-bit uniform on [0, 1]), ``relu`` or ``none``."""
    if kind == "sign":
        return sign(y)
    if kind == "quant":
        levels = np.float32((1 << bits) - 1)
        return np.round(np.clip(y, 0, 1) * levels) / levels
    if kind == "relu":
        return np.maximum(y, 0)
    if kind == "none":
        return y
    raise ValueError(f"Activation must be 'sign', 'quant', 'relu' or 'none', not {kind!r}")


def activation_gate(y: np.ndarray, kind: str) -> np.ndarray:
    """Derivative used in the backward pass: the straight-through estimator's gate.

    ``sign`` passes the gradient where ``|y| <= 1``, ``quant`` where ``0 <= y <= 1``,
    ``relu`` where ``y > 0``; ``none`` passes everything.
    """
    if kind == "sign":
        return (np.abs(y) <= 1).astype(np.float32)
    if kind == "quant":
        return ((y >= 0) & (y <= 1)).astype(np.float32)
    if kind == "relu":
        return (y > 0).astype(np.float32)
    if kind == "none":
        return np.ones_like(y)
    raise ValueError(f"Activation must be 'sign', 'quant', 'relu' or 'none', not {kind!r}")


def ap2(x: np.ndarray) -> np.ndarray:
    """Power of two nearest in the log domain, with the sign: ``sign(x) 2^round(log2|x|)`` (AP2); 0 stays 0."""
    x = np.asarray(x, np.float32)
    ax = np.abs(x)
    nz = ax > 0
    return np.where(nz, np.sign(x) * np.exp2(np.round(np.log2(np.where(nz, ax, 1)))),
                    0).astype(np.float32)


def qbp_round(x: np.ndarray, rng: np.random.Generator, exp_min: int = -4,
              exp_max: int = 3) -> np.ndarray:
    """Round ``x`` to ``sign(x) * 2**e`` or 0 without bias (quantized back-propagation).

    ``e = floor(log2|x|)``, rounded up to ``e + 1`` with probability
    ``|x| / 2**e - 1`` so that the expectation is ``x``. The exponent range is
    ``[exp_min, exp_max]`` (``exp_max - exp_min + 1`` exponents, plus zero):
    magnitudes below ``2**exp_min`` become ``2**exp_min`` with probability
    ``|x| / 2**exp_min`` and 0 otherwise (still unbiased); magnitudes of
    ``2**exp_max`` and more saturate at ``2**exp_max``. ``x = 0`` stays 0.

    Parameters
    ----------
    x : ndarray
        Values to round (float32).
    rng : numpy.random.Generator
        Source of the rounding decisions.
    exp_min, exp_max : int
        Smallest and largest exponent.
    """
    if exp_min > exp_max:
        raise ValueError(f"Exponent range must have exp_min <= exp_max, not {exp_min!r} > {exp_max!r}")
    x = np.asarray(x, np.float32)
    ax = np.abs(x)
    lo, hi = np.float32(2.0 ** exp_min), np.float32(2.0 ** exp_max)
    # 2**e <= |x| < 2**(e+1) from the float32 exponent field (exact, no log2)
    e = np.clip(np.frexp(np.maximum(ax, lo))[1].astype(np.float32) - 1, exp_min, exp_max)
    low = np.exp2(e)
    # round up from `low` to 2 low with probability |x|/low - 1; below the range from 0 to lo
    base = np.where(ax < lo, np.float32(0), low)
    step = np.where(ax < lo, lo, low)
    p_up = (ax - base) / step
    mag = np.where(rng.random(x.shape, dtype=np.float32) < p_up, base + step, base)
    mag = np.minimum(mag, hi)
    return (np.sign(x) * mag).astype(np.float32)
