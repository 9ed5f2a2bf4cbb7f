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

from fewmul.compiler.input_memory import input_beat, memory_layers, with_input_memory
from fewmul.compiler.lower import DEFAULT_TARGET_CYCLES, LayerPlan, lower, plan_folding
from fewmul.compiler.planner import layer_plans
from fewmul.gateware import Network
from fewmul.ir import Graph, dense_layer, dense_net
from fewmul.ir.synthetic import random_graph

__all__ = ["SFC_SIZES", "SFC_INPUT_BITS", "LFC_SIZES", "LFC_INPUT_BITS", "random_net",
           "random_conv_net", "fastest_cycles", "build_network", "plan_network"]


#: FINN's SFC: 784 binary pixels, three hidden layers of 256 sign neurons, 10 scores.
SFC_SIZES, SFC_INPUT_BITS = (784, 256, 256, 256, 10), 1
#: The few-multiplications MNIST net, FINN's LFC: 784 8-bit pixels, three hidden layers of 1024.
LFC_SIZES, LFC_INPUT_BITS = (784, 1024, 1024, 1024, 10), 8


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


def random_conv_net(input_shape: Sequence[int], layers: Sequence[Sequence], input_bits: int = 4,
                    seed: int = 0, *, act_bits: int = 1, weight_kind: str = "binary") -> Graph:
    """A random folded convolutional network, as :func:`~fewmul.ir.fold.fold` builds them
    (:func:`fewmul.ir.synthetic.random_graph`, which has more options).

    The thresholds are set on the sums of
    :data:`~fewmul.ir.synthetic.CALIBRATION_IMAGES` random images, so that a
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
    return random_graph(input_shape, layers, input_bits, seed, act_bits=act_bits,
                        weight_kind=weight_kind)


def fastest_cycles(net: Graph) -> int:
    """The fewest cycles per inference any folding of ``net`` reaches: the slowest layer at its
    fastest folding (1 for fully-connected layers; a convolution's window walks its padded
    image one pixel per cycle, and its matrix-vector unit takes a cycle per window at least)."""
    return max(min(LayerPlan(base.layer, folding).cycles
                   for folding in base.layer.head.binding.foldings(base.folding))
               for base in layer_plans(net))


def build_network(net: Graph, pe=None, *, default=None, simd=None,
                  pipeline: int | None = None, clock_hz: float | None = None,
                  input_memory=None) -> tuple[Network, list[LayerPlan]]:
    """The gateware network of ``net`` and its folding plans (:func:`plan_network`)."""
    plans = plan_network(net, pe, default=default, simd=simd, pipeline=pipeline,
                         clock_hz=clock_hz, input_memory=input_memory)
    return lower(net, plans), plans


def plan_network(net: Graph, pe=None, *, default=None, simd=None, pipeline: int | None = None,
                 clock_hz: float | None = None, input_memory=None) -> list[LayerPlan]:
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
    input_memory : "none", "all" or list of int, optional
        The layers that take their input into block RAM
        (:func:`~fewmul.compiler.input_memory.memory_layers`); None takes ``default``'s
        (``"input_memory"``, those of its layers that can still take one under the folding
        chosen here), else none.
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
    folding.pop("input_memory", None)
    pe = folding.pop("pe")
    if pe == "auto" and "max_luts" not in folding:
        folding.setdefault("target_cycles", max(DEFAULT_TARGET_CYCLES, fastest_cycles(net)))
    plans = plan_folding(net, pe, **folding)
    if input_memory is not None:
        return with_input_memory(plans, memory_layers(plans, input_memory))
    # the compiler's input memories, also under another folding, where they still fit it
    chosen = default.get("input_memory", []) if isinstance(default, dict) else []
    return with_input_memory(plans, [i for i in chosen if i < len(plans)
                                     and input_beat(plans, i) is not None])
