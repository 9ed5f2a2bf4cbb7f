"""Convolution and max-pooling layers of the float model.

Tensors are ``(n, H, W, C)``, channels innermost (see :mod:`fewmul.nn.model`).

Convolution
    :func:`im2col` gathers every ``kernel x kernel`` input window, flattened in
    ``(kh, kw, c)`` order, into one row of an ``(n * OH * OW, kernel * kernel * C)``
    matrix. :class:`Conv` is the fully-connected :class:`~fewmul.nn.model.Layer`
    applied to that matrix -- the same product with the quantized weights
    ``(kernel * kernel * C, units)``, batch norm, activation and backward pass -- so
    an output pixel is ``window @ wq``, batch norm is per channel with its
    statistics over the batch and the positions, and quantized back-propagation
    rounds the windows in the weight gradient as the dense layer rounds its
    input (each window element independently). The input gradient is the
    adjoint of :func:`im2col`, :func:`col2im`.

    ``same`` padding adds ``(kernel - 1) // 2`` on each side, ``valid`` none; the
    output is ``(H + 2 P - kernel) // stride + 1`` high. The pad value is what the
    hardware streams for "nothing", bit 0: 0 for unsigned inputs (the image,
    ``quant`` or ``relu`` activations), -1 after ``sign`` activations.

Max-pooling
    The maximum of each ``size x size`` block (stride ``size``), of one of two things
    (:data:`~fewmul.nn.config.POOL_INPUTS`): with ``pools: sums`` (BinaryNet's order)
    the convolution before it pools its own sums, before batch norm, which then
    normalizes the pooled sums (and its statistics are over 1 / size^2 as many rows);
    the :class:`MaxPool` entry passes its input through. With ``pools: activations``
    (FINN's CNV order) :class:`MaxPool` pools the activations. The gradient goes to
    the first maximum of each block in row-major order (``sign`` activations tie
    often). Both fold into a max-pool of the activations in hardware; for sums it
    takes the minimum on the channels whose batch-norm scale is negative.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .config import LayerConfig, TrainConfig
from .model import Layer, Shape

__all__ = ["Conv", "MaxPool", "conv_geometry", "im2col", "col2im", "block_max", "block_max_grad",
           "CHUNK_BYTES"]

#: Bytes of windows (or of sums, if wider) a convolution gathers and multiplies at a time
#: (about an L2 cache).
CHUNK_BYTES = 1 << 21


def conv_geometry(in_shape: Shape, kernel: int, stride: int, padding: str) -> tuple[int, int, int]:
    """``(pad, OH, OW)`` of a convolution on ``in_shape`` ``(C, H, W)``.

    Raises
    ------
    ValueError
        When the parameters are out of range or the kernel does not fit.
    """
    _, h, w = in_shape
    if kernel < 1 or stride < 1:
        raise ValueError(f"kernel and stride must be positive, not {kernel!r}, {stride!r}")
    if padding not in ("valid", "same"):
        raise ValueError(f"padding must be 'valid' or 'same', not {padding!r}")
    pad = (kernel - 1) // 2 if padding == "same" else 0
    oh, ow = (h + 2 * pad - kernel) // stride + 1, (w + 2 * pad - kernel) // stride + 1
    if oh < 1 or ow < 1:
        raise ValueError(f"a {kernel}x{kernel} kernel does not fit a {h}x{w} input "
                         f"with {padding!r} padding")
    return pad, oh, ow


def _padded(x: np.ndarray, pad: int, value: float) -> np.ndarray:
    if not pad:
        return x
    n, h, w, c = x.shape
    xp = np.empty((n, h + 2 * pad, w + 2 * pad, c), x.dtype)
    xp[:, :pad] = value
    xp[:, pad + h:] = value
    xp[:, pad:pad + h, :pad] = value
    xp[:, pad:pad + h, pad + w:] = value
    xp[:, pad:pad + h, pad:pad + w] = x
    return xp


def im2col(x: np.ndarray, kernel: int, stride: int = 1, pad: int = 0,
           value: float = 0.0) -> np.ndarray:
    """The windows of ``x`` ``(n, H, W, C)`` as rows ``(n * OH * OW, kernel * kernel * C)``.

    Rows are in ``(n, oh, ow)`` order, each window flattened in ``(kh, kw, c)`` order; ``x`` is
    padded with ``value`` by ``pad`` on each side first.
    """
    n, _, _, c = x.shape
    xp = _padded(x, pad, value)
    _, hp, wp, _ = xp.shape
    oh, ow = (hp - kernel) // stride + 1, (wp - kernel) // stride + 1
    if c == 1:
        # one strided slice per kernel offset: the copies run along image rows (the
        # window view's innermost run would be `kernel` pixels)
        cols = np.empty((n, oh, ow, kernel * kernel), xp.dtype)
        for kh in range(kernel):
            for kw in range(kernel):
                cols[..., kh * kernel + kw] = xp[:, kh:kh + stride * (oh - 1) + 1:stride,
                                                 kw:kw + stride * (ow - 1) + 1:stride, 0]
        return cols.reshape(n * oh * ow, kernel * kernel)
    s_n, s_h, s_w, s_c = xp.strides
    # the windows as a (n, OH, OW, kh, kw, C) view (what sliding_window_view gives, without
    # its per-call cost), then one copy into the row layout
    v = as_strided(xp, (n, oh, ow, kernel, kernel, c),
                   (s_n, stride * s_h, stride * s_w, s_h, s_w, s_c), writeable=False)
    return v.reshape(n * oh * ow, kernel * kernel * c)


def col2im(cols: np.ndarray, shape: tuple[int, int, int, int], kernel: int, stride: int = 1,
           pad: int = 0) -> np.ndarray:
    """The adjoint of :func:`im2col`: window rows summed back into an ``(n, H, W, C)`` tensor.

    ``cols`` is what :func:`im2col` gives, ``(n * OH * OW, kernel * kernel * C)``, or the same
    numbers kernel offset first, ``(kernel * kernel, n * OH * OW, C)`` (faster: every block
    added is contiguous). ``kernel * kernel`` shifted slice-additions; what falls on the
    padding is dropped.
    """
    n, h, w, c = shape
    hp, wp = h + 2 * pad, w + 2 * pad
    oh, ow = (hp - kernel) // stride + 1, (wp - kernel) // stride + 1
    if cols.ndim == 3:
        blocks = cols.reshape(kernel, kernel, n, oh, ow, c)
    else:
        blocks = cols.reshape(n, oh, ow, kernel, kernel, c).transpose(3, 4, 0, 1, 2, 5)
    g = np.zeros((n, hp, wp, c), cols.dtype)
    for kh in range(kernel):
        for kw in range(kernel):
            g[:, kh:kh + stride * (oh - 1) + 1:stride, kw:kw + stride * (ow - 1) + 1:stride] += \
                blocks[kh, kw]
    return g[:, pad:pad + h, pad:pad + w] if pad else g


def _block_views(x: np.ndarray, size: int) -> list[np.ndarray]:
    """The ``size * size`` strided views of ``x`` ``(n, H, W, C)``, in row-major block order."""
    return [x[:, i::size, j::size] for i in range(size) for j in range(size)]


def block_max(x: np.ndarray, size: int, train: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """The maxima of the ``size x size`` blocks of ``x`` ``(n, H, W, C)``, and when ``train``
    which of its block's elements each is (the first maximum, row-major), for
    :func:`block_max_grad`."""
    views = _block_views(x, size)
    out = views[0].copy()
    for v in views[1:]:
        np.maximum(out, v, out=out)
    if not train:
        return out, None
    # index of the first maximum: f_k = (v_k != max) (1 + f_(k+1)), f_last = 0
    first = np.zeros(out.shape, np.min_scalar_type(len(views)))
    ne = np.empty(out.shape, bool)
    ne_int = ne.view(first.dtype) if first.itemsize == 1 else ne    # multiplied without a cast
    for k in range(len(views) - 2, -1, -1):
        first += 1
        np.not_equal(views[k], out, out=ne)
        first *= ne_int
    return out, first


def block_max_grad(g_out: np.ndarray, first: np.ndarray, size: int) -> np.ndarray:
    """The gradient of :func:`block_max`'s input: ``g_out`` routed to each block's first maximum."""
    g_out = g_out.reshape(first.shape)
    n, h, w, c = first.shape
    # (n, H, W, C) with its blocks apart, (n, H / size, size, W / size, size, C): one
    # broadcast product of the gradients and where each was, for every block position at once
    at = np.arange(size * size, dtype=first.dtype).reshape(1, 1, size, 1, size, 1)
    g = np.multiply(g_out[:, :, None, :, None], first[:, :, None, :, None] == at)
    return g.reshape(n, h * size, w * size, c)


def _hwc(shape: Shape) -> tuple[int, int, int]:
    c, h, w = shape
    return h, w, c


@dataclass
class Conv(Layer):
    """A 2-D convolution: :class:`~fewmul.nn.model.Layer` on the windows of its input.

    ``w`` is ``(kernel * kernel * C_in, units)`` with rows in ``(kh, kw, c)`` order,
    ``w0`` the Glorot scale of ``fan_in = kernel * kernel * C_in``, ``fan_out = units``;
    ``gamma``, ``beta``, ``mean`` and ``var`` are per output channel. ``pad`` is the
    padding on each side and ``pad_value`` what it holds. ``pool`` is the block size of a
    max-pool of the sums before batch norm (1: none; set by :meth:`pool_sums`), and
    ``grid`` the shape of the sums before it, ``(units, OH, OW)``; ``out_shape`` is after it.
    """
    pad: int = 0
    pad_value: float = 0.0
    pool: int = 1
    grid: Shape = (0, 0, 0)
    pool_first: np.ndarray | None = field(default=None, repr=False)

    @classmethod
    def init(cls, cfg: LayerConfig, in_shape: Shape, rng: np.random.Generator,
             pad_value: float = 0.0) -> "Conv":
        pad, oh, ow = conv_geometry(in_shape, cfg.kernel, cfg.stride, cfg.padding)
        fan_in = cfg.kernel * cfg.kernel * in_shape[0]
        return cls._make(cfg, in_shape, (cfg.units, oh, ow), fan_in, rng, pad=pad,
                         pad_value=float(pad_value), grid=(cfg.units, oh, ow))

    def pool_sums(self, size: int) -> None:
        """Max-pool the sums over ``size x size`` blocks before batch norm."""
        c, h, w = self.grid
        if size < 1 or h % size or w % size:
            raise ValueError(f"a {size}x{size} max-pool needs a height and width divisible by "
                             f"{size}, not {h}x{w}")
        self.pool, self.out_shape = size, (c, h // size, w // size)

    def padded(self, x: np.ndarray) -> np.ndarray:
        """A batch (any ``(n, ...)`` layout of ``in_shape``) as ``(n, H + 2 pad, W + 2 pad, C)``."""
        return _padded(x.reshape((len(x),) + _hwc(self.in_shape)), self.pad, self.pad_value)

    def windows(self, x: np.ndarray) -> np.ndarray:
        """:func:`im2col` of a batch (any ``(n, ...)`` layout of ``in_shape``)."""
        return im2col(self.padded(x), self.cfg.kernel, self.cfg.stride)

    def forward(self, x: np.ndarray, wq: np.ndarray, train: bool, tcfg: TrainConfig) -> np.ndarray:
        """Activations ``(n, OH, OW, units)``.

        The dense layer's forward pass, on the padded input (which it keeps for the backward
        pass): the products below take their windows from it. Only training keeps where each
        pooled maximum was.
        """
        self.pool_first = np.empty(0, np.uint8) if train else None
        return super().forward(self.padded(x), wq, train, tcfg).reshape((len(x),) + _hwc(self.out_shape))

    # The dense layer's products on the window matrix, a block of images at a time: a block's
    # windows stay in the cache between im2col and the product, and the whole window
    # matrix (kernel^2 times the input) is never held.
    def _image_blocks(self, n: int, with_sums: bool = False):
        """``(first image, end image, first row, end row)`` of blocks of about CHUNK_BYTES of
        windows; ``with_sums``, of windows or of sums, whichever are wider (for a product whose
        sums are pooled while in the cache: a first layer's sums are several times its
        windows)."""
        per_image = self.grid[1] * self.grid[2]
        width = max(self.w.shape) if with_sums else self.w.shape[0]
        step = max(1, CHUNK_BYTES // (4 * per_image * width))
        return [(a, min(a + step, n), a * per_image, min(a + step, n) * per_image)
                for a in range(0, n, step)]

    def linear(self, xp: np.ndarray, wq: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """``im2col(xp) wq``, ``(n * OH * OW, units)``, of the padded input ``xp``; with
        ``pool`` their block maxima, ``(n * OH * OW / pool^2, units)``, each block of images
        pooled while its sums are in the cache (and, in training, where each maximum was kept
        in ``pool_first`` for the backward pass)."""
        n, (c, h, w), p = len(xp), self.grid, self.pool
        shape = (n * (h // p) * (w // p), wq.shape[1])
        z = np.empty(shape, np.result_type(xp, wq)) if out is None else out.reshape(shape)
        keep = p > 1 and self.pool_first is not None
        if keep:
            self.pool_first = np.empty((n, h // p, w // p, c), np.min_scalar_type(p * p))
        for a, b, r0, r1 in self._image_blocks(n, with_sums=p > 1):
            windows = im2col(xp[a:b], self.cfg.kernel, self.cfg.stride)
            if p == 1:
                super().linear(windows, wq, out=z[r0:r1])
                continue
            sums = super().linear(windows, wq).reshape((b - a, h, w, c))
            m, first = block_max(sums, p, train=keep)
            z[r0 // (p * p):r1 // (p * p)] = m.reshape(-1, c)
            if keep:
                self.pool_first[a:b] = first
        return z if out is None else out

    def sum_grad(self, gz: np.ndarray) -> np.ndarray:
        """The gradient of the sums from that of their block maxima (``gz`` itself without pool),
        once for both products of the backward pass."""
        if self.pool == 1:
            return gz
        return block_max_grad(gz, self.pool_first, self.pool).reshape(-1, gz.shape[-1])

    def weight_grad(self, xp: np.ndarray, gz: np.ndarray, tcfg: TrainConfig,
                    rng: np.random.Generator | None) -> np.ndarray:
        """``im2col(xp)^T gz`` (``gz`` of the sums, see :meth:`sum_grad`); QBP rounds the windows
        as the dense layer rounds its input."""
        dw = None
        for a, b, r0, r1 in self._image_blocks(len(xp)):
            part = super().weight_grad(im2col(xp[a:b], self.cfg.kernel, self.cfg.stride), gz[r0:r1],
                                       tcfg, rng)
            dw = part if dw is None else np.add(dw, part, out=dw)
        return dw

    def input_grad(self, gz: np.ndarray, wq: np.ndarray) -> np.ndarray:
        """The input gradient ``(n, H, W, C)``: :func:`col2im` of the window gradients ``gz wq^T``,
        computed kernel offset first (one ``(rows, units) x (units, C)`` product per offset)."""
        k, c = self.cfg.kernel, self.in_shape[0]
        per_offset = np.ascontiguousarray(wq.reshape(k * k, c, -1).transpose(0, 2, 1))  # (k k, units, C)
        n = len(gz) // (self.grid[1] * self.grid[2])
        g = np.empty((n,) + _hwc(self.in_shape), np.result_type(gz, wq))
        for a, b, r0, r1 in self._image_blocks(n):
            g[a:b] = col2im(np.matmul(gz[r0:r1], per_offset), (b - a,) + _hwc(self.in_shape), k,
                            self.cfg.stride, self.pad)
        return g


@dataclass
class MaxPool:
    """Max-pooling over ``size x size`` blocks (stride ``size``); no parameters, no state.

    With ``fused`` (``pools: sums``) the convolution before it pools its sums
    (:meth:`Conv.pool_sums`) and this layer passes its input through.
    """
    cfg: LayerConfig
    in_shape: Shape
    out_shape: Shape
    fused: bool = False
    cache: dict = field(default_factory=dict, repr=False)

    @classmethod
    def init(cls, cfg: LayerConfig, in_shape: Shape, fused: bool = False) -> "MaxPool":
        c, h, w = in_shape
        s = cfg.size
        if s < 1 or h % s or w % s:
            raise ValueError(f"a {s}x{s} max-pool needs a height and width divisible by {s}, "
                             f"not {h}x{w}")
        return cls(cfg, tuple(in_shape), (c, h // s, w // s), fused)

    def params(self) -> dict[str, np.ndarray]:
        return {}

    def weights(self, quantized: bool, stochastic: bool = False,
                rng: np.random.Generator | None = None) -> None:
        return None

    def forward(self, x: np.ndarray, wq: None, train: bool, tcfg: TrainConfig) -> np.ndarray:
        """The block maxima ``(n, H / size, W / size, C)`` (``x`` itself when ``fused``)."""
        if self.fused:
            return x
        out, first = block_max(x.reshape((len(x),) + _hwc(self.in_shape)), self.cfg.size, train)
        if train:
            self.cache = {"first": first}
        return out

    def backward(self, g_out: np.ndarray, need_input_grad: bool, tcfg: TrainConfig,
                 rng: np.random.Generator | None = None) -> tuple[dict, np.ndarray | None]:
        """No parameter gradients; the input gradient routed to each block's first maximum."""
        if not need_input_grad:
            return {}, None
        if self.fused:
            return {}, g_out
        return {}, block_max_grad(g_out, self.cache["first"], self.cfg.size)
