"""Networks to put on boards: a build folder's golden model, or a random one of a given shape
(fully-connected, :func:`random_net`, or convolutional, :func:`random_conv_net`).

Random networks have the structure of a trained one (the same layer kinds,
thresholds inside the reachable range, shift-based output scores), so they
exercise the same gateware; they size the largest network a board holds and
make small designs for quick bitstream checks.
"""

from __future__ import annotations

import inspect
from typing import Sequence

import numpy as np

from fewmul.compiler.lower import DEFAULT_TARGET_CYCLES, LayerPlan, lower, plan_folding
from fewmul.compiler.planner import layer_plans
from fewmul.gateware import Network
from fewmul.ir import (Argmax, Graph, MatVec, MaxPool, MultiThreshold, Scores, SlidingWindow,
                       TensorType, dense_layer, dense_net)

__all__ = ["random_net", "random_conv_net", "fastest_cycles", "build_network", "plan_network"]


def random_net(sizes: Sequence[int], input_bits: int = 4, seed: int = 0) -> Graph:
    """A random folded network ``sizes[0] -> sizes[1] -> ... -> sizes[-1]``.

    Parameters
    ----------
    sizes : sequence of int
        Inputs, then the units of each layer (at least one layer).
    input_bits : int
        Bits per input pixel of the first layer.
    """
    sizes = [int(s) for s in sizes]
    if len(sizes) < 2 or any(s <= 0 for s in sizes):
        raise ValueError(f"Sizes must be the inputs and at least one layer, all positive, "
                         f"not {sizes!r}")
    rng = np.random.default_rng(seed)
    layers = []
    kind, bits = "unsigned", input_bits
    for index, (n, units) in enumerate(zip(sizes, sizes[1:])):
        w = rng.integers(0, 2, size=(units, n), dtype=np.uint8)
        bound = n * ((1 << bits) - 1)
        if index < len(sizes) - 2:
            spread = max(1, int(np.sqrt(bound)))
            t = rng.integers(-spread, spread + 1, size=units).astype(np.int64)
            layers.append(dense_layer(w, kind, bits, thresholds=t))
        else:
            shifts = rng.integers(4, 7, size=units).astype(np.int64)
            offsets = rng.integers(-4 * bound, 4 * bound + 1, size=units).astype(np.int64)
            layers.append(dense_layer(w, kind, bits, shifts=shifts, offsets=offsets))
        kind, bits = "bipolar", 1
    return dense_net(layers)


#: Random images the thresholds of :func:`random_conv_net` are set on.
CALIBRATION_IMAGES = 64


def _calibrated_thresholds(rng, sums: np.ndarray, levels: int, on: float) -> np.ndarray:
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


def random_conv_net(input_shape: Sequence[int], layers: Sequence[Sequence], input_bits: int = 4,
                    seed: int = 0, *, act_bits: int = 1, weight_kind: str = "binary") -> Graph:
    """A random folded convolutional network, as :func:`~fewmul.ir.fold.fold` builds them.

    The thresholds are set on the sums of :data:`CALIBRATION_IMAGES` random images, so that a
    hidden activation is +1 (or above the lowest level) for about half of them, or for about
    half of the blocks a max-pool takes after it: the answers depend on the image.

    Parameters
    ----------
    input_shape : sequence of int
        The image's ``(channels, height, width)``.
    layers : sequence of tuples
        From input to output, each one of

        * ``("conv", filters, kernel)``, optionally followed by ``padding`` (pixels, or
          ``"same"`` for ``(kernel - 1) // 2``) and ``stride``: a sliding window, a
          matrix-vector product and thresholds;
        * ``("pool", size)``: a max-pool of the convolution before it (its layer's last op);
        * ``("dense", units)``: a fully-connected layer on the flattened output before it.

        The last is a ``dense`` layer, whose scores go to the argmax.
    input_bits : int
        Bits per input element.
    act_bits : int
        Bits of the hidden activations: 1 for signs (bipolar bits), else ``act_bits``-bit
        levels.
    weight_kind : str
        ``"binary"`` or ``"ternary"``.

    Examples
    --------
    The 8x8 digits with two convolutions::

        random_conv_net((1, 8, 8), [("conv", 16, 3, "same"), ("pool", 2), ("conv", 32, 3),
                                    ("dense", 10)])
    """
    shape = tuple(int(d) for d in input_shape)
    layers = [tuple(entry) for entry in layers]
    if not layers or layers[-1][0] != "dense":
        raise ValueError(f"Layers must end with a dense layer, not {layers[-1:]!r}")
    if not isinstance(act_bits, int) or act_bits < 1:
        raise ValueError(f"Activation bits must be a positive integer, not {act_bits!r}")
    rng = np.random.default_rng(seed)
    levels = (1 << act_bits) - 1
    in_type = TensorType(shape, "unsigned", int(input_bits))
    ops: list = []
    index = 0
    x = rng.integers(0, 1 << int(input_bits), size=(CALIBRATION_IMAGES, in_type.size))

    def weights(units: int, inputs: int) -> np.ndarray:
        if weight_kind == "ternary":
            return rng.integers(-1, 2, size=(units, inputs)).astype(np.int8)
        return rng.integers(0, 2, size=(units, inputs), dtype=np.uint8)

    conv = False                        # the layer before is a convolution
    for position, entry in enumerate(layers):
        kind, args = entry[0], [int(a) if a != "same" else a for a in entry[1:]]
        prefix = f"layer{index}"
        if kind == "pool":
            if not conv:
                raise ValueError(f"layers[{position}]: a pool must follow a conv layer")
            ops.append(MaxPool(f"layer{index - 1}.pool", in_type, *args))
            in_type, x = ops[-1].out_type, ops[-1].forward(x)
            continue
        if kind == "conv":
            filters, kernel, *rest = args
            padding = rest[0] if rest else 0
            if padding == "same":
                padding = (kernel - 1) // 2
            stride = rest[1] if len(rest) > 1 else 1
            ops.append(SlidingWindow(f"{prefix}.window", in_type, kernel, stride, padding))
            in_type, units, x = ops[-1].out_type, filters, ops[-1].forward(x)
        elif kind == "dense":
            (units,) = args
            in_type = TensorType.vector(in_type.size, in_type.kind, in_type.bits)
        else:
            raise ValueError(f"layers[{position}]: kind must be 'conv', 'pool' or 'dense', "
                             f"not {kind!r}")
        last, conv = position == len(layers) - 1, kind == "conv"
        matvec = MatVec(f"{prefix}.matvec", in_type, weights(units, in_type.channels),
                        weight_kind)
        ops.append(matvec)
        bound = matvec.sum_bound
        if last:
            shifts = rng.integers(4, 7, size=units).astype(np.int64)
            offsets = rng.integers(-4 * bound, 4 * bound + 1, size=units).astype(np.int64)
            ops.append(Scores(f"{prefix}.scores", matvec.out_type, shifts, offsets))
        else:
            after = layers[position + 1]
            pool = int(after[1]) if after[0] == "pool" else 1
            on = 1 - 0.5 ** (1 / pool ** 2)          # then a max of pool^2 is on half the time
            sums = matvec.forward(x).reshape(-1, units)
            ops.append(MultiThreshold(f"{prefix}.threshold", matvec.out_type,
                                      _calibrated_thresholds(rng, sums, levels, on)))
            x = ops[-1].forward(matvec.forward(x))
        in_type = ops[-1].out_type
        index += 1
    ops.append(Argmax("argmax", ops[-1].out_type))
    return Graph(ops)


def fastest_cycles(net: Graph) -> int:
    """The fewest cycles per inference any folding of ``net`` reaches: the slowest layer at its
    fastest folding (1 for fully-connected layers; a convolution's window walks its padded
    image one pixel per cycle, and its matrix-vector unit takes a cycle per window at least)."""
    return max(min(LayerPlan(base.layer, folding).cycles
                   for folding in base.layer.head.binding.foldings(base.folding))
               for base in layer_plans(net))


def build_network(net: Graph, pe=None, *, default=None, simd=None,
                  pipeline: int | None = None,
                  clock_hz: float | None = None) -> tuple[Network, list[LayerPlan]]:
    """The gateware network of ``net`` and its folding plans (:func:`plan_network`)."""
    plans = plan_network(net, pe, default=default, simd=simd, pipeline=pipeline,
                         clock_hz=clock_hz)
    return lower(net, plans), plans


def plan_network(net: Graph, pe=None, *, default=None, simd=None, pipeline: int | None = None,
                 clock_hz: float | None = None) -> list[LayerPlan]:
    """The folding plans of ``net`` for a board build.

    With ``pe`` ``"auto"`` the planner aims at
    :data:`~fewmul.compiler.planner.DEFAULT_TARGET_CYCLES`, or at :func:`fastest_cycles` for a
    network that cannot be that fast (a convolution's window takes a cycle per pixel).

    Parameters
    ----------
    pe : "auto", int or list of int, optional
        Neurons computed in parallel; None takes ``default``, else ``"auto"``.
    default : dict or list, optional
        A folding as :meth:`~fewmul.compiler.folders.BuildFolder.folding` returns it (or a
        list of per-layer ``pe``).
    simd, pipeline : optional
        Inputs per neuron per cycle and popcount register stages, for planners that have them.
    clock_hz : float, optional
        The clock ``pipeline="auto"`` chooses its stages for (see
        :func:`~fewmul.compiler.planner.auto_pipeline`).
    """
    if pe is not None:
        folding = {"pe": pe}
    elif isinstance(default, dict):
        folding = dict(default)
    else:
        folding = {"pe": default if default is not None else "auto"}
    if simd is not None:
        folding["simd"] = simd
    if pipeline is not None:
        folding["pipeline"] = pipeline
    if folding.get("pipeline") == "auto" and clock_hz is not None:
        folding["clock_hz"] = clock_hz
    options = inspect.signature(plan_folding).parameters
    for key in ("simd", "pipeline"):
        if key in folding and key not in options:
            raise ValueError(f"The folding planner has no {key!r} option")
    pe = folding.pop("pe")
    if pe == "auto" and "max_luts" not in folding:
        folding.setdefault("target_cycles", max(DEFAULT_TARGET_CYCLES, fastest_cycles(net)))
    return plan_folding(net, pe, **folding)
