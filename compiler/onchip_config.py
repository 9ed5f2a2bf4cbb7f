"""The on-chip trainer's configuration from a spec, and what on-chip training accepts.

:func:`onchip_config` turns a :class:`~fewmul.compiler.spec.NetworkSpec` into the
:class:`~fewmul.arith.onchip.OnChipConfig` that the golden model and the gateware read:
the sizes from the data set and the layers, the weight kind from the layers' ``weights:``,
``input_bits`` from ``data.input_bits`` and the scales from ``train.onchip`` (validated with
their file positions by the spec loader). A scale left out (``null``) is chosen from the
sizes by :func:`default_scales`. A spec the trainer cannot run is rejected with the list of
every reason (:func:`onchip_problems`).
"""

from __future__ import annotations

import math

from fewmul.arith.onchip import WEIGHT_KINDS, OnChipConfig
from fewmul.nn.data import SHAPES

from .spec import DATA_CLASSES, NetworkSpec

__all__ = ["onchip_config", "onchip_problems", "default_scales"]


def _log2_round(value: float) -> int:
    """``round(log2(value))``, at least 0."""
    return max(0, round(math.log2(max(value, 1.0))))


def default_scales(sizes: tuple[int, ...], input_bits: int) -> dict[str, tuple[int, ...]]:
    """The per-layer shifts chosen from the sizes when the spec leaves them out.

    Without batch norm the scales are fixed powers of two, set from the spread of each
    layer's sums at initialisation (random weights ``±1``), so that they follow the sizes:

    * ``gate_shifts``: the gate ``|s_l| < 2**g`` is open for about two thirds of the units
      when ``2**g`` is near the standard deviation of ``s_l``: ``sqrt(N) (2**k - 1) / 2``
      for the pixels of layer 1 (mean square of a uniform ``k``-bit pixel about a quarter of
      ``(2**k - 1)**2`` ... the digits' 64 4-bit pixels give 6), ``sqrt(M_{l-1})`` for a layer
      of ``±1`` inputs;
    * ``backprop_shifts``: the error back-propagated into hidden layer ``l`` is a sum of
      ``M_{l+1}`` terms; shifting it by ``log2 sqrt(M_{l+1})`` keeps its size about the size
      of the error above it, except into the last hidden layer, whose error comes from the
      ``C`` class scores (0, as the one-hidden-layer trainer had it);
    * ``lr_shifts``: ``input_bits + 2`` for layer 1 (a pixel's QBP exponent, up to
      ``input_bits``, is subtracted from it), 2 for the output layer, and for a hidden layer
      after the first the output layer's shift plus one.

    For the one-hidden-layer digits net (64 -> 64 -> 10, 4-bit pixels) these are the scales
    the trainer had before they were spec keys: gate 6, no back-propagation shift,
    learning-rate shifts 6 and 2.
    """
    n, hidden, k = sizes[0], sizes[1:-1], input_bits
    gates = [_log2_round(math.sqrt(n) * ((1 << k) - 1) / 2)]
    gates += [_log2_round(math.sqrt(m)) for m in hidden[:-1]]
    backprop = [_log2_round(math.sqrt(m)) for m in hidden[1:]] + [0]
    lr = [k + 2] + [3] * (len(hidden) - 1) + [2]
    return {"gate_shifts": tuple(gates), "backprop_shifts": tuple(backprop),
            "lr_shifts": tuple(lr)}


def onchip_problems(spec: NetworkSpec) -> list[str]:
    """Every reason the on-chip trainer cannot train ``spec`` (empty: it can)."""
    problems = []
    layers = spec.layers
    if len(layers) < 2:
        problems.append(f"layers: on-chip training needs at least one hidden layer and an "
                        f"output layer, got {len(layers)} layer")
    kind = layers[0].weights if layers else None
    for index, layer in enumerate(layers):
        last = index == len(layers) - 1
        where = f"layers[{index}]"
        if layer.kind != "dense":
            problems.append(f"{where}.kind: on-chip training takes fully-connected layers; "
                            f"expected dense, got {layer.kind!r}")
            continue
        if layer.weights not in WEIGHT_KINDS:
            problems.append(f"{where}.weights: expected binary or ternary, got {layer.weights!r}")
        elif layer.weights != kind and kind in WEIGHT_KINDS:
            problems.append(f"{where}.weights: expected {kind} like layers[0] (one weight kind "
                            f"for every layer), got {layer.weights!r}")
        act = "none" if last else "sign"
        if layer.act != act:
            role = "the output layer gives linear scores" if last else "hidden layers are sign units"
            problems.append(f"{where}.act: expected {act} ({role}), got {layer.act!r}")
        if layer.bn:
            problems.append(f"{where}.bn: on-chip training runs without batch norm; expected "
                            f"false, got true")
    if spec.train.loss != "squared_hinge":
        problems.append(f"train.loss: on-chip training uses squared_hinge, got "
                        f"{spec.train.loss!r}")
    classes = DATA_CLASSES.get(spec.data.set)
    if layers and layers[-1].kind == "dense" and classes and layers[-1].units != classes:
        problems.append(f"layers[{len(layers) - 1}].units: expected {classes} classes, got "
                        f"{layers[-1].units}")
    return problems


def _per_layer(value, count: int, default: tuple[int, ...]) -> tuple[int, ...]:
    if value is None:
        return default
    if isinstance(value, int):
        return (value,) * count
    return tuple(value)


def onchip_config(spec: NetworkSpec, where: str, **overrides) -> OnChipConfig:
    """The trainer configuration of ``spec``; a clear error if the spec does not fit it.

    Parameters
    ----------
    spec : NetworkSpec
    where : str
        The spec's file, at the start of every error message.
    **overrides
        :class:`OnChipConfig` fields that replace what the spec gives.

    Raises
    ------
    ValueError
        ``"WHERE: not an on-chip training spec:"`` and every problem, one a line; or a
        configuration the trainer cannot use.
    """
    problems = onchip_problems(spec)
    if problems:
        raise ValueError(f"{where}: not an on-chip training spec:\n  " + "\n  ".join(problems))
    shape = SHAPES[spec.data.set]
    sizes = (shape[0] * shape[1] * shape[2], *(layer.units for layer in spec.layers))
    onchip = spec.train.onchip
    defaults = default_scales(sizes, spec.data.input_bits)
    layers = len(sizes) - 1
    fields = {
        "sizes": sizes, "input_bits": spec.data.input_bits, "weights": spec.layers[0].weights,
        "weight_bits": onchip.clip_bits, "score_shift": onchip.margin_shift,
        "gate_shifts": _per_layer(onchip.gate_shift, layers - 1, defaults["gate_shifts"]),
        "backprop_shifts": _per_layer(onchip.backprop_shift, layers - 1,
                                      defaults["backprop_shifts"]),
        "lr_shifts": _per_layer(onchip.lr_shift, layers, defaults["lr_shifts"]),
        "lr_decay_steps": onchip.lr_decay_steps, "lr_decay_max": onchip.lr_decay_max,
        "batch_shift": onchip.batch.bit_length() - 1, "seed": spec.train.seed,
    }
    if 1 << fields["batch_shift"] != onchip.batch:
        raise ValueError(f"{where}: train.onchip.batch: expected a power of two, got "
                         f"{onchip.batch}")
    fields.update(overrides)
    try:
        return OnChipConfig(**fields)
    except ValueError as exc:
        raise ValueError(f"{where}: train.onchip: {exc}") from None
