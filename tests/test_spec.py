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
    SPEC_SCHEMA, HardwareConfig, NetworkSpec, SpecError, SpecIssue, dump_spec, load_spec, parse_spec,
)
from fewmul.nn.config import DataConfig, LayerConfig, OptimizerConfig, TrainConfig

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "digits-bnn.yaml"


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
    # The example writes out every key but act_bits (1 for sign/none by default).
    written = yaml.safe_load(EXAMPLE.read_text())
    full = spec.to_dict()
    for layer in full["layers"]:
        assert layer.pop("act_bits") == 1
    assert written == full


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
                  "bn_momentum": 0.1, "bn_eps": 0.0001, "qbp_exp_min": -4, "qbp_exp_max": 3,
                  "bn_kind": "standard"},
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


@st.composite
def specs(draw) -> NetworkSpec:
    """Random valid specs (for the dump/parse round trip)."""
    data_set = draw(st.sampled_from(["digits", "fashion-mnist", "mnist"]))
    hidden = draw(st.lists(st.tuples(st.integers(1, 300), st.sampled_from(["sign", "quant", "relu"]),
                                     st.integers(2, 8), st.sampled_from(["float", "binary", "ternary"]),
                                     st.booleans()), max_size=3))
    layers = [LayerConfig(u, w, a, b if a == "quant" else 1, bn) for u, a, b, w, bn in hidden]
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
                     for l in layers]
        hw = HardwareConfig(per_layer if pe_kind == "list" else 1, None, "none")
    data = DataConfig(data_set, draw(st.integers(1, 8)),
                      draw(st.none() | st.text(min_size=1)) if data_set == "mnist" else None)
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
             (SPEC_SCHEMA.fields["layers"].type.item, LayerConfig),
             (SPEC_SCHEMA.fields["train"].type, TrainConfig),
             (SPEC_SCHEMA.fields["train"].type.fields["optimizer"].type, OptimizerConfig),
             (SPEC_SCHEMA.fields["hardware"].type, HardwareConfig)]
    for sch, cls in pairs:
        assert list(sch.fields) == [f.name for f in dataclasses.fields(cls)], cls


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
                   '(one per layer), got "fast"')], id="pe-bad-type"),
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


@pytest.mark.parametrize("text, expected", BAD)
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
