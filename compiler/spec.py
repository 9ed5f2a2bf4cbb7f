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
from dataclasses import MISSING, dataclass, field
from pathlib import Path as FilePath
from typing import Any, Callable

import yaml

from fewmul.arith.ranges import divisors
from fewmul.nn.config import (
    ACTIVATIONS, BN_KINDS, DATA_SETS, LOSSES, OPTIMIZERS, QUANTIZE_MODES, WEIGHT_MODES,
    DataConfig, LayerConfig, OptimizerConfig, TrainConfig,
)

from .schema import (
    INVALID, REQUIRED, Bool, Checker, Enum, Field, Float, Int, List, Map, Nullable,
    OneOf, SpecError, SpecIssue, Str, check_document,
)

__all__ = [
    "BOARDS", "DATA_CLASSES", "HardwareConfig", "NetworkSpec", "SpecError", "SpecIssue",
    "SPEC_SCHEMA", "RULES", "load_spec", "parse_spec", "dump_spec",
]

#: Boards the generated design can be built for (``none``: no board, just the core).
BOARDS = ("none", "icebreaker", "ulx3s", "arty")
#: Number of classes of each data set: the output layer must have this many units.
DATA_CLASSES = {"digits": 10, "fashion-mnist": 10, "mnist": 10}
#: Default ``data.input_bits`` per data set (8 for any set not listed).
DEFAULT_INPUT_BITS = {"digits": 4}


@dataclass
class HardwareConfig:
    """How the network is laid out in hardware.

    Attributes
    ----------
    pe : {"auto"} or int or list of int
        Neurons computed in parallel: ``"auto"`` lets the compiler choose, an
        int applies to every layer, a list gives one value per layer. Each value
        must divide the units of its layer.
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

        Keys are in spec order; ``parse_spec(yaml.safe_dump(d))`` rebuilds an
        equal spec.
        """
        return dataclasses.asdict(self)


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
    "dir": Field(Nullable(Str()), _default(DataConfig, "dir"), "directory of IDX files (mnist, fashion-mnist)"),
})

#: One entry of ``layers:``.
LAYER_SCHEMA = Map({
    "units": Field(Int(min=1), doc="number of neurons"),
    "weights": Field(Enum(WEIGHT_MODES), _default(LayerConfig, "weights"), "weight quantizer"),
    "act": Field(Enum(ACTIVATIONS), _default(LayerConfig, "act"), "activation"),
    "act_bits": Field(Int(min=1, max=8), None, "activation bits: 1 for sign, 2..8 for quant"),
    "bn": Field(Bool(), _default(LayerConfig, "bn"), "batch normalization"),
}, expected="a mapping describing a layer")

#: ``train.optimizer:``.
OPTIMIZER_SCHEMA = Map({
    "name": Field(Enum(OPTIMIZERS), _default(OptimizerConfig, "name"), "optimizer"),
    "lr": Field(Float(min=0, min_exclusive=True), _default(OptimizerConfig, "lr"), "initial learning rate"),
    "lr_final": Field(Float(min=0, min_exclusive=True), _default(OptimizerConfig, "lr_final"),
                      "learning rate of the last epoch (geometric decay)"),
    "batch": Field(Int(min=1), _default(OptimizerConfig, "batch"), "minibatch size"),
    "lr_pow2": Field(Bool(), _default(OptimizerConfig, "lr_pow2"), "round learning rates to powers of two"),
})

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
    "qbp_exp_min": Field(Int(min=-126, max=127), _default(TrainConfig, "qbp_exp_min"), "smallest QBP exponent"),
    "qbp_exp_max": Field(Int(min=-126, max=127), _default(TrainConfig, "qbp_exp_max"), "largest QBP exponent"),
    "bn_kind": Field(Enum(BN_KINDS), _default(TrainConfig, "bn_kind"), "standard or shift-based (AP2) batch norm"),
})

#: ``hardware:``.
HARDWARE_SCHEMA = Map({
    "pe": Field(OneOf(Enum(["auto"]), Int(min=1), List(Int(min=1), min_len=1),
                      expected='"auto", a positive integer, or a list of positive integers (one per layer)'),
                _default(HardwareConfig, "pe"), "neurons computed in parallel per layer"),
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
    if data["dir"] not in (None, INVALID) and data["set"] not in ("mnist", "fashion-mnist"):
        chk.error(None, ("data", "dir"),
                  f'only allowed with set "mnist" or "fashion-mnist" (IDX files), got set "{data["set"]}"')


def _rule_layers(spec: dict, chk: Checker) -> None:
    """Activation bits, hidden/output activations and output size."""
    layers, data = spec["layers"], spec["data"]
    if not _ok(layers):
        return
    n_classes = DATA_CLASSES.get(data["set"]) if _ok(data) else None
    last = len(layers) - 1
    for i, layer in enumerate(layers):
        if not _ok(layer):
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


def _entries(n: int) -> str:
    return f"{n} entry" if n == 1 else f"{n} entries"


def _rule_hardware(spec: dict, chk: Checker) -> None:
    """``pe`` has one entry per layer, each dividing that layer's units."""
    hw, layers = spec["hardware"], spec["layers"]
    if not _ok(hw, hw["pe"] if _ok(hw) else None):
        return
    pe = hw["pe"]
    if hw["target_cycles"] not in (None, INVALID) and pe != "auto":
        chk.error(None, ("hardware", "target_cycles"), 'only used with pe "auto" (pe is given explicitly)')
    if not _ok(layers) or pe == "auto":
        return
    units = [l["units"] if _ok(l) else INVALID for l in layers]
    if isinstance(pe, list):
        if len(pe) != len(layers):
            chk.mismatch(None, ("hardware", "pe"),
                         f"a list with one entry per layer ({_entries(len(layers))})", _entries(len(pe)))
            return
        for i, (p, u) in enumerate(zip(pe, units)):
            if _ok(p, u) and u % p:
                chk.mismatch(None, ("hardware", "pe", i),
                             f"a divisor of layers[{i}].units = {u} "
                             f"({', '.join(map(str, divisors(u)))})", str(p))
    elif all(_ok(u) for u in units) and any(u % pe for u in units):
        common = [d for d in divisors(min(units)) if all(u % d == 0 for u in units)]
        chk.mismatch(None, ("hardware", "pe"),
                     f"a divisor of every layer's units ({', '.join(map(str, common))}; "
                     "or a list with one value per layer)", str(pe))


#: Cross-field rules run, in order, on the checked (defaults-filled) document.
#: Each may fill dependent defaults and report problems; fields that failed
#: their own check are :data:`~fewmul.compiler.schema.INVALID` and skipped.
RULES: list[Callable[[dict, Checker], None]] = [_rule_data, _rule_layers, _rule_optimizer, _rule_hardware]


# --------------------------------------------------------------------------- API

def _default_name(filename: str) -> str:
    stem = FilePath(filename.strip("<>")).stem
    return stem or "network"


def _build(spec: dict, filename: str) -> NetworkSpec:
    train = dict(spec["train"])
    train["optimizer"] = OptimizerConfig(**train["optimizer"])
    hw = dict(spec["hardware"])
    return NetworkSpec(
        name=spec["name"] if spec["name"] is not None else _default_name(filename),
        data=DataConfig(**spec["data"]),
        layers=[LayerConfig(**layer) for layer in spec["layers"]],
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
    name = str(path)
    try:
        text = FilePath(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError([SpecIssue(name, None, None, "", "spec file not found")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError([SpecIssue(name, None, None, "", f"cannot read spec file: {exc}")]) from None
    return parse_spec(text, name)


def dump_spec(spec: NetworkSpec) -> str:
    """YAML text of ``spec`` with every default written out.

    Layers and other leaf mappings are written in flow style
    (``{units: 256, ...}``); ``parse_spec(dump_spec(s)) == s``.
    """
    tree = spec.to_dict()
    text = yaml.safe_dump(tree, sort_keys=False, default_flow_style=None, allow_unicode=True,
                          width=100)
    if yaml.safe_load(text) != tree:
        # PyYAML writes some line-break characters (U+0085, U+2028, U+2029) raw in unicode
        # mode and reads them back as spaces; escaped, they survive.
        text = yaml.safe_dump(tree, sort_keys=False, default_flow_style=None, width=100)
    return text
