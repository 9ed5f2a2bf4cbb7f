"""Tests of the YAML network-spec loader (fewmul.compiler.spec)."""

from __future__ import annotations

import dataclasses
import textwrap
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from fewmul.compiler import schema
from fewmul.compiler.spec import (
    LAYER_SCHEMA, SPEC_SCHEMA, HardwareConfig, NetworkSpec, SpecError, SpecIssue, dump_spec,
    layer_output_shape, layer_shapes, layer_to_dict, load_spec, parse_spec, weighted_layers,
)
from fewmul.nn.config import DataConfig, LayerConfig, OnChipTrainConfig, OptimizerConfig, TrainConfig
from fewmul.nn.data import SHAPES

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
EXAMPLE = EXAMPLES / "digits-bnn.yaml"


def errors_of(text: str, filename: str = "x.yaml") -> list[SpecIssue]:
    with pytest.raises(SpecError) as info:
        parse_spec(textwrap.dedent(text), filename)
    err = info.value
    assert isinstance(err, ValueError)
    assert str(err) == "\n".join(str(e) for e in err.errors)
    return err.errors


# --------------------------------------------------------------------------- good specs

def test_example_loads():
    spec = load_spec(EXAMPLE)
    assert spec == NetworkSpec(
        name="digits-bnn",
        data=DataConfig(set="digits", input_bits=4, dir=None),
        layers=[LayerConfig(256, "binary", "sign", 1, True),
                LayerConfig(256, "binary", "sign", 1, True),
                LayerConfig(10, "binary", "none", 1, True)],
        train=TrainConfig(epochs=60, seed=0, quantize="deterministic", qbp=False, loss="squared_hinge",
                          optimizer=OptimizerConfig("adam", 0.01, 0.0003, 100),
                          bn_momentum=0.1, bn_eps=1e-4),
        hardware=HardwareConfig(pe="auto", target_cycles=None, board="none"),
    )


def test_example_round_trips():
    spec = load_spec(EXAMPLE)
    text = dump_spec(spec)
    assert parse_spec(text) == spec
    assert yaml.safe_load(text) == spec.to_dict()
    # The example writes out every key but act_bits (1 for sign/none by default) and the
    # scales of on-chip training (train.onchip, for compile --train).
    written = yaml.safe_load(EXAMPLE.read_text())
    full = spec.to_dict()
    for layer in full["layers"]:
        assert layer.pop("act_bits") == 1
    assert full["train"].pop("onchip") == dataclasses.asdict(OnChipTrainConfig())
    assert written == full


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.name)
def test_every_example_round_trips(path):
    spec = load_spec(path)
    text = dump_spec(spec)
    assert parse_spec(text, path.name) == spec
    assert yaml.safe_load(text) == spec.to_dict()
    for layer, written in zip(spec.layers, spec.to_dict()["layers"]):
        assert ("kind" in written) == (layer.kind != "dense")           # dense layers are written as before


def test_example_every_line_commented():
    for line in EXAMPLE.read_text().splitlines():
        assert "#" in line, line


def test_defaults_filled():
    spec = parse_spec("layers:\n  - {units: 10, act: none}\n", "some/dir/tiny-net.yaml")
    assert spec.name == "tiny-net"
    assert spec.data == DataConfig()
    assert spec.layers == [LayerConfig(units=10, act="none")]
    assert spec.train == TrainConfig()
    assert spec.hardware == HardwareConfig()
    d = spec.to_dict()
    assert d == {
        "name": "tiny-net",
        "data": {"set": "digits", "input_bits": 4, "dir": None},
        "layers": [{"units": 10, "weights": "binary", "act": "none", "act_bits": 1, "bn": True}],
        "train": {"epochs": 60, "seed": 0, "quantize": "deterministic", "qbp": False,
                  "loss": "squared_hinge",
                  "optimizer": {"name": "adam", "lr": 0.01, "lr_final": 0.0003, "batch": 100,
                                "lr_pow2": False},
                  "bn_momentum": 0.1, "bn_eps": 0.0001, "bn_recompute": 0, "qbp_exp_min": -4, "qbp_exp_max": 3,
                  "bn_kind": "standard",
                  "onchip": {"lr_shift": None, "lr_decay_steps": 300, "lr_decay_max": 2,
                             "margin_shift": 4, "gate_shift": None, "backprop_shift": None,
                             "clip_bits": 6, "batch": 1}},
        "hardware": {"pe": "auto", "target_cycles": None, "board": "none"},
    }
    assert list(d) == ["name", "data", "layers", "train", "hardware"]


def test_dependent_defaults():
    spec = parse_spec(textwrap.dedent("""\
        data: {set: mnist, dir: /data/mnist}
        layers:
          - {units: 64, act: quant, act_bits: 3, weights: ternary}
          - {units: 32, act: relu, weights: float, bn: false}
          - {units: 10, act: none}
        train: {bn_eps: 1e-5, optimizer: {lr: 1, lr_final: 1}}
        hardware: {pe: [8, 4, 5], board: ulx3s}
        """))
    assert spec.name == "spec"
    assert spec.data == DataConfig("mnist", 8, "/data/mnist")
    assert [l.act_bits for l in spec.layers] == [3, 1, 1]
    assert spec.train.bn_eps == 1e-5  # YAML 1.1 reads plain 1e-5 as a string; accepted as a number
    assert spec.train.optimizer.lr == 1.0 and isinstance(spec.train.optimizer.lr, float)
    assert spec.hardware == HardwareConfig(pe=[8, 4, 5], target_cycles=None, board="ulx3s")
    assert parse_spec(dump_spec(spec)) == spec
    assert parse_spec("data: {set: fashion-mnist}\nlayers: [{units: 10, act: none}]").data.input_bits == 8


def test_scalar_pe_and_target_cycles():
    spec = parse_spec("layers: [{units: 4}, {units: 10, act: none}]\nhardware: {pe: 2}\n")
    assert spec.hardware.pe == 2
    spec = parse_spec("layers: [{units: 4}, {units: 10, act: none}]\nhardware: {target_cycles: 500}\n")
    assert spec.hardware == HardwareConfig("auto", 500, "none")
    assert parse_spec(dump_spec(spec)) == spec


def test_merge_keys():
    spec = parse_spec(textwrap.dedent("""\
        layers:
          - &hidden {units: 32, weights: ternary, bn: false}
          - {<<: *hidden, units: 16}
          - {<<: *hidden, units: 10, act: none}
        """))
    assert [(l.units, l.weights, l.bn, l.act) for l in spec.layers] == [
        (32, "ternary", False, "sign"), (16, "ternary", False, "sign"), (10, "ternary", False, "none")]


# --------------------------------------------------------------------------- conv and maxpool layers

CONV_NET = textwrap.dedent("""\
    data: {set: cifar10}
    layers:
      - {kind: conv, filters: 64, kernel: 3, stride: 1, padding: valid, weights: binary, act: sign, bn: true}
      - {kind: maxpool, size: 2}
      - {kind: conv, filters: 32, kernel: 5, stride: 2, padding: same, act: quant, act_bits: 2, bn: false}
      - {units: 512, act: sign}
      - {units: 10, act: none}
    hardware: {pe: [8, 4, 16, 2]}
    """)


def test_conv_spec_loads():
    spec = parse_spec(CONV_NET, "cifar-conv.yaml")
    assert spec.data == DataConfig("cifar10", 8, None)
    assert spec.layers == [
        LayerConfig(64, "binary", "sign", 1, True, kind="conv", kernel=3, stride=1, padding="valid"),
        LayerConfig(kind="maxpool", size=2),
        LayerConfig(32, "binary", "quant", 2, False, kind="conv", kernel=5, stride=2, padding="same"),
        LayerConfig(512),
        LayerConfig(10, act="none"),
    ]
    assert spec.layers[1].units == 0                    # a maxpool has no neurons
    assert spec.hardware.pe == [8, 4, 16, 2]            # one per layer with weights
    assert weighted_layers(spec) == [0, 2, 3, 4]
    # cifar10 is (3, 32, 32): 30x30 -> pooled 15x15 -> padded to 19, stride 2: 8x8 -> flat.
    assert SHAPES["cifar10"] == (3, 32, 32)
    assert layer_shapes(spec) == [(64, 30, 30), (64, 15, 15), (32, 8, 8), (512, 1, 1), (10, 1, 1)]


def test_conv_spec_defaults():
    spec = parse_spec("layers:\n  - {kind: conv, filters: 4}\n  - {kind: maxpool}\n  - {units: 10, act: none}\n")
    assert spec.layers[:2] == [LayerConfig(4, kind="conv", kernel=3, stride=1, padding="valid"),
                               LayerConfig(kind="maxpool", size=2)]
    assert layer_shapes(spec) == [(4, 6, 6), (4, 3, 3), (10, 1, 1)]   # digits: (1, 8, 8)


def test_conv_spec_round_trips():
    spec = parse_spec(CONV_NET, "cifar-conv.yaml")
    text = dump_spec(spec)
    assert parse_spec(text) == spec
    tree = yaml.safe_load(text)
    assert tree == spec.to_dict()
    assert tree["layers"] == [
        {"kind": "conv", "filters": 64, "kernel": 3, "stride": 1, "padding": "valid", "weights": "binary",
         "act": "sign", "act_bits": 1, "bn": True},
        {"kind": "maxpool", "size": 2, "pools": "sums"},
        {"kind": "conv", "filters": 32, "kernel": 5, "stride": 2, "padding": "same", "weights": "binary",
         "act": "quant", "act_bits": 2, "bn": False},
        {"units": 512, "weights": "binary", "act": "sign", "act_bits": 1, "bn": True},
        {"units": 10, "weights": "binary", "act": "none", "act_bits": 1, "bn": True},
    ]


def test_layer_to_dict_writes_the_keys_of_the_kind():
    assert list(layer_to_dict(LayerConfig(8))) == ["units", "weights", "act", "act_bits", "bn"]
    assert list(layer_to_dict(LayerConfig(8, kind="conv"))) == [
        "kind", "filters", "kernel", "stride", "padding", "weights", "act", "act_bits", "bn"]
    assert layer_to_dict(LayerConfig(kind="maxpool", size=4)) == {"kind": "maxpool", "size": 4,
                                                                  "pools": "sums"}
    assert layer_to_dict(LayerConfig(kind="maxpool", pools="activations"))["pools"] == "activations"


def test_conv_merge_keys_and_explicit_dense():
    spec = parse_spec(textwrap.dedent("""\
        layers:
          - &conv {kind: conv, filters: 16, padding: same, weights: ternary}
          - {<<: *conv, filters: 8}
          - {kind: dense, units: 10, act: none}
        """))
    assert [(l.kind, l.units, l.padding, l.weights) for l in spec.layers] == [
        ("conv", 16, "same", "ternary"), ("conv", 8, "same", "ternary"), ("dense", 10, "valid", "binary")]
    assert "kind" not in spec.to_dict()["layers"][2]     # a dense layer is written as before kinds
    assert parse_spec(dump_spec(spec)) == spec


def test_maxpool_after_relu_conv_and_data_dir():
    """Hidden activations are as for dense layers (relu allowed); cifar10 and svhn read files from dir."""
    spec = parse_spec(textwrap.dedent("""\
        data: {set: svhn, dir: /data/svhn}
        layers:
          - {kind: conv, filters: 8, kernel: 5, act: relu, weights: float}
          - {kind: maxpool, size: 4}
          - {units: 10, act: none}
        hardware: {pe: 2}
        """))
    assert spec.data == DataConfig("svhn", 8, "/data/svhn")
    assert layer_shapes(spec) == [(8, 28, 28), (8, 7, 7), (10, 1, 1)]


@pytest.mark.parametrize("layer, shape, out", [
    (LayerConfig(10), (3, 32, 32), (10, 1, 1)),
    (LayerConfig(6, kind="conv", kernel=3), (1, 8, 8), (6, 6, 6)),
    (LayerConfig(6, kind="conv", kernel=3, padding="same"), (1, 8, 8), (6, 8, 8)),
    (LayerConfig(6, kind="conv", kernel=5, stride=2, padding="same"), (3, 9, 9), (6, 5, 5)),
    (LayerConfig(6, kind="conv", kernel=3, stride=2), (3, 8, 8), (6, 3, 3)),
    (LayerConfig(6, kind="conv", kernel=8), (1, 8, 8), (6, 1, 1)),
    (LayerConfig(kind="maxpool", size=3), (4, 6, 6), (4, 2, 2)),
])
def test_layer_output_shape(layer, shape, out):
    assert layer_output_shape(layer, shape) == out


@pytest.mark.parametrize("layer, shape, match", [
    (LayerConfig(6, kind="conv", kernel=9), (1, 8, 8), "kernel 9 is larger than the 8x8 input"),
    (LayerConfig(6, kind="conv", kernel=4, padding="same"), (1, 8, 8), "expected an odd kernel"),
    (LayerConfig(kind="maxpool", size=2), (4, 5, 5), "size 2 does not divide the 5x5 input"),
    (LayerConfig(kind="pool"), (4, 5, 5), "layer kind must be one of dense, conv, maxpool"),
])
def test_layer_output_shape_misfits(layer, shape, match):
    with pytest.raises(ValueError, match=match):
        layer_output_shape(layer, shape)


@st.composite
def conv_layers(draw, shape: tuple[int, int, int]) -> list[LayerConfig]:
    """Conv and maxpool layers that fit an image of ``shape`` (a maxpool only after a conv)."""
    layers: list[LayerConfig] = []
    for _ in range(draw(st.integers(0, 3))):
        _, h, w = shape
        pools = [d for d in range(2, min(h, w) + 1) if h % d == 0 and w % d == 0]
        if layers and layers[-1].kind == "conv" and pools and draw(st.booleans()):
            layer = LayerConfig(kind="maxpool", size=draw(st.sampled_from(pools)))
        else:
            padding = draw(st.sampled_from(["valid", "same"]))
            kernels = [k for k in range(1, 8) if (k % 2 if padding == "same" else k <= min(h, w))]
            act = draw(st.sampled_from(["sign", "quant", "relu"]))
            layer = LayerConfig(draw(st.integers(1, 64)), draw(st.sampled_from(["float", "binary", "ternary"])),
                                act, draw(st.integers(2, 8)) if act == "quant" else 1, draw(st.booleans()),
                                kind="conv", kernel=draw(st.sampled_from(kernels)),
                                stride=draw(st.integers(1, 3)), padding=padding)
        layers.append(layer)
        shape = layer_output_shape(layer, shape)
    return layers


@st.composite
def specs(draw) -> NetworkSpec:
    """Random valid specs (for the dump/parse round trip)."""
    data_set = draw(st.sampled_from(["digits", "fashion-mnist", "mnist", "cifar10", "svhn"]))
    hidden = draw(st.lists(st.tuples(st.integers(1, 300), st.sampled_from(["sign", "quant", "relu"]),
                                     st.integers(2, 8), st.sampled_from(["float", "binary", "ternary"]),
                                     st.booleans()), max_size=3))
    layers = draw(conv_layers(SHAPES[data_set]))
    layers += [LayerConfig(u, w, a, b if a == "quant" else 1, bn) for u, a, b, w, bn in hidden]
    layers.append(LayerConfig(10, draw(st.sampled_from(["float", "binary", "ternary"])), "none", 1,
                              draw(st.booleans())))
    pos = st.floats(1e-9, 10.0, allow_nan=False, allow_infinity=False)
    lr = draw(pos)
    opt = OptimizerConfig(draw(st.sampled_from(["sgd", "adam", "adamax_shift"])), lr,
                          draw(st.floats(1e-9, lr)), draw(st.integers(1, 1000)))
    train = TrainConfig(draw(st.integers(1, 500)), draw(st.integers(0, 2**32 - 1)),
                        draw(st.sampled_from(["deterministic", "stochastic"])), draw(st.booleans()),
                        draw(st.sampled_from(["squared_hinge", "cross_entropy"])), opt,
                        draw(st.floats(1e-6, 1.0)), draw(pos))
    pe_kind = draw(st.sampled_from(["auto", "int", "list"]))
    if pe_kind == "auto":
        hw = HardwareConfig("auto", draw(st.none() | st.integers(1, 10**6)), draw(st.sampled_from(
            ["none", "icebreaker", "ulx3s", "arty"])))
    else:
        per_layer = [draw(st.sampled_from([d for d in range(1, l.units + 1) if l.units % d == 0]))
                     for l in layers if l.kind != "maxpool"]
        hw = HardwareConfig(per_layer if pe_kind == "list" else 1, None, "none")
    data = DataConfig(data_set, draw(st.integers(1, 8)),
                      draw(st.none() | st.text(min_size=1)) if data_set != "digits" else None)
    name = draw(st.text(min_size=1))
    return NetworkSpec(name, data, layers, train, hw)


@settings(max_examples=150, deadline=None, database=None)
@given(specs())
def test_dump_parse_round_trip(spec):
    assert parse_spec(dump_spec(spec)) == spec


@pytest.mark.parametrize("name", ["\x85", "a\u2028b", "r\u00e9seau"])
def test_dump_keeps_unusual_characters(name):
    spec = parse_spec("name: x\n" + GOOD_LAYERS)
    spec = dataclasses.replace(spec, name=name)
    assert parse_spec(dump_spec(spec)).name == name


def test_schema_matches_dataclasses():
    """Each schema mapping has exactly the keys of the dataclass it builds."""
    pairs = [(SPEC_SCHEMA, NetworkSpec), (SPEC_SCHEMA.fields["data"].type, DataConfig),
             (SPEC_SCHEMA.fields["train"].type, TrainConfig),
             (SPEC_SCHEMA.fields["train"].type.fields["optimizer"].type, OptimizerConfig),
             (SPEC_SCHEMA.fields["hardware"].type, HardwareConfig)]
    for sch, cls in pairs:
        assert list(sch.fields) == [f.name for f in dataclasses.fields(cls)], cls


def test_layer_schema_covers_layer_config():
    """Every LayerConfig field is a key of some layer kind (a conv's units are its filters)."""
    assert SPEC_SCHEMA.fields["layers"].type.item is LAYER_SCHEMA
    assert list(LAYER_SCHEMA.variants) == ["dense", "conv", "maxpool"]
    keys = set()
    for variant in LAYER_SCHEMA.variants.values():
        assert next(iter(variant.fields)) == "kind"
        keys |= {"units" if k == "filters" else k for k in variant.fields}
    assert keys == {f.name for f in dataclasses.fields(LayerConfig)}
    dense = LAYER_SCHEMA.variants["dense"].fields
    assert list(dense) == ["kind", "units", "weights", "act", "act_bits", "bn"]


# --------------------------------------------------------------------------- bad specs

GOOD_LAYERS = "layers:\n  - {units: 256}\n  - {units: 10, act: none}\n"

BAD = [
    pytest.param("layers:\n  - {units: 256\n",
                 [(3, 1, "", "YAML syntax error: expected ',' or '}', but got '<stream end>'")],
                 id="yaml-syntax"),
    pytest.param("layers:\n  - units: 10\n   act: none\n",
                 [(3, 4, "", "YAML syntax error: expected <block end>")], id="yaml-indent"),
    pytest.param("layers:\n  - {unit: 10, act: none}\n",
                 [(2, 6, "layers[0].unit", "unknown key, did you mean 'units'?")], id="unknown-key"),
    pytest.param(GOOD_LAYERS + "trian: {epochs: 3}\n",
                 [(4, 1, "trian", "unknown key, did you mean 'train'?")], id="unknown-top-key"),
    pytest.param(GOOD_LAYERS + "train: {foo: 3}\n",
                 [(4, 9, "train.foo", "unknown key; valid keys are 'epochs', 'seed'")], id="unknown-no-match"),
    pytest.param("layers:\n  - {units: 256}\n  - {units: \"abc\"}\n  - {units: 10, act: none}\n",
                 [(3, 13, "layers[1].units", 'expected a positive integer, got "abc"')], id="wrong-type"),
    pytest.param("layers:\n  - {act: sign}\n  - {units: 10, act: none}\n",
                 [(2, 5, "layers[0]", "missing required key 'units' (a positive integer)")],
                 id="missing-field"),
    pytest.param("layers:\n  - act: sign\n    bn: false\n  - {units: 10, act: none}\n",
                 [(2, 5, "layers[0]", "missing required key 'units'")], id="missing-field-block"),
    pytest.param("data: {set: digits}\n",
                 [(1, 1, "", "missing required key 'layers' (a non-empty list of layers)")],
                 id="missing-layers"),
    pytest.param("layers:\n  - {units: 16, act: tanh}\n  - {units: 10, act: none}\n",
                 [(2, 22, "layers[0].act", 'expected one of "sign", "quant", "relu", "none", got "tanh"')],
                 id="bad-enum"),
    pytest.param("layers:\n  - {units: 16, weights: binray}\n  - {units: 10, act: none}\n",
                 [(2, 26, "layers[0].weights",
                   'expected one of "float", "binary", "ternary", got "binray" (did you mean "binary"?)')],
                 id="bad-enum-suggest"),
    pytest.param(GOOD_LAYERS + "hardware: {board: de10}\n",
                 [(4, 19, "hardware.board", 'expected one of "none", "icebreaker", "ulx3s", "arty", got "de10"')],
                 id="bad-board"),
    pytest.param("layers:\n  - {units: 16}\n  - {units: 7, act: none}\n",
                 [(3, 13, "layers[1].units", "inconsistent sizes: the output layer must have 10 units "
                   '(one per class of data set "digits"), got 7')], id="inconsistent-sizes"),
    pytest.param("layers:\n  - {units: -3}\n  - {units: 10, act: none}\n",
                 [(2, 13, "layers[0].units", "expected a positive integer, got -3")], id="negative-width"),
    pytest.param("layers:\n  - {units: 0}\n  - {units: 10, act: none}\n",
                 [(2, 13, "layers[0].units", "expected a positive integer, got 0")], id="zero-width"),
    pytest.param("layers: []\n",
                 [(1, 9, "layers", "expected a non-empty list of layers, got an empty list")], id="empty-layers"),
    pytest.param("layers: {units: 10}\n",
                 [(1, 9, "layers", "expected a non-empty list of layers, got a mapping")], id="layers-not-list"),
    pytest.param("layers:\n  - {units: [1, 2]}\n  - {units: 10, act: none}\n",
                 [(2, 13, "layers[0].units", "expected a positive integer, got a list")], id="list-as-int"),
    pytest.param("layers:\n  - 5\n  - {units: 10, act: none}\n",
                 [(2, 5, "layers[0]", "expected a mapping describing a layer, got 5")], id="layer-not-mapping"),
    pytest.param(GOOD_LAYERS + "train:\n  epochs: true\n",
                 [(5, 11, "train.epochs", "expected a positive integer, got true")], id="bool-as-int"),
    pytest.param("layers:\n  - {units: 10.0, act: none}\n",
                 [(2, 13, "layers[0].units", "expected a positive integer, got 10.0")], id="float-as-int"),
    pytest.param("layers:\n  - {units: 10, act: none, bn: 1}\n",
                 [(2, 32, "layers[0].bn", "expected true or false, got 1")], id="int-as-bool"),
    pytest.param(GOOD_LAYERS + "train: {optimizer: {lr: yes}}\n",
                 [(4, 25, "train.optimizer.lr", "expected a positive number, got true")], id="bool-as-float"),
    pytest.param("data: {input_bits: 9}\n" + GOOD_LAYERS,
                 [(1, 20, "data.input_bits", "expected an integer in 1..8, got 9")], id="input-bits-range"),
    pytest.param("data: {set: digits, dir: /tmp/mnist}\n" + GOOD_LAYERS,
                 [(1, 26, "data.dir", 'only allowed with set "mnist"')], id="dir-not-mnist"),
    pytest.param(GOOD_LAYERS + "hardware:\n  pe: [256, 3]\n",
                 [(5, 13, "hardware.pe[1]", "expected a divisor of layers[1].units = 10 (1, 2, 5, 10), got 3")],
                 id="pe-not-dividing"),
    pytest.param(GOOD_LAYERS + "hardware:\n  pe: [2]\n",
                 [(5, 7, "hardware.pe", "expected a list with one entry per layer (2 entries), got 1 entry")],
                 id="pe-list-length"),
    pytest.param(GOOD_LAYERS + "hardware:\n  pe: 4\n",
                 [(5, 7, "hardware.pe", "expected a divisor of every layer's units (1, 2; "
                   "or a list with one value per layer), got 4")], id="pe-scalar-not-dividing"),
    pytest.param(GOOD_LAYERS + "hardware:\n  pe: fast\n",
                 [(5, 7, "hardware.pe", 'expected "auto", a positive integer, or a list of positive integers '
                   '(one per layer with weights), got "fast"')], id="pe-bad-type"),
    pytest.param(GOOD_LAYERS + "hardware: {pe: [2, 2], target_cycles: 100}\n",
                 [(4, 39, "hardware.target_cycles", 'only used with pe "auto"')], id="target-cycles-explicit-pe"),
    pytest.param(GOOD_LAYERS + "train:\n  optimizer: {lr: 0.01, lr_final: 0.1}\n",
                 [(5, 35, "train.optimizer.lr_final", "expected a number <= lr (0.01), got 0.1")],
                 id="lr-final-above-lr"),
    pytest.param("layers:\n  - {units: 256, act: none}\n  - {units: 10, act: none}\n",
                 [(2, 23, "layers[0].act", 'expected one of "sign", "quant", "relu" '
                   '(a hidden layer needs an activation), got "none"')], id="hidden-act-none"),
    pytest.param("layers:\n  - {units: 256}\n  - {units: 10}\n",
                 [(3, 5, "layers[1].act", 'expected "none" (the output layer gives linear class scores), '
                   'got "sign" (the default)')], id="output-act-default"),
    pytest.param("layers:\n  - {units: 256, act: quant}\n  - {units: 10, act: none}\n",
                 [(2, 5, "layers[0]", "missing required key 'act_bits' (act \"quant\" needs an integer in 2..8)")],
                 id="quant-needs-bits"),
    pytest.param("layers:\n  - {units: 256, act: sign, act_bits: 4}\n  - {units: 10, act: none}\n",
                 [(2, 39, "layers[0].act_bits", 'expected 1 (act_bits only applies to act "quant"')],
                 id="sign-with-bits"),
    pytest.param("- {units: 10}\n",
                 [(1, 1, "", "expected a mapping (the network spec), got a list")], id="top-not-mapping"),
    pytest.param("# nothing here\n",
                 [(1, 1, "", "expected a mapping (the network spec), got an empty document")], id="empty-document"),
    pytest.param(GOOD_LAYERS + "layers: []\n",
                 [(4, 1, "layers", "duplicate key (first given at line 1)")], id="duplicate-key"),
    pytest.param("layers:\n  - {units: !!python/int 3, act: none}\n",
                 [(2, 13, "layers[0].units", "unsupported YAML tag !!python/int")], id="unsafe-tag"),
    pytest.param(textwrap.dedent("""\
        name: ""
        data: {set: cifar, input_bits: 0}
        layers:
          - {units: 0, weights: bin}
          - {units: abc, act: none, bx: true}
        train: {epochs: -1, qbp: maybe, optimizer: {batch: 0}}
        hardware: {pe: [0]}
        """),
                 [(1, 7, "name", 'expected a non-empty string, got ""'),
                  (2, 13, "data.set", 'got "cifar"'),
                  (2, 32, "data.input_bits", "got 0"),
                  (4, 13, "layers[0].units", "got 0"),
                  (4, 25, "layers[0].weights", 'got "bin"'),
                  (5, 13, "layers[1].units", 'got "abc"'),
                  (5, 29, "layers[1].bx", "unknown key"),
                  (6, 17, "train.epochs", "got -1"),
                  (6, 26, "train.qbp", 'expected true or false, got "maybe"'),
                  (6, 52, "train.optimizer.batch", "got 0"),
                  (7, 16, "hardware.pe", "expected a list with one entry per layer (2 entries), got 1 entry"),
                  (7, 17, "hardware.pe[0]", "expected a positive integer, got 0")],
                 id="several-errors"),
]


L = "layers:\n"
CONV = "  - {kind: conv, filters: 8}\n"
POOL = "  - {kind: maxpool}\n"
OUT = "  - {units: 10, act: none}\n"

#: Conv and maxpool layers: keys of each kind, then shapes walked from the data set's (digits: 1x8x8).
BAD_CONV = [
    pytest.param(L + "  - {kind: conv, units: 8}\n" + OUT,
                 [(2, 18, "layers[0].units", "unknown key, did you mean 'filters'? (a conv layer has filters")],
                 id="conv-units"),
    pytest.param(L + "  - {filters: 8}\n" + OUT,
                 [(2, 6, "layers[0].filters",
                   "unknown key, did you mean 'units'? (a dense layer has units; filters are for kind: conv)")],
                 id="dense-filters"),
    pytest.param(L + "  - {kind: conv, kernel: 3}\n" + OUT,
                 [(2, 5, "layers[0]", "missing required key 'filters' (a positive integer)")],
                 id="conv-missing-filters"),
    pytest.param(L + "  - {units: 8, kernel: 3}\n" + OUT,
                 [(2, 16, "layers[0].kernel",
                   "only for a conv layer, and this layer is dense (kind defaults to dense; give kind: conv)")],
                 id="dense-kernel"),
    pytest.param(L + "  - {units: 8, size: 2}\n" + OUT,
                 [(2, 16, "layers[0].size", "only for a maxpool layer, and this layer is dense")],
                 id="dense-size"),
    pytest.param(L + "  - {kind: conv, filters: 8, size: 2}\n" + OUT,
                 [(2, 30, "layers[0].size", "only for a maxpool layer, and this layer is a conv")],
                 id="conv-size"),
    pytest.param(L + CONV + "  - {kind: maxpool, weights: binary, act: sign, act_bits: 1, bn: true}\n" + OUT,
                 [(3, 21, "layers[1].weights", "a maxpool layer has no weights (its only keys are size and pools)"),
                  (3, 38, "layers[1].act", "a maxpool layer has no activation"),
                  (3, 49, "layers[1].act_bits", "a maxpool layer has no activation"),
                  (3, 62, "layers[1].bn", "a maxpool layer has no batch norm")],
                 id="maxpool-no-weights-act-bn"),
    pytest.param(L + CONV + "  - {kind: maxpool, units: 8, filters: 8, stride: 2, padding: valid}\n" + OUT,
                 [(3, 21, "layers[1].units", "a maxpool layer has no units"),
                  (3, 31, "layers[1].filters", "a maxpool layer has no filters"),
                  (3, 43, "layers[1].stride", "a maxpool layer's stride is its size"),
                  (3, 54, "layers[1].padding", "a maxpool layer has no padding")],
                 id="maxpool-no-units"),
    pytest.param(L + CONV + "  - {kind: maxpool, pools: bits}\n" + OUT,
                 [(3, 28, "layers[1].pools", 'one of "sums", "activations"')],
                 id="maxpool-pools"),
    pytest.param(L + CONV + "  - {kind: maxpool, kernel: 2}\n" + OUT,
                 [(3, 21, "layers[1].kernel", "unknown key, did you mean 'size'?")], id="maxpool-kernel"),
    pytest.param(L + "  - {kind: pool, size: 2}\n" + OUT,
                 [(2, 12, "layers[0].kind",
                   'expected one of "dense", "conv", "maxpool", got "pool" (did you mean "maxpool"?)')],
                 id="bad-kind"),
    pytest.param(L + "  - {kind: 3, units: 8}\n" + OUT,
                 [(2, 12, "layers[0].kind", 'expected one of "dense", "conv", "maxpool", got 3')],
                 id="kind-not-string"),
    pytest.param(L + "  - {kind: conv, filters: 8, padding: full}\n" + OUT,
                 [(2, 39, "layers[0].padding", 'expected one of "valid", "same", got "full"')], id="bad-padding"),
    pytest.param(L + "  - {kind: conv, filters: 0}\n" + OUT,
                 [(2, 27, "layers[0].filters", "expected a positive integer, got 0")], id="zero-filters"),
    pytest.param(L + "  - {kind: conv, filters: 8, kernel: 0}\n" + OUT,
                 [(2, 38, "layers[0].kernel", "expected a positive integer, got 0")], id="zero-kernel"),
    pytest.param(L + "  - {kind: conv, filters: 8, stride: 0}\n" + OUT,
                 [(2, 38, "layers[0].stride", "expected a positive integer, got 0")], id="zero-stride"),
    pytest.param(L + CONV + "  - {kind: maxpool, size: 1}\n" + OUT,
                 [(3, 27, "layers[1].size", "expected an integer >= 2, got 1")], id="pool-size-1"),
    pytest.param(L + "  - {kind: conv, filters: 8, kernel: 9}\n" + OUT,
                 [(2, 38, "layers[0].kernel", 'conv kernel 9 is larger than the 8x8 input (padding "valid"); '
                   'expected a kernel of at most 8, or padding "same"')], id="kernel-too-large"),
    pytest.param(L + CONV + POOL + "  - {kind: conv, filters: 8, kernel: 5}\n" + OUT,
                 [(4, 38, "layers[2].kernel", "conv kernel 5 is larger than the 3x3 input")],
                 id="kernel-too-large-after-pool"),
    pytest.param(L + "  - {kind: conv, filters: 8, kernel: 4, padding: same}\n" + OUT,
                 [(2, 38, "layers[0].kernel", 'expected an odd kernel with padding "same" '
                   "(it pads (kernel - 1) / 2 on each side), got 4")], id="same-even-kernel"),
    pytest.param(L + "  - {kind: conv, filters: 8, kernel: 4}\n  - {kind: maxpool, size: 2}\n" + OUT,
                 [(3, 27, "layers[1].size", "maxpool size 2 does not divide the 5x5 input; sizes that divide it: 5")],
                 id="pool-not-dividing"),
    pytest.param(L + "  - {kind: conv, filters: 8, kernel: 4}\n" + POOL + OUT,
                 [(3, 5, "layers[1].size", "maxpool size 2 does not divide the 5x5 input; sizes that divide it: 5")],
                 id="pool-default-not-dividing"),
    pytest.param(L + "  - {kind: conv, filters: 8, kernel: 8}\n" + POOL + OUT,
                 [(3, 5, "layers[1].size", "maxpool size 2 does not divide the 1x1 input; no size >= 2 divides it")],
                 id="pool-no-size-fits"),
    pytest.param("data: {set: mnist}\n" + L + "  - {kind: conv, filters: 8, kernel: 1}\n"
                 "  - {kind: maxpool, size: 3}\n" + OUT,
                 [(4, 27, "layers[1].size",
                   "maxpool size 3 does not divide the 28x28 input; sizes that divide it: 2, 4, 7, 14, 28")],
                 id="pool-sizes-listed"),
    pytest.param(L + "  - {units: 64}\n" + CONV + OUT,
                 [(3, 12, "layers[1].kind", "a conv layer after a dense layer (layers[0]); expected every conv "
                   "and maxpool layer before the first dense layer")], id="conv-after-dense"),
    pytest.param(L + CONV + "  - {units: 64}\n" + POOL + OUT,
                 [(4, 12, "layers[2].kind", "a maxpool layer after a dense layer (layers[1])")],
                 id="pool-after-dense"),
    pytest.param(L + POOL + CONV + OUT,
                 [(2, 12, "layers[0].kind", "a maxpool as the first layer; expected a conv layer before it")],
                 id="pool-first"),
    pytest.param(L + CONV + POOL + POOL + OUT,
                 [(4, 12, "layers[2].kind", "a maxpool right after another (layers[1]); expected a conv layer "
                   "before it")], id="pool-after-pool"),
    pytest.param(L + "  - {kind: conv, filters: 10, act: none}\n",
                 [(2, 12, "layers[0].kind", 'expected "dense" for the last layer (the output layer gives one '
                   'linear score per class), got "conv"')], id="last-conv"),
    pytest.param(L + CONV + POOL,
                 [(3, 12, "layers[1].kind", 'expected "dense" for the last layer'), ], id="last-maxpool"),
    pytest.param(L + "  - {kind: conv, filters: 8, act: none}\n" + POOL + OUT,
                 [(2, 35, "layers[0].act", 'expected one of "sign", "quant", "relu" '
                   '(a hidden layer needs an activation), got "none"')], id="pool-after-linear-conv"),
    pytest.param(L + "  - {kind: conv, filters: 8, act: quant}\n" + OUT,
                 [(2, 5, "layers[0]", "missing required key 'act_bits' (act \"quant\" needs an integer in 2..8)")],
                 id="conv-quant-needs-bits"),
    pytest.param(L + CONV + POOL + OUT + "hardware: {pe: [2, 2, 2]}\n",
                 [(5, 16, "hardware.pe", "expected a list with one entry per layer with weights (2 entries: conv "
                   "and dense layers; a maxpool runs inside the layer before it), got 3 entries")],
                 id="pe-list-skips-maxpool"),
    pytest.param(L + "  - {kind: conv, filters: 6}\n" + POOL + OUT + "hardware: {pe: [4, 3]}\n",
                 [(5, 17, "hardware.pe[0]", "expected a divisor of layers[0].filters = 6 (1, 2, 3, 6), got 4"),
                  (5, 20, "hardware.pe[1]", "expected a divisor of layers[2].units = 10 (1, 2, 5, 10), got 3")],
                 id="pe-list-conv-divisors"),
    pytest.param(L + "  - {kind: conv, filters: 6}\n" + POOL + OUT + "hardware: {pe: 4}\n",
                 [(5, 16, "hardware.pe", "expected a divisor of the units (filters of a conv) of every layer with "
                   "weights (1, 2; or a list with one value per layer with weights), got 4")],
                 id="pe-scalar-conv"),
    pytest.param("data: {set: cifar10}\n" + L + "  - {kind: conv, filters: 8, kernel: 2, stride: 3}\n"
                 "  - {kind: maxpool, size: 2, act: sign}\n  - {units: 64}\n  - {kind: conv, filters: 4}\n" + OUT,
                 [(4, 27, "layers[1].size", "maxpool size 2 does not divide the 11x11 input; sizes that divide it: 11"),
                  (4, 30, "layers[1].act", "a maxpool layer has no activation"),
                  (6, 12, "layers[3].kind", "a conv layer after a dense layer (layers[2])")],
                 id="several-conv-errors"),
]


@pytest.mark.parametrize("text, expected", BAD + BAD_CONV)
def test_bad_spec(text, expected):
    errors = errors_of(text)
    got = [(e.line, e.col, e.path) for e in errors]
    assert got == [(line, col, path) for line, col, path, _ in expected], [str(e) for e in errors]
    for err, (_, _, _, msg) in zip(errors, expected):
        assert err.file == "x.yaml"
        assert msg in err.message, str(err)


def test_exact_wording():
    text = "layers:\n  - {units: 256}\n  - {units: \"abc\"}\n  - {units: 10, act: none}\n"
    with pytest.raises(SpecError) as info:
        parse_spec(text, "x.yaml")
    assert str(info.value) == 'x.yaml:3:13: layers[1].units: expected a positive integer, got "abc"'
    assert info.value.errors == [SpecIssue("x.yaml", 3, 13, "layers[1].units",
                                           'expected a positive integer, got "abc"')]


def test_block_style_positions():
    text = textwrap.dedent("""\
        layers:
          - units: 256
            act: sign
          - units: -3
          - units: 10
            act: none
        """)
    [err] = errors_of(text)
    assert str(err) == "x.yaml:4:12: layers[1].units: expected a positive integer, got -3"


def test_missing_file(tmp_path):
    path = tmp_path / "nope.yaml"
    with pytest.raises(SpecError) as info:
        load_spec(path)
    [err] = info.value.errors
    assert err.file == str(path) and err.line is None
    assert str(err) == f"{path}: spec file not found"


def test_load_spec_error_names_file(tmp_path):
    path = tmp_path / "net.yaml"
    path.write_text("layers:\n  - {units: 7, act: none}\n")
    with pytest.raises(SpecError, match=r"net\.yaml:2:13: layers\[0\]\.units: inconsistent sizes"):
        load_spec(path)


def test_format_path_and_values():
    assert schema.format_path(("layers", 1, "units")) == "layers[1].units"
    assert schema.format_path(()) == ""
    assert schema.format_value("a") == '"a"'
    assert schema.format_value(None) == "null"
    assert schema.format_value(False) == "false"
    assert schema.format_value([1]) == "a list"


def test_tagged_mapping():
    kind = schema.Field(schema.Enum(["a", "b"]), "a")
    tagged = schema.Tagged("kind", {"a": schema.Map({"kind": kind, "x": schema.Field(schema.Int())}),
                                    "b": schema.Map({"kind": kind, "y": schema.Field(schema.Int(), 0)},
                                                    instead={"x": "y"}, hints={"x": "b has y"})},
                           default="a", expected="a thing")
    compose = lambda text: yaml.compose(text, Loader=yaml.SafeLoader)  # noqa: E731
    chk = schema.Checker("t.yaml")
    assert tagged.check(compose("{x: 1}"), (), chk) == {"kind": "a", "x": 1}
    assert tagged.check(compose("{kind: b}"), (), chk) == {"kind": "b", "y": 0}
    assert tagged.check(compose("[1]"), (), chk) is schema.INVALID
    assert tagged.check(compose("{kind: b, x: 1}"), (), chk) == {"kind": "b", "y": 0}
    assert [str(e) for e in chk.errors] == [
        "t.yaml:1:1: expected a thing, got a list",
        "t.yaml:1:11: x: unknown key, did you mean 'y'? (b has y)"]
    with pytest.raises(ValueError, match="default 'c'"):
        schema.Tagged("kind", {"a": schema.Map({"kind": kind})}, default="c")
    with pytest.raises(ValueError, match="does not declare the tag key"):
        schema.Tagged("kind", {"a": schema.Map({"x": kind})}, default="a")


def test_layer_kind_from_merge_key():
    spec = parse_spec(textwrap.dedent("""\
        layers:
          - &c {kind: conv, filters: 4, kernel: 1}
          - &p {kind: maxpool}
          - {<<: *c, filters: 6}
          - {<<: *p}
          - {units: 10, act: none}
        """))
    assert [l.kind for l in spec.layers] == ["conv", "maxpool", "conv", "maxpool", "dense"]
    assert layer_shapes(spec)[3] == (6, 2, 2)
    # A merged kind is reported where it is written.
    errors = errors_of("layers:\n  - &c {kind: conv, filters: 4}\n  - {<<: *c}\n")
    assert [(e.line, e.col, e.path) for e in errors] == [(2, 15, "layers[1].kind")]
    assert 'expected "dense" for the last layer' in errors[0].message
