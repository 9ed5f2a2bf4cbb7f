"""Random networks of the IR's op kinds, with the structure of folded trained ones.

:func:`random_graph` builds a graph from a list of layers (convolutions, max-pools,
fully-connected layers) with random weights and thresholds: by default thresholds inside the
reachable range, set on the sums of random images so that each hidden activation depends on
the image, and shift-based output scores. Options per layer make the awkward cases a fuzzer
needs: ternary weights, k-bit activations, thresholds no sum reaches (or every sum does),
max-pools taking the minimum on some channels, and output scores that tie.

``fewmul.boards.nets.random_conv_net`` (networks to put on boards) and
``fewmul.sim.fuzz`` (random networks checked against the golden model) build on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .graph import Graph
from .ops import Argmax, MatVec, MaxPool, MultiThreshold, Scores, SlidingWindow
from .types import TensorType

__all__ = ["LayerSpec", "random_graph", "calibrated_thresholds", "CALIBRATION_IMAGES",
           "THRESHOLD_MODES"]

#: Random images the calibrated thresholds are set on.
CALIBRATION_IMAGES = 64
#: How a hidden layer's thresholds are chosen: ``calibrated`` (each activation on for about
#: half of the images), ``wide`` (anywhere in the sums' range and one beyond), ``low`` (below
#: every sum: always the highest level), ``high`` (above every sum: always 0), ``mixed`` (each
#: neuron one of these).
THRESHOLD_MODES = ("calibrated", "wide", "low", "high", "mixed")


@dataclass(frozen=True)
class LayerSpec:
    """One layer of :func:`random_graph`.

    Attributes
    ----------
    kind : str
        ``"conv"`` (sliding window, matrix-vector product, thresholds), ``"pool"`` (a max-pool
        of the convolution before it) or ``"dense"`` (fully connected, on the flattened output
        before it; the last layer is one, with scores).
    size : int
        Filters of a convolution, neurons of a dense layer, block size of a pool.
    kernel, stride : int
        Of a convolution.
    padding : int or "same"
        Of a convolution: pixels, or ``(kernel - 1) // 2``.
    weight_kind : str or None
        ``"binary"`` or ``"ternary"``; None: the network's.
    act_bits : int or None
        Bits of a hidden layer's activations (1: signs); None: the network's.
    thresholds : str
        One of :data:`THRESHOLD_MODES`.
    minimum : bool
        A pool takes the minimum on a random half of its channels.
    ties : bool
        The output layer gives several classes (at least two) the same scores for every image.
    """
    kind: str
    size: int
    kernel: int = 3
    padding: int | str = 0
    stride: int = 1
    weight_kind: str | None = None
    act_bits: int | None = None
    thresholds: str = "calibrated"
    minimum: bool = False
    ties: bool = False

    @classmethod
    def parse(cls, entry) -> "LayerSpec":
        """A :class:`LayerSpec` as is, or from a tuple ``("conv", filters, kernel[, padding[,
        stride]])``, ``("pool", size)`` or ``("dense", units)``."""
        if isinstance(entry, LayerSpec):
            return entry
        kind, *args = tuple(entry)
        args = [a if a == "same" else int(a) for a in args]
        if kind == "conv":
            filters, kernel, *rest = args
            return cls("conv", filters, kernel, rest[0] if rest else 0,
                       rest[1] if len(rest) > 1 else 1)
        if kind in ("pool", "dense"):
            return cls(kind, *args)
        raise ValueError(f"Layer kind must be 'conv', 'pool' or 'dense', not {kind!r}")


def calibrated_thresholds(rng, sums: np.ndarray, levels: int, on: float) -> np.ndarray:
    """Thresholds at which about ``on`` of each neuron's ``sums`` (rows: pixels of random
    images, columns: neurons) reach the first level, the other levels above it, jittered per
    neuron; one per neuron if ``levels`` is 1."""
    units = sums.shape[1]
    steps = np.arange(levels, 0, -1) / levels                     # 1, ..., 1/levels
    q = 1 - on * steps[None, :] + rng.uniform(-0.1, 0.1, size=(units, 1))
    q = np.clip(q, 0, 1)
    t = np.stack([np.quantile(sums[:, m], q[m]) for m in range(units)])
    t = np.sort(np.round(t).astype(np.int64), axis=1)
    return t[:, 0] if levels == 1 else t


def _thresholds(rng, mode: str, sums: np.ndarray, levels: int, on: float,
                bound: int) -> np.ndarray:
    """The thresholds of a hidden layer, ``(units, levels)`` (or ``(units,)`` for one level),
    by ``mode`` (:data:`THRESHOLD_MODES`)."""
    if mode not in THRESHOLD_MODES:
        raise ValueError(f"Threshold mode must be one of {THRESHOLD_MODES}, not {mode!r}")
    t = calibrated_thresholds(rng, sums, levels, on).reshape(sums.shape[1], levels)
    if mode == "calibrated":
        return t[:, 0] if levels == 1 else t
    units = sums.shape[1]
    choices = {"wide": np.sort(rng.integers(-bound - 1, bound + 2, (units, levels)), axis=1),
               "low": np.full((units, levels), -bound - 1, np.int64),
               "high": np.full((units, levels), bound + 1, np.int64)}
    if mode == "mixed":
        pick = rng.integers(0, 4, units)
        options = [t, choices["wide"], choices["low"], choices["high"]]
        t = np.stack([options[p][m] for m, p in enumerate(pick)])
    else:
        t = choices[mode]
    t = t.astype(np.int64)
    return t[:, 0] if levels == 1 else t


def random_graph(input_shape: Sequence[int], layers: Sequence, input_bits: int = 4,
                 seed: int | np.random.Generator = 0, *, act_bits: int = 1,
                 weight_kind: str = "binary", input_kind: str = "unsigned",
                 shifts: tuple[int, int] = (4, 7)) -> Graph:
    """A random folded network, as :func:`~fewmul.ir.fold.fold` builds them.

    Parameters
    ----------
    input_shape : sequence of int
        The image's ``(channels, height, width)`` (``(n, 1, 1)`` for a vector).
    layers : sequence of LayerSpec or tuple
        From input to output (see :meth:`LayerSpec.parse`); the last is a dense layer.
    input_bits : int
        Bits per input element.
    seed : int or numpy.random.Generator
    act_bits, weight_kind : int, str
        The layers' activation bits and weights, unless a layer says otherwise.
    input_kind : str
        ``"unsigned"``, or ``"bipolar"`` (with one input bit).
    shifts : (int, int)
        The range of the output scores' shifts (``numpy`` style: the upper end excluded).
    """
    shape = tuple(int(d) for d in input_shape)
    layers = [LayerSpec.parse(entry) for entry in layers]
    if not layers or layers[-1].kind != "dense":
        raise ValueError(f"Layers must end with a dense layer, not {layers[-1:]!r}")
    if not isinstance(act_bits, int) or act_bits < 1:
        raise ValueError(f"Activation bits must be a positive integer, not {act_bits!r}")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    in_type = TensorType(shape, input_kind, int(input_bits))
    ops: list = []
    index = 0
    x = rng.integers(0, 1 << int(input_bits), size=(CALIBRATION_IMAGES, in_type.size))

    def weights(kind: str, units: int, inputs: int) -> np.ndarray:
        if kind == "ternary":
            return rng.integers(-1, 2, size=(units, inputs)).astype(np.int8)
        if kind != "binary":
            raise ValueError(f"Weight kind must be 'binary' or 'ternary', not {kind!r}")
        return rng.integers(0, 2, size=(units, inputs), dtype=np.uint8)

    conv = False                        # the layer before is a convolution
    for position, layer in enumerate(layers):
        prefix = f"layer{index}"
        if layer.kind == "pool":
            if not conv:
                raise ValueError(f"layers[{position}]: a pool must follow a conv layer")
            minimum = None
            if layer.minimum:
                minimum = rng.random(in_type.shape[0]) < 0.5
            ops.append(MaxPool(f"layer{index - 1}.pool", in_type, layer.size, minimum))
            in_type, x = ops[-1].out_type, ops[-1].forward(x)
            continue
        if layer.kind == "conv":
            padding = layer.padding
            if padding == "same":
                padding = (layer.kernel - 1) // 2
            ops.append(SlidingWindow(f"{prefix}.window", in_type, layer.kernel, layer.stride,
                                     padding))
            in_type, x = ops[-1].out_type, ops[-1].forward(x)
        elif layer.kind == "dense":
            in_type = TensorType.vector(in_type.size, in_type.kind, in_type.bits)
        else:
            raise ValueError(f"layers[{position}]: kind must be 'conv', 'pool' or 'dense', "
                             f"not {layer.kind!r}")
        units = layer.size
        last, conv = position == len(layers) - 1, layer.kind == "conv"
        kind = layer.weight_kind or weight_kind
        w = weights(kind, units, in_type.channels)
        if last and layer.ties:
            tied = _tied_classes(rng, units)
            w[tied] = w[tied[0]]
        matvec = MatVec(f"{prefix}.matvec", in_type, w, kind)
        ops.append(matvec)
        bound = matvec.sum_bound
        if last:
            s = rng.integers(*shifts, size=units).astype(np.int64)
            o = rng.integers(-4 * bound, 4 * bound + 1, size=units).astype(np.int64)
            if layer.ties:
                s[tied], o[tied] = s[tied[0]], o[tied[0]]
            ops.append(Scores(f"{prefix}.scores", matvec.out_type, s, o))
        else:
            after = layers[position + 1]
            pool = after.size if after.kind == "pool" else 1
            on = 1 - 0.5 ** (1 / pool ** 2)          # then a max of pool^2 is on half the time
            sums = matvec.forward(x).reshape(-1, units)
            levels = (1 << (layer.act_bits or act_bits)) - 1
            ops.append(MultiThreshold(f"{prefix}.threshold", matvec.out_type,
                                      _thresholds(rng, layer.thresholds, sums, levels, on,
                                                  bound)))
            x = ops[-1].forward(matvec.forward(x))
        in_type = ops[-1].out_type
        index += 1
    ops.append(Argmax("argmax", ops[-1].out_type))
    return Graph(ops)


def _tied_classes(rng, units: int) -> np.ndarray:
    """Classes (at least two, when there are) that get class ``tied[0]``'s scores."""
    if units < 2:
        return np.arange(units)
    count = int(rng.integers(2, units + 1))
    return np.sort(rng.choice(units, count, replace=False))

