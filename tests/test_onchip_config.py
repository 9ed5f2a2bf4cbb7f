"""The spec's train.onchip keys and the on-chip trainer's configuration from a spec."""

import dataclasses
import textwrap

import pytest

from fewmul.arith.onchip import OnChipConfig
from fewmul.cli import main
from fewmul.compiler.onchip_config import default_scales, onchip_config, onchip_problems
from fewmul.compiler.spec import ONCHIP_SCHEMA, SpecError, load_spec, parse_spec
from fewmul.nn.config import OnChipTrainConfig

LAYERS = """\
layers:
  - {units: 32, weights: WEIGHTS, act: sign, bn: false}
  - {units: 16, weights: WEIGHTS, act: sign, bn: false}
  - {units: 10, weights: WEIGHTS, act: none, bn: false}
"""


def spec_of(onchip: str = "", weights: str = "binary", data: str = "{set: digits}",
            layers: str = LAYERS):
    text = f"data: {data}\n" + layers.replace("WEIGHTS", weights)
    if onchip:
        text += "train:\n  onchip:\n" + textwrap.indent(textwrap.dedent(onchip), "    ")
    return parse_spec(text, "net.yaml")


def errors_of(onchip: str, **kwargs) -> list[str]:
    with pytest.raises(SpecError) as info:
        spec_of(onchip, **kwargs)
    return [str(e) for e in info.value.errors]


def test_schema_matches_the_dataclass():
    assert list(ONCHIP_SCHEMA.fields) == [f.name for f in dataclasses.fields(OnChipTrainConfig)]


def test_the_one_hidden_layer_example_keeps_todays_scales():
    cfg = onchip_config(load_spec("examples/digits-onchip.yaml"), "examples/digits-onchip.yaml")
    assert cfg == OnChipConfig()        # the trainer's defaults before they were spec keys
    assert default_scales((64, 64, 10), 4) == {"gate_shifts": (6,), "backprop_shifts": (0,),
                                               "lr_shifts": (6, 2)}


def test_keys_reach_the_config():
    spec = spec_of("""\
        lr_shift: [5, 3, 1]
        lr_decay_steps: 0
        lr_decay_max: 1
        margin_shift: 3
        gate_shift: 4
        backprop_shift: [2, 1]
        clip_bits: 5
        batch: 4
        """, weights="ternary", data="{set: digits, input_bits: 3}")
    cfg = onchip_config(spec, "net.yaml")
    assert cfg == OnChipConfig(sizes=(64, 32, 16, 10), input_bits=3, weights="ternary",
                               weight_bits=5, score_shift=3, gate_shifts=(4, 4),
                               backprop_shifts=(2, 1), lr_shifts=(5, 3, 1), lr_decay_steps=0,
                               lr_decay_max=1, batch_shift=2, seed=0)
    assert onchip_config(spec, "net.yaml", seed=7, lfsr_seed=3).seed == 7   # overrides win


def test_left_out_scales_follow_the_sizes():
    cfg = onchip_config(spec_of(), "net.yaml")
    scales = default_scales((64, 32, 16, 10), 4)
    assert (cfg.gate_shifts, cfg.backprop_shifts, cfg.lr_shifts) == (
        scales["gate_shifts"], scales["backprop_shifts"], scales["lr_shifts"])
    assert len(cfg.gate_shifts) == 2 and len(cfg.lr_shifts) == 3
    wide = default_scales((784, 256, 256, 10), 8)
    assert wide["gate_shifts"][0] > scales["gate_shifts"][0]      # more and wider pixels
    assert wide["lr_shifts"][0] == 8 + 2


def test_bad_keys_are_reported_with_their_position():
    errors = errors_of("""\
        lr_shift: [3, 2]
        gate_shift: -1
        batch: 6
        margn_shift: 3
        backprop_shift: [1, x, 2]
        """)
    assert errors == [
        "net.yaml:8:15: train.onchip.lr_shift: expected a list with one entry per layer with "
        "weights (3 entries), got 2 entries",
        "net.yaml:8:16: train.onchip.lr_shift[0]: expected an integer >= data.input_bits (4) for "
        "the first layer (a pixel's QBP exponent, up to input_bits, is subtracted from it), got 3",
        "net.yaml:9:17: train.onchip.gate_shift: expected an integer in 0..31 or a list of them "
        "(one per hidden layer), got -1",
        "net.yaml:10:12: train.onchip.batch: expected a power of two (the average is a shift; 4 "
        "or 8), got 6",
        "net.yaml:11:5: train.onchip.margn_shift: unknown key, did you mean 'margin_shift'?",
        "net.yaml:12:21: train.onchip.backprop_shift: expected a list with one entry per hidden "
        "layer (2 entries), got 3 entries",
        "net.yaml:12:25: train.onchip.backprop_shift[1]: expected an integer in 0..31, got \"x\"",
    ]


@pytest.mark.parametrize("onchip, message", [
    ("lr: 4\n", "train.onchip.lr: unknown key, did you mean 'lr_shift'?"),
    ("clip_bits: 0\n", "train.onchip.clip_bits: expected an integer in 1..15, got 0"),
    ("lr_shift: 2\n", "train.onchip.lr_shift: expected an integer >= data.input_bits (4)"),
    ("batch: 0\n", "train.onchip.batch: expected an integer in 1..65536, got 0"),
    ("lr_decay_steps: -3\n", "train.onchip.lr_decay_steps: expected a non-negative integer"),
])
def test_one_bad_key(onchip, message):
    errors = errors_of(onchip)
    assert len(errors) == 1 and message in errors[0], errors


def test_what_the_trainer_cannot_do_is_listed():
    layers = """\
layers:
  - {units: 32, weights: ternary, act: relu, bn: true}
  - {kind: conv, filters: 4, weights: float}
  - {units: 10, weights: binary, act: none, bn: false}
"""
    spec = parse_spec("data: {set: digits}\nlayers: [{units: 10, act: none, bn: false}]\n")
    assert onchip_problems(spec) == ["layers: on-chip training needs at least one hidden layer "
                                     "and an output layer, got 1 layer"]
    problems = onchip_problems(parse_spec("data: {set: digits}\n" + layers.replace(
        "{kind: conv, filters: 4, weights: float}", "{units: 8, weights: float, bn: false}")
        + "train: {loss: cross_entropy}\n"))
    assert problems == [
        "layers[0].act: expected sign (hidden layers are sign units), got 'relu'",
        "layers[0].bn: on-chip training runs without batch norm; expected false, got true",
        "layers[1].weights: expected binary or ternary, got 'float'",
        "layers[2].weights: expected ternary like layers[0] (one weight kind for every layer), "
        "got 'binary'",
        "train.loss: on-chip training uses squared_hinge, got 'cross_entropy'",
    ]
    with pytest.raises(ValueError, match=r"net.yaml: not an on-chip training spec:\n  layers\["):
        onchip_config(parse_spec("data: {set: digits}\n" + layers.replace(
            "- {kind: conv", "- {kind: conv, kernel: 3").replace(
            "{units: 32", "{kind: conv, filters: 4, kernel: 3").replace(
            ", act: relu, bn: true}", ", act: sign, bn: false}")), "net.yaml")


def test_compile_train_lists_the_reasons(tmp_path, capsys):
    assert main(["compile", "--train", "examples/digits-bnn.yaml", "-o", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "examples/digits-bnn.yaml: not an on-chip training spec" in err
    assert err.count("on-chip training runs without batch norm") == 3


@pytest.mark.parametrize("path", ["examples/digits-onchip.yaml", "examples/digits-onchip-deep.yaml",
                                  "examples/fashion-onchip.yaml"])
def test_examples_give_a_config(path):
    spec = load_spec(path)
    assert onchip_problems(spec) == []
    cfg = onchip_config(spec, path)
    assert cfg.sizes[-1] == 10 and cfg.layers == len(spec.layers)
