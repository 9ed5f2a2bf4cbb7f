"""Networks to put on boards: a build folder's golden model, or a random one of a given shape.

Random networks have the structure of a trained one (the same layer kinds,
thresholds inside the reachable range, shift-based output scores), so they
exercise the same gateware; they size the largest network a board holds and
make small designs for quick bitstream checks.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np

from fewmul.compiler.lower import LayerPlan, lower, plan_folding
from fewmul.gateware import Network
from fewmul.nn.integer import IntegerLayer, IntegerNet

__all__ = ["random_net", "load_build", "build_network", "report_pe"]


def random_net(sizes: Sequence[int], input_bits: int = 4, seed: int = 0) -> IntegerNet:
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
            layers.append(IntegerLayer(w, kind, bits, thresholds=t))
        else:
            shifts = rng.integers(4, 7, size=units).astype(np.int64)
            offsets = rng.integers(-4 * bound, 4 * bound + 1, size=units).astype(np.int64)
            layers.append(IntegerLayer(w, kind, bits, shifts=shifts, offsets=offsets))
        kind, bits = "bipolar", 1
    return IntegerNet(layers)


def report_pe(build_dir: Path) -> list[int] | None:
    """The per-layer ``pe`` that ``fewmul compile`` chose, from ``BUILD/report.json``."""
    path = Path(build_dir) / "report.json"
    if not path.exists():
        return None
    return [int(layer["pe"]) for layer in json.loads(path.read_text())["layers"]]


def load_build(build_dir: Path) -> IntegerNet:
    """The golden model ``BUILD/net.npz`` written by ``fewmul compile``."""
    path = Path(build_dir) / "net.npz"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run 'fewmul compile RUN/ -o {build_dir}' first")
    return IntegerNet.load(path)


def build_network(net: IntegerNet, pe=None, *, default_pe=None) -> tuple[Network, list[LayerPlan]]:
    """The gateware network of ``net`` with folding ``pe`` (int, list or ``"auto"``).

    ``pe=None`` takes ``default_pe`` (e.g. what the compiler chose), else ``"auto"``.
    """
    chosen = pe if pe is not None else (default_pe if default_pe is not None else "auto")
    plans = plan_folding(net, chosen)
    return lower(net, plans), plans
