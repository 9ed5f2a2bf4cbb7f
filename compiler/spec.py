"""YAML network specs: load, validate, fill defaults, dump.

A spec file describes one network -- data set, layers, training recipe and
hardware options -- and is turned into the plain configuration records of
:mod:`fewmul.nn.config` plus a :class:`HardwareConfig`, wrapped in a
:class:`NetworkSpec`::

    name: digits-bnn
    data: {set: digits, input_bits: 4}
    layers:
      - {units: 256, weights: binary, act: sign, bn: true}
      - {units: 10,  weights: binary, act: none, bn: true}
    train: {epochs: 60, optimizer: {name: adam, lr: 0.01}}
    hardware: {pe: auto, board: none}

Every omitted key gets its default. The format is declared once, as the
:data:`SPEC_SCHEMA` table built from :mod:`fewmul.compiler.schema` types, and
cross-field rules (output layer size, ``pe`` divisibility, ...) are small
functions in :data:`RULES`. Adding a key means adding one :class:`Field` line
(and the matching dataclass field).

Layer kinds
-----------
A layer's ``kind`` (default ``dense``) picks its keys::

    layers:
      - {kind: conv, filters: 64, kernel: 3, stride: 1, padding: valid, weights: binary, act: sign, bn: true}
      - {kind: maxpool, size: 2, pools: sums}
      - {units: 512, act: sign}
      - {units: 10, act: none}

A ``conv`` layer has ``filters`` (stored as :attr:`LayerConfig.units`),
``kernel``, ``stride`` and ``padding`` plus every key of a dense layer; a
``maxpool`` layer has only ``size`` and ``pools`` (``sums``, the default: the
conv's sums before its batch norm, as BinaryNet pools; ``activations``: after
the activation, as FINN's CNV pools). Shapes are walked from the data set's
``(C, H, W)`` (:data:`fewmul.nn.data.SHAPES`) before any work: kernels must fit
their (padded) input, pool sizes must divide it, conv and maxpool layers come
before the first dense layer (the flatten is one-way), a maxpool follows a
conv layer, and the last layer is dense. :func:`layer_shapes` gives each
layer's output shape. A maxpool runs inside the layer before it in hardware,
so per-layer ``hardware.pe`` lists count the layers with weights only
(:func:`weighted_layers`).

Errors
------
Problems are collected in one pass and raised together as a
:class:`SpecError` (a :class:`ValueError`) whose ``errors`` are
:class:`SpecIssue` records, one per problem, each with file, 1-based line and
column, key path and message::

    digits-bnn.yaml:7:12: layers[1].units: expected a positive integer, got "abc"

See Also
--------
fewmul.compiler.schema : the schema engine.
fewmul.nn.config : the records built from a spec.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import MISSING, dataclass, field
from pathlib import Path as FilePath
from typing import Any, Callable

import yaml

from fewmul.arith.ranges import divisors
from fewmul.nn.config import (
    ACTIVATIONS, BN_KINDS, DATA_SETS, LAYER_KINDS, LOSSES, OPTIMIZERS, PADDINGS, POOL_INPUTS,
    QUANTIZE_MODES, WEIGHT_MODES, DataConfig, LayerConfig, OnChipTrainConfig, OptimizerConfig,
    TrainConfig,
)
from fewmul.nn.data import SHAPES

from .schema import (
    INVALID, REQUIRED, Bool, Checker, Enum, Field, Float, Int, List, Map, Nullable,
    OneOf, SpecError, SpecIssue, Str, Tagged, check_document,
)

__all__ = [
    "BOARDS", "DATA_CLASSES", "DIR_SETS", "WEIGHTED_KINDS", "HardwareConfig", "NetworkSpec",
    "SpecError", "SpecIssue", "SPEC_SCHEMA", "LAYER_SCHEMA", "DENSE_LAYER_SCHEMA",
    "CONV_LAYER_SCHEMA", "MAXPOOL_LAYER_SCHEMA", "ONCHIP_SCHEMA", "RULES", "load_spec", "parse_spec", "read_spec_text",
    "dump_spec", "layer_to_dict", "layer_output_shape", "layer_shapes", "weighted_layers",
]

#: Boards the generated design can be built for (``none``: no board, just the core).
BOARDS = ("none", "icebreaker", "ulx3s", "arty")
#: Number of classes of each data set: the output layer must have this many units.
DATA_CLASSES = {"digits": 10, "fashion-mnist": 10, "mnist": 10, "cifar10": 10, "svhn": 10}
#: Data sets read from files, which may be given a ``data.dir``.
DIR_SETS = ("mnist", "fashion-mnist", "cifar10", "svhn")
#: Layer kinds with weights (and neurons): the layers ``hardware.pe`` lists count. A
#: maxpool has none; in hardware it runs inside the layer before it.
WEIGHTED_KINDS = ("dense", "conv")
#: Default ``data.input_bits`` per data set (8 for any set not listed).
DEFAULT_INPUT_BITS = {"digits": 4}


@dataclass
class HardwareConfig:
    """How the network is laid out in hardware.

    Attributes
    ----------
    pe : {"auto"} or int or list of int
        Neurons computed in parallel: ``"auto"`` lets the compiler choose, an
        int applies to every layer with weights, a list gives one value per
        layer with weights (conv and dense layers, see :func:`weighted_layers`;
        a maxpool runs inside the layer before it and takes no entry). Each
        value must divide the units (filters of a conv) of its layer.
    target_cycles : int or None
        With ``pe: auto``, choose per layer the smallest ``pe`` that meets
        this many clock cycles per inference.
    board : str
        One of :data:`BOARDS`.
    """
    pe: int | list[int] | str = "auto"
    target_cycles: int | None = None
    board: str = "none"


@dataclass
class NetworkSpec:
    """A validated network spec with every default filled in.

    Attributes
    ----------
    name : str
        Network name (defaults to the spec file's stem).
    data : DataConfig
    layers : list of LayerConfig
    train : TrainConfig
    hardware : HardwareConfig
    """
    name: str
    data: DataConfig
    layers: list[LayerConfig]
    train: TrainConfig
    hardware: HardwareConfig = field(default_factory=HardwareConfig)

    def to_dict(self) -> dict[str, Any]:
        """Plain nested ``dict``/``list`` form with every default written out.

        Keys are in spec order; each layer has the keys of its kind only (see
        :func:`layer_to_dict`). ``parse_spec(yaml.safe_dump(d))`` rebuilds an
        equal spec.
        """
        tree = dataclasses.asdict(self)
        tree["layers"] = [layer_to_dict(layer) for layer in self.layers]
        return tree


# --------------------------------------------------------------------------- schema

def _default(cls: type, name: str) -> Any:
    """Default of dataclass field ``cls.name`` (so the schema can't drift from it)."""
    f = {f.name: f for f in dataclasses.fields(cls)}[name]
    if f.default is not MISSING:
        return f.default
    if f.default_factory is not MISSING:
        return f.default_factory
    return REQUIRED


#: ``data:`` -- which data set and input precision.
DATA_SCHEMA = Map({
    "set": Field(Enum(DATA_SETS), _default(DataConfig, "set"), "data set"),
    "input_bits": Field(Int(min=1, max=8), None, "bits per input pixel; 4 for digits, 8 otherwise"),
    "dir": Field(Nullable(Str()), _default(DataConfig, "dir"),
                 "directory of the data files (mnist, fashion-mnist, cifar10, svhn)"),
})

_KIND = Field(Enum(LAYER_KINDS), _default(LayerConfig, "kind"), "layer kind: dense | conv | maxpool")
#: Keys of every layer with weights (dense and conv), after its size key.
_NEURON_FIELDS = {
    "weights": Field(Enum(WEIGHT_MODES), _default(LayerConfig, "weights"), "weight quantizer"),
    "act": Field(Enum(ACTIVATIONS), _default(LayerConfig, "act"), "activation"),
    "act_bits": Field(Int(min=1, max=8), None, "activation bits: 1 for sign, 2..8 for quant"),
    "bn": Field(Bool(), _default(LayerConfig, "bn"), "batch normalization"),
}
_NOT_DENSE = "only for a {kind} layer, and this layer is dense (kind defaults to dense; give kind: {kind})"
_POOL_ONLY_KEY = "(its only keys are size and pools)"

#: ``layers:`` entry of kind ``dense`` (the default): fully connected.
DENSE_LAYER_SCHEMA = Map({
    "kind": _KIND,
    "units": Field(Int(min=1), doc="number of neurons"),
    **_NEURON_FIELDS,
}, expected="a mapping describing a layer",
    instead={"filters": "units"},
    hints={"filters": "a dense layer has units; filters are for kind: conv",
           "kernel": _NOT_DENSE.format(kind="conv"), "stride": _NOT_DENSE.format(kind="conv"),
           "padding": _NOT_DENSE.format(kind="conv"), "size": _NOT_DENSE.format(kind="maxpool")})

#: ``layers:`` entry of kind ``conv``: a 2-D convolution, ``filters`` output channels.
CONV_LAYER_SCHEMA = Map({
    "kind": _KIND,
    "filters": Field(Int(min=1), doc="number of filters (output channels)"),
    "kernel": Field(Int(min=1), _default(LayerConfig, "kernel"), "kernel height and width"),
    "stride": Field(Int(min=1), _default(LayerConfig, "stride"), "step between windows"),
    "padding": Field(Enum(PADDINGS), _default(LayerConfig, "padding"),
                     'valid: none; same: (kernel - 1) / 2 on each side (odd kernels)'),
    **_NEURON_FIELDS,
}, expected="a mapping describing a layer",
    instead={"units": "filters"},
    hints={"units": "a conv layer has filters, one per output channel; units are for dense layers",
           "size": "only for a maxpool layer, and this layer is a conv (its window is kernel)"})

#: ``layers:`` entry of kind ``maxpool``: the maximum of each ``size x size`` block.
MAXPOOL_LAYER_SCHEMA = Map({
    "kind": _KIND,
    "size": Field(Int(min=2), _default(LayerConfig, "size"), "block size and stride"),
    "pools": Field(Enum(POOL_INPUTS), _default(LayerConfig, "pools"),
                   "sums: the conv's sums, before its batch norm (BinaryNet); "
                   "activations: its activations (FINN's CNV)"),
}, expected="a mapping describing a layer",
    instead={"kernel": "size"},
    hints={"kernel": "a maxpool layer's blocks are size x size, with stride size",
           "units": "a maxpool layer has no units: it keeps the channels of the layer before it "
                    + _POOL_ONLY_KEY,
           "filters": "a maxpool layer has no filters: it keeps the channels of the layer before it "
                      + _POOL_ONLY_KEY,
           "weights": "a maxpool layer has no weights " + _POOL_ONLY_KEY,
           "act": "a maxpool layer has no activation: it pools the sums or activations of the conv "
                  "layer before it " + _POOL_ONLY_KEY,
           "act_bits": "a maxpool layer has no activation: it pools the sums or activations of the "
                       "conv layer before it " + _POOL_ONLY_KEY,
           "bn": "a maxpool layer has no batch norm " + _POOL_ONLY_KEY,
           "stride": "a maxpool layer's stride is its size " + _POOL_ONLY_KEY,
           "padding": "a maxpool layer has no padding: its size must divide its input " + _POOL_ONLY_KEY})

#: One entry of ``layers:``; its ``kind`` picks the keys.
LAYER_SCHEMA = Tagged("kind", {"dense": DENSE_LAYER_SCHEMA, "conv": CONV_LAYER_SCHEMA,
                               "maxpool": MAXPOOL_LAYER_SCHEMA},
                      default=_default(LayerConfig, "kind"), expected="a mapping describing a layer")

#: ``train.optimizer:``.
OPTIMIZER_SCHEMA = Map({
    "name": Field(Enum(OPTIMIZERS), _default(OptimizerConfig, "name"), "optimizer"),
    "lr": Field(Float(min=0, min_exclusive=True), _default(OptimizerConfig, "lr"), "initial learning rate"),
    "lr_final": Field(Float(min=0, min_exclusive=True), _default(OptimizerConfig, "lr_final"),
                      "learning rate of the last epoch (geometric decay)"),
    "batch": Field(Int(min=1), _default(OptimizerConfig, "batch"), "minibatch size"),
    "lr_pow2": Field(Bool(), _default(OptimizerConfig, "lr_pow2"), "round learning rates to powers of two"),
})

def _per_layer(which: str, most: int) -> Nullable:
    """An int for every layer, a list with one per layer, or null (chosen from the sizes)."""
    return Nullable(OneOf(Int(min=0, max=most), List(Int(min=0, max=most), min_len=1),
                          expected=f"an integer in 0..{most} or a list of them (one per {which})"))


#: ``train.onchip:`` -- fixed-point scales of on-chip training (``fewmul compile --train``).
ONCHIP_SCHEMA = Map({
    "lr_shift": Field(_per_layer("layer with weights", 31), _default(OnChipTrainConfig, "lr_shift"),
                      "right shift of the error in each layer's update (learning rate 2^-shift); "
                      "null: from the sizes"),
    "lr_decay_steps": Field(Int(min=0), _default(OnChipTrainConfig, "lr_decay_steps"),
                            "every learning-rate shift grows by one after this many training "
                            "samples (0: never)"),
    "lr_decay_max": Field(Int(min=0, max=16), _default(OnChipTrainConfig, "lr_decay_max"),
                          "at most this many times"),
    "margin_shift": Field(Int(min=0, max=24), _default(OnChipTrainConfig, "margin_shift"),
                          "squared hinge margin 2^margin_shift in units of the output sums"),
    "gate_shift": Field(_per_layer("hidden layer", 31), _default(OnChipTrainConfig, "gate_shift"),
                        "straight-through gate of each hidden layer: open where |s| < 2^shift; "
                        "null: from the sizes"),
    "backprop_shift": Field(_per_layer("hidden layer", 31),
                            _default(OnChipTrainConfig, "backprop_shift"),
                            "right shift of the error back-propagated into each hidden layer; "
                            "null: from the sizes"),
    "clip_bits": Field(Int(min=1, max=15), _default(OnChipTrainConfig, "clip_bits"),
                       "hidden weights are clipped to [-2^clip_bits, 2^clip_bits]"),
    "batch": Field(Int(min=1, max=1 << 16), _default(OnChipTrainConfig, "batch"),
                   "samples per mini-batch, a power of two"),
}, instead={"lr": "lr_shift", "learning_rate": "lr_shift", "margin": "margin_shift",
            "gate": "gate_shift", "backprop": "backprop_shift", "clip": "clip_bits",
            "weight_bits": "clip_bits", "batch_size": "batch", "score_shift": "margin_shift",
            "lr_shifts": "lr_shift", "gate_shifts": "gate_shift",
            "backprop_shifts": "backprop_shift"})

#: ``train:``.
TRAIN_SCHEMA = Map({
    "epochs": Field(Int(min=1), _default(TrainConfig, "epochs"), "passes over the training set"),
    "seed": Field(Int(min=0, max=2**32 - 1), _default(TrainConfig, "seed"), "random seed"),
    "quantize": Field(Enum(QUANTIZE_MODES), _default(TrainConfig, "quantize"), "weight quantization"),
    "qbp": Field(Bool(), _default(TrainConfig, "qbp"), "quantized back-propagation"),
    "loss": Field(Enum(LOSSES), _default(TrainConfig, "loss"), "loss function"),
    "optimizer": Field(OPTIMIZER_SCHEMA, doc="optimizer and learning-rate schedule"),
    "bn_momentum": Field(Float(min=0, max=1, min_exclusive=True), _default(TrainConfig, "bn_momentum"),
                         "batch-norm running-statistics momentum"),
    "bn_eps": Field(Float(min=0, min_exclusive=True), _default(TrainConfig, "bn_eps"), "batch-norm epsilon"),
    "bn_recompute": Field(Int(min=0), _default(TrainConfig, "bn_recompute"),
                          "training images over which batch-norm statistics are recomputed "
                          "after every epoch (0: running averages)"),
    "qbp_exp_min": Field(Int(min=-126, max=127), _default(TrainConfig, "qbp_exp_min"), "smallest QBP exponent"),
    "qbp_exp_max": Field(Int(min=-126, max=127), _default(TrainConfig, "qbp_exp_max"), "largest QBP exponent"),
    "bn_kind": Field(Enum(BN_KINDS), _default(TrainConfig, "bn_kind"), "standard or shift-based (AP2) batch norm"),
    "onchip": Field(ONCHIP_SCHEMA, doc="fixed-point scales of on-chip training (compile --train)"),
})

#: ``hardware:``.
HARDWARE_SCHEMA = Map({
    "pe": Field(OneOf(Enum(["auto"]), Int(min=1), List(Int(min=1), min_len=1),
                      expected='"auto", a positive integer, or a list of positive integers '
                               '(one per layer with weights)'),
                _default(HardwareConfig, "pe"),
                "neurons computed in parallel per layer with weights (conv, dense; not maxpool)"),
    "target_cycles": Field(Nullable(Int(min=1)), _default(HardwareConfig, "target_cycles"),
                           "cycles per inference that pe: auto should meet"),
    "board": Field(Enum(BOARDS), _default(HardwareConfig, "board"), "target board"),
})

#: The whole document.
SPEC_SCHEMA = Map({
    "name": Field(Str(), None, "network name; default: file stem"),
    "data": Field(DATA_SCHEMA, doc="data set"),
    "layers": Field(List(LAYER_SCHEMA, min_len=1, noun="layers"), doc="layers, input to output"),
    "train": Field(TRAIN_SCHEMA, doc="training recipe"),
    "hardware": Field(HARDWARE_SCHEMA, doc="hardware options"),
}, expected="a mapping (the network spec)")


# --------------------------------------------------------------------------- cross-field rules

def _ok(*values: Any) -> bool:
    return all(v is not INVALID for v in values)


def _rule_data(spec: dict, chk: Checker) -> None:
    """Fill ``input_bits`` per data set; ``dir`` only makes sense for mnist."""
    data = spec["data"]
    if not _ok(data) or not _ok(data["set"]):
        return
    if data["input_bits"] is None:
        data["input_bits"] = DEFAULT_INPUT_BITS.get(data["set"], 8)
    if data["dir"] not in (None, INVALID) and data["set"] not in DIR_SETS:
        sets = ", ".join(f'"{s}"' for s in DIR_SETS[:-1]) + f' or "{DIR_SETS[-1]}"'
        chk.error(None, ("data", "dir"),
                  f'only allowed with set {sets} (read from files), got set "{data["set"]}"')


def _rule_layers(spec: dict, chk: Checker) -> None:
    """Activation bits, hidden/output activations, output kind and size.

    A maxpool has no activation of its own: it pools the sums or the
    activations of the conv layer before it, which as a hidden layer needs one.
    """
    layers, data = spec["layers"], spec["data"]
    if not _ok(layers):
        return
    n_classes = DATA_CLASSES.get(data["set"]) if _ok(data) else None
    last = len(layers) - 1
    for i, layer in enumerate(layers):
        if not _ok(layer):
            continue
        if i == last and layer["kind"] != "dense":
            chk.mismatch(None, ("layers", i, "kind"),
                         '"dense" for the last layer (the output layer gives one linear score per class)',
                         value=layer["kind"])
            continue
        if layer["kind"] == "maxpool":
            continue
        act, bits = layer["act"], layer["act_bits"]
        if act == "quant":
            if not chk.given(("layers", i, "act_bits")):
                chk.error(None, ("layers", i), "missing required key 'act_bits' "
                          '(act "quant" needs an integer in 2..8)')
                layer["act_bits"] = INVALID
            elif bits == 1:
                chk.mismatch(None, ("layers", i, "act_bits"), 'an integer in 2..8 for act "quant"', value=bits)
                layer["act_bits"] = INVALID
        elif act is not INVALID:
            if bits not in (None, 1, INVALID):
                chk.mismatch(None, ("layers", i, "act_bits"),
                             f'1 (act_bits only applies to act "quant", this layer has act "{act}")', value=bits)
            layer["act_bits"] = 1
        if i < last and act == "none":
            hidden = ", ".join(f'"{a}"' for a in ACTIVATIONS if a != "none")
            chk.mismatch(None, ("layers", i, "act"), f"one of {hidden} (a hidden layer needs an activation)",
                         value=act)
        if i == last:
            if act not in ("none", INVALID):
                chk.mismatch(None, ("layers", i, "act"), '"none" (the output layer gives linear class scores)',
                             value=act)
            if n_classes is not None and layer["units"] not in (n_classes, INVALID):
                chk.error(None, ("layers", i, "units"),
                          f"inconsistent sizes: the output layer must have {n_classes} units "
                          f'(one per class of data set "{data["set"]}"), got {layer["units"]}')


def _hw(h: int, w: int) -> str:
    return f"{h}x{w}"


def _conv_shape(shape: tuple[int, int, int], filters: int, kernel: int, stride: int,
                padding: str) -> tuple[int, int, int]:
    _, h, w = shape
    if padding == "same":
        h, w = h + kernel - 1, w + kernel - 1
    return filters, (h - kernel) // stride + 1, (w - kernel) // stride + 1


def _pool_sizes(h: int, w: int) -> list[int]:
    """Pool sizes (>= 2) that divide an ``h x w`` input."""
    return [d for d in divisors(math.gcd(h, w)) if d >= 2]


def _rule_shapes(spec: dict, chk: Checker) -> None:
    """Layer order, and kernel and pool sizes against the shapes from the data set's.

    Conv and maxpool layers come before the first dense layer (a dense layer
    flattens its input; nothing turns it back into an image), a maxpool follows
    a conv layer (it runs inside that layer in hardware), kernels fit their
    padded input and pool sizes divide it. The walk stops at the first layer
    whose shape is unknown, so one problem is not reported again downstream.
    """
    layers, data = spec["layers"], spec["data"]
    if not _ok(layers):
        return
    shape = SHAPES[data["set"]] if _ok(data) and _ok(data["set"]) else None
    first_dense = None
    for i, layer in enumerate(layers):
        kind = layer["kind"] if _ok(layer) else INVALID
        prev = layers[i - 1]["kind"] if i and _ok(layers[i - 1]) else None
        where = ("layers", i, "kind")
        if kind == "conv" and layer["padding"] == "same" and _ok(layer["kernel"]) \
                and layer["kernel"] % 2 == 0:
            chk.mismatch(None, ("layers", i, "kernel"),
                         'an odd kernel with padding "same" (it pads (kernel - 1) / 2 on each side)',
                         str(layer["kernel"]))
            shape = None
        if kind is INVALID:
            shape = None
        elif kind == "dense":
            first_dense = i if first_dense is None else first_dense
            shape = None                # the net is flat from here on
        elif i == len(layers) - 1:
            shape = None                # a conv or maxpool as the output layer: see _rule_layers
        elif first_dense is not None:
            chk.error(None, where, f"a {kind} layer after a dense layer (layers[{first_dense}]); expected "
                      "every conv and maxpool layer before the first dense layer (a dense layer "
                      "flattens its input, nothing turns it back into an image)")
        elif kind == "maxpool" and i == 0:
            chk.error(None, where, "a maxpool as the first layer; expected a conv layer before it "
                      "(a maxpool pools the activations of the layer before it and runs inside it)")
            shape = None
        elif kind == "maxpool" and prev == "maxpool":
            chk.error(None, where, f"a maxpool right after another (layers[{i - 1}]); expected a conv "
                      "layer before it (one maxpool whose size is the product of both pools the same)")
            shape = None
        elif shape is not None and kind == "conv":
            k, stride, padding, filters = (layer[key] for key in ("kernel", "stride", "padding", "filters"))
            if not _ok(k, stride, padding, filters):
                shape = None
            elif padding == "valid" and k > min(shape[1:]):
                chk.error(None, ("layers", i, "kernel"),
                          f"conv kernel {k} is larger than the {_hw(*shape[1:])} input (padding "
                          f'"valid"); expected a kernel of at most {min(shape[1:])}, or padding "same"')
                shape = None
            else:
                shape = _conv_shape(shape, filters, k, stride, padding)
        elif shape is not None and kind == "maxpool":
            size, (c, h, w) = layer["size"], shape
            if not _ok(size):
                shape = None
            elif h % size or w % size:
                fits = _pool_sizes(h, w)
                chk.error(None, ("layers", i, "size"),
                          f"maxpool size {size} does not divide the {_hw(h, w)} input; "
                          + (f"sizes that divide it: {', '.join(map(str, fits))}" if fits
                             else "no size >= 2 divides it"))
                shape = None
            else:
                shape = (c, h // size, w // size)


def _rule_optimizer(spec: dict, chk: Checker) -> None:
    """The learning rate decays: ``lr_final <= lr``."""
    train = spec["train"]
    if not _ok(train) or not _ok(train["optimizer"]):
        return
    opt = train["optimizer"]
    if _ok(opt["lr"], opt["lr_final"]) and opt["lr_final"] > opt["lr"]:
        chk.mismatch(None, ("train", "optimizer", "lr_final"), f"a number <= lr ({opt['lr']:g})",
                     f"{opt['lr_final']:g}")
    lo, hi = train.get("qbp_exp_min"), train.get("qbp_exp_max")
    if _ok(lo, hi) and lo is not None and hi is not None and lo > hi:
        chk.mismatch(None, ("train", "qbp_exp_max"), f"an integer >= qbp_exp_min ({lo})", f"{hi}")


def _rule_onchip(spec: dict, chk: Checker) -> None:
    """``train.onchip``: per-layer lists have one entry per layer they apply to, the first
    learning-rate shift covers the largest QBP exponent, the batch is a power of two."""
    train, layers, data = spec["train"], spec["layers"], spec["data"]
    if not _ok(train) or not _ok(train["onchip"]):
        return
    onchip = train["onchip"]
    where = ("train", "onchip")
    batch = onchip["batch"]
    if _ok(batch) and batch & (batch - 1):
        lower = 1 << (batch.bit_length() - 1)
        chk.mismatch(None, (*where, "batch"), f"a power of two (the average is a shift; "
                     f"{lower} or {2 * lower})", str(batch))
    if not _ok(layers) or not all(_ok(l) for l in layers):
        return
    weighted = sum(l["kind"] in WEIGHTED_KINDS for l in layers)
    for key, count, what in (("lr_shift", weighted, "layer with weights"),
                             ("gate_shift", weighted - 1, "hidden layer"),
                             ("backprop_shift", weighted - 1, "hidden layer")):
        value = onchip[key]
        if isinstance(value, list) and len(value) != count:
            chk.mismatch(None, (*where, key), f"a list with one entry per {what} "
                         f"({_entries(count)})", _entries(len(value)))
    lr, bits = onchip["lr_shift"], data["input_bits"] if _ok(data) else INVALID
    first = lr[0] if isinstance(lr, list) else lr
    if _ok(first, bits) and first is not None and bits is not None and first < bits:
        path = (*where, "lr_shift", 0) if isinstance(lr, list) else (*where, "lr_shift")
        chk.mismatch(None, path, f"an integer >= data.input_bits ({bits}) for the first layer "
                     "(a pixel's QBP exponent, up to input_bits, is subtracted from it)",
                     str(first))


def _entries(n: int) -> str:
    return f"{n} entry" if n == 1 else f"{n} entries"


def _size_key(kind: str) -> str:
    """The key a layer of ``kind`` gives its width with (``LayerConfig.units``)."""
    return "filters" if kind == "conv" else "units"


def _rule_hardware(spec: dict, chk: Checker) -> None:
    """``pe`` has one entry per layer with weights, each dividing that layer's units.

    A maxpool runs inside the layer before it in hardware and takes no entry.
    """
    hw, layers = spec["hardware"], spec["layers"]
    if not _ok(hw, hw["pe"] if _ok(hw) else None):
        return
    pe = hw["pe"]
    if hw["target_cycles"] not in (None, INVALID) and pe != "auto":
        chk.error(None, ("hardware", "target_cycles"), 'only used with pe "auto" (pe is given explicitly)')
    if not _ok(layers) or pe == "auto" or not all(_ok(l) for l in layers):
        return                          # (a layer of unknown kind may or may not have weights)
    weighted = [(i, _size_key(l["kind"]), l[_size_key(l["kind"])])
                for i, l in enumerate(layers) if l["kind"] in WEIGHTED_KINDS]
    pools = len(weighted) < len(layers)
    per_layer = "per layer with weights" if pools else "per layer"
    if isinstance(pe, list):
        if len(pe) != len(weighted):
            why = ": conv and dense layers; a maxpool runs inside the layer before it" if pools else ""
            chk.mismatch(None, ("hardware", "pe"),
                         f"a list with one entry {per_layer} ({_entries(len(weighted))}{why})",
                         _entries(len(pe)))
            return
        for j, (p, (i, key, u)) in enumerate(zip(pe, weighted)):
            if _ok(p, u) and u % p:
                chk.mismatch(None, ("hardware", "pe", j),
                             f"a divisor of layers[{i}].{key} = {u} "
                             f"({', '.join(map(str, divisors(u)))})", str(p))
    else:
        units = [u for _, _, u in weighted]
        if units and all(_ok(u) for u in units) and any(u % pe for u in units):
            common = [d for d in divisors(min(units)) if all(u % d == 0 for u in units)]
            what = ("the units (filters of a conv) of every layer with weights"
                    if pools or any(key == "filters" for _, key, _ in weighted) else "every layer's units")
            chk.mismatch(None, ("hardware", "pe"),
                         f"a divisor of {what} ({', '.join(map(str, common))}; "
                         f"or a list with one value {per_layer})", str(pe))


#: Cross-field rules run, in order, on the checked (defaults-filled) document.
#: Each may fill dependent defaults and report problems; fields that failed
#: their own check are :data:`~fewmul.compiler.schema.INVALID` and skipped.
RULES: list[Callable[[dict, Checker], None]] = [_rule_data, _rule_layers, _rule_shapes, _rule_optimizer,
                                                _rule_onchip, _rule_hardware]


# --------------------------------------------------------------------------- layers

def _layer_config(layer: dict) -> LayerConfig:
    """The record of a checked ``layers:`` entry (``filters`` -> ``units``; a maxpool has 0 units)."""
    fields = dict(layer)
    if "filters" in fields:
        fields["units"] = fields.pop("filters")
    return LayerConfig(**fields)


def layer_to_dict(layer: LayerConfig) -> dict[str, Any]:
    """The spec form of ``layer``: the keys of its kind, in spec order, every default written.

    A dense layer is written as before layer kinds existed (no ``kind`` key);
    a conv layer's ``units`` is written as ``filters``; a maxpool has only
    ``kind``, ``size`` and ``pools``.

    Examples
    --------
    >>> layer_to_dict(LayerConfig(kind="maxpool", size=2))
    {'kind': 'maxpool', 'size': 2, 'pools': 'sums'}
    >>> layer_to_dict(LayerConfig(10, act="none"))
    {'units': 10, 'weights': 'binary', 'act': 'none', 'act_bits': 1, 'bn': True}
    """
    out = {}
    for key in LAYER_SCHEMA.variants[layer.kind].fields:
        if key == "kind" and layer.kind == "dense":
            continue
        out[key] = getattr(layer, "units" if key == "filters" else key)
    return out


def weighted_layers(spec: NetworkSpec) -> list[int]:
    """Indices of the layers with weights (conv and dense), the layers ``hardware.pe`` lists count.

    A maxpool has no weights and runs inside the layer before it in hardware.
    """
    return [i for i, layer in enumerate(spec.layers) if layer.kind in WEIGHTED_KINDS]


def layer_output_shape(layer: LayerConfig, shape: tuple[int, int, int]) -> tuple[int, int, int]:
    """The ``(C, H, W)`` output of ``layer`` given a ``(C, H, W)`` input.

    A dense layer gives ``(units, 1, 1)`` (it flattens its input); a conv gives
    ``(units, (H' - kernel) // stride + 1, ...)`` where ``H'`` is ``H``, plus
    ``kernel - 1`` for padding ``same``; a maxpool gives ``(C, H / size, W / size)``.

    Raises
    ------
    ValueError
        If the layer does not fit its input (the checks :func:`parse_spec` makes).
    """
    c, h, w = shape
    if layer.kind == "dense":
        return layer.units, 1, 1
    if layer.kind == "conv":
        if layer.padding == "same" and layer.kernel % 2 == 0:
            raise ValueError(f'conv kernel {layer.kernel} with padding "same": expected an odd kernel')
        if layer.padding == "valid" and layer.kernel > min(h, w):
            raise ValueError(f"conv kernel {layer.kernel} is larger than the {_hw(h, w)} input")
        return _conv_shape(shape, layer.units, layer.kernel, layer.stride, layer.padding)
    if layer.kind == "maxpool":
        if h % layer.size or w % layer.size:
            raise ValueError(f"maxpool size {layer.size} does not divide the {_hw(h, w)} input")
        return c, h // layer.size, w // layer.size
    raise ValueError(f"layer kind must be one of {', '.join(LAYER_KINDS)}, not {layer.kind!r}")


def layer_shapes(spec: NetworkSpec) -> list[tuple[int, int, int]]:
    """The ``(C, H, W)`` output shape of each layer of ``spec``.

    The walk starts from the data set's image shape
    (``fewmul.nn.data.SHAPES[spec.data.set]``); a dense layer's output is
    ``(units, 1, 1)``. See :func:`layer_output_shape`.

    Examples
    --------
    >>> spec = parse_spec("layers: [{kind: conv, filters: 8}, {kind: maxpool}, {units: 10, act: none}]")
    >>> layer_shapes(spec)
    [(8, 6, 6), (8, 3, 3), (10, 1, 1)]
    """
    shape, shapes = SHAPES[spec.data.set], []
    for layer in spec.layers:
        shape = layer_output_shape(layer, shape)
        shapes.append(shape)
    return shapes


# --------------------------------------------------------------------------- API

def _default_name(filename: str) -> str:
    stem = FilePath(filename.strip("<>")).stem
    return stem or "network"


def _build(spec: dict, filename: str) -> NetworkSpec:
    train = dict(spec["train"])
    train["optimizer"] = OptimizerConfig(**train["optimizer"])
    train["onchip"] = OnChipTrainConfig(**train["onchip"])
    hw = dict(spec["hardware"])
    return NetworkSpec(
        name=spec["name"] if spec["name"] is not None else _default_name(filename),
        data=DataConfig(**spec["data"]),
        layers=[_layer_config(layer) for layer in spec["layers"]],
        train=TrainConfig(**train),
        hardware=HardwareConfig(**hw),
    )


def parse_spec(text: str, filename: str = "<spec>") -> NetworkSpec:
    """Validate spec YAML text and build a :class:`NetworkSpec`.

    Parameters
    ----------
    text : str
        YAML source.
    filename : str
        Name used in error messages; its stem is the default ``name``.

    Returns
    -------
    NetworkSpec

    Raises
    ------
    SpecError
        With every problem found (syntax errors stop at the first).
    """
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        what = exc.problem or exc.context or "invalid YAML"
        if exc.problem and exc.context and exc.context.startswith("while"):
            started = exc.context_mark and exc.context_mark.line != mark.line
            what += f" ({exc.context}" + (f" started at line {exc.context_mark.line + 1})" if started else ")")
        elif exc.problem and exc.context:
            what = f"{exc.context}, {exc.problem}"
        line, col = (mark.line + 1, mark.column + 1) if mark else (None, None)
        raise SpecError([SpecIssue(filename, line, col, "", f"YAML syntax error: {what}")]) from None
    except yaml.YAMLError as exc:
        raise SpecError([SpecIssue(filename, None, None, "", f"YAML syntax error: {exc}")]) from None
    chk = Checker(filename)
    spec = check_document(SPEC_SCHEMA, root, chk)
    if spec is not INVALID:
        for rule in RULES:
            rule(spec, chk)
    if chk.errors:
        raise SpecError(chk.sorted_errors())
    return _build(spec, filename)


def load_spec(path: str | FilePath) -> NetworkSpec:
    """Read and validate a spec file.

    Parameters
    ----------
    path : str or pathlib.Path
        The YAML file. It appears as given in error messages, and its stem is
        the default network name.

    Raises
    ------
    SpecError
        If the file can't be read or is invalid.
    """
    return parse_spec(read_spec_text(path), str(path))


def read_spec_text(path: str | FilePath, what: str = "spec") -> str:
    """The text of a YAML file, or a :class:`SpecError` naming it (``what``: the kind of file,
    for the message)."""
    name = str(path)
    try:
        return FilePath(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError([SpecIssue(name, None, None, "", f"{what} file not found")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError([SpecIssue(name, None, None, "", f"cannot read {what} file: {exc}")]) \
            from None


def dump_spec(spec: NetworkSpec) -> str:
    """YAML text of ``spec`` with every default written out.

    Layers and other leaf mappings are written in flow style
    (``{units: 256, ...}``), each layer with the keys of its kind only
    (:func:`layer_to_dict`); ``parse_spec(dump_spec(s)) == s``.
    """
    tree = spec.to_dict()
    text = yaml.safe_dump(tree, sort_keys=False, default_flow_style=None, allow_unicode=True,
                          width=100)
    if yaml.safe_load(text) != tree:
        # PyYAML writes some line-break characters (U+0085, U+2028, U+2029) raw in unicode
        # mode and reads them back as spaces; escaped, they survive.
        text = yaml.safe_dump(tree, sort_keys=False, default_flow_style=None, width=100)
    return text
