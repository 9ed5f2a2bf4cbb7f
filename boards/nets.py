"""Networks to put on boards: a build folder's golden model, or a random one of a given shape.

Random networks have the structure of a trained one (the same layer kinds,
thresholds inside the reachable range, shift-based output scores), so they
exercise the same gateware; they size the largest network a board holds and
make small designs for quick bitstream checks.
"""

from __future__ import annotations

import inspect
from typing import Sequence

import numpy as np

from fewmul.compiler.lower import LayerPlan, lower, plan_folding
from fewmul.gateware import Network
from fewmul.ir import Graph, dense_layer, dense_net

__all__ = ["random_net", "build_network"]


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


def build_network(net: Graph, pe=None, *, default=None, simd=None,
                  pipeline: int | None = None,
                  clock_hz: float | None = None) -> tuple[Network, list[LayerPlan]]:
    """The gateware network of ``net`` and its folding plans.

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
    plans = plan_folding(net, folding.pop("pe"), **folding)
    return lower(net, plans), plans
