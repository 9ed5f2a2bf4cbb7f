"""Layers that take their input vector into block RAM (``Folding.input_beat``): the choice of
layers and beats, the lowering without collectors, and bit-exact networks in the Amaranth
simulator, with and without stalls."""

import numpy as np
import pytest

from fewmul.boards.nets import random_conv_net, random_net
from fewmul.compiler.input_memory import (check_input_beats, input_beat, memory_layers,
                                          with_input_memory)
from fewmul.compiler.lower import lower, probes
from fewmul.compiler.planner import plan_folding
from fewmul.gateware import Collector

from gateware_helpers import StreamMonitor, random_inputs, simulate

# (sizes, input bits, pe, simd, pipeline)
CASES = [
    ((64, 32, 32, 10), 1, [1, 2, 1], [16, 8, 8], [0, 0, 0]),
    ((48, 24, 12, 10), 4, [2, 4, 2], [12, 4, 4], [2, 3, 0]),
    ((40, 16, 16, 10), 2, [1, 1, 5], [8, 16, 16], [5, 1, 6]),    # one fold, stall-free
]


def memory_net(case, layers="all"):
    sizes, bits, pe, simd, pipeline = case
    net = random_net(sizes, input_bits=bits, seed=len(sizes) + bits)
    plans = plan_folding(net, pe, simd=simd, pipeline=pipeline)
    return net, with_input_memory(plans, memory_layers(plans, layers))


def beats_of(x, beats):
    """Each image's inputs in ``beats`` transfers."""
    return x.reshape(len(x) * beats, -1).tolist()


def test_beats_follow_the_layer_before():
    """A hidden layer takes the beats of the layer before; the first layer the largest that
    divides its inputs and simd."""
    net, plans = memory_net(CASES[0])
    assert [p.folding.input_beat for p in plans] == [16, 1, 2]
    _, plans = memory_net(CASES[1])
    assert [p.folding.input_beat for p in plans] == [12, 2, 4]


@pytest.mark.parametrize("case", range(len(CASES)))
@pytest.mark.parametrize("stall", [0.0, 0.3])
def test_networks_with_input_memories_are_bit_exact(case, stall):
    """Every layer's output, as the skid buffer's beats where no collector is left, and the
    labels, against the golden model."""
    net, plans = memory_net(CASES[case])
    top = lower(net, plans)
    assert not any(isinstance(unit, Collector) for name, unit in top.stages.items()
                   if name != f"{net.layers[-1].name}_collect")
    assert all(isinstance(top.stages[f"{layer.name}_mvu"].input_beat, int)
               for layer in net.layers)
    rng = np.random.default_rng(case)
    x = random_inputs(rng, 5, net.in_type.size, net.input_bits)
    layer_probes = probes(net, plans)
    assert [p.path.endswith("skid") for p in layer_probes] == [True, True, False]
    monitors = [StreamMonitor(top.stages[p.path].o) for p in layer_probes]
    _, out = simulate(top, beats_of(x, top.input_beats), len(x), seed=case, p_stall=stall,
                      monitors=monitors, max_cycles=40_000)
    for probe, mon, expected in zip(layer_probes, monitors, net.forward(x)):
        got = np.array(mon.payloads).reshape(len(x), -1)
        np.testing.assert_array_equal(got, expected, err_msg=probe.name)
    assert [o["label"] for o in out.payloads] == net.predict(x).tolist()


@pytest.mark.parametrize("case", range(len(CASES)))
def test_timing_with_input_memories_is_as_predicted(case):
    """Unstalled, images follow one another every ``cycles_per_inference`` cycles and the
    first result comes ``latency_cycles`` after the first transfer, exactly."""
    net, plans = memory_net(CASES[case])
    top = lower(net, plans)
    x = random_inputs(np.random.default_rng(7), 5, net.in_type.size, net.input_bits)
    ins, out = simulate(top, beats_of(x, top.input_beats), len(x), max_cycles=40_000)
    cycles = [cycle for cycle, _ in out.transfers]
    assert set(np.diff(cycles).tolist()) == {top.cycles_per_inference}
    assert cycles[0] - ins.transfers[0][0] == top.latency_cycles
    assert [o["label"] for o in out.payloads] == net.predict(x).tolist()


def test_one_layer_alone_keeps_its_collectors():
    """An input memory in the middle layer only: the first layer's beats go straight in, the
    others are collected as before."""
    net, plans = memory_net(CASES[0], [1])
    top = lower(net, plans)
    assert top.input_beats == 1
    assert [name for name in top.stages if name.endswith("collect")] == \
        ["layer1_collect", "layer2_collect"]
    x = random_inputs(np.random.default_rng(3), 4, net.in_type.size, net.input_bits)
    _, out = simulate(top, x.tolist(), len(x), seed=3, p_stall=0.3)
    assert [o["label"] for o in out.payloads] == net.predict(x).tolist()


def test_a_dense_layer_after_a_convolution_takes_its_pixels_beats():
    """The first dense layer after a convolution takes the convolution's beats of ``pe``
    channels; the convolution itself keeps its latched windows."""
    net = random_conv_net((2, 6, 6), [("conv", 4, 3), ("dense", 8), ("dense", 10)],
                          input_bits=2, seed=1)
    plans = plan_folding(net, [2, 2, 1], simd=[18, 16, 8])
    assert memory_layers(plans, "all") == [1, 2]
    plans = with_input_memory(plans, [1, 2])
    top = lower(net, plans)
    x = np.random.default_rng(2).integers(0, 4, (3, net.in_type.size))
    _, out = simulate(top, x.reshape(3 * net.in_type.pixels, -1).tolist(), 3, seed=2,
                      p_stall=0.3, max_cycles=40_000)
    assert [o["label"] for o in out.payloads] == net.predict(x).tolist()


def test_an_input_memory_trades_registers_for_block_ram():
    net, latched = memory_net(CASES[0], "none")
    _, memory = memory_net(CASES[0])
    for before, after in zip(latched, memory):
        assert after.estimate().ffs < before.estimate().ffs
        assert after.estimate().brams > before.estimate().brams


def test_bad_choices_are_refused():
    net, plans = memory_net(CASES[0], "none")
    with pytest.raises(ValueError, match="one of none, all or a list"):
        memory_layers(plans, "some")
    with pytest.raises(ValueError, match="between 0 and 2"):
        memory_layers(plans, [3])
    odd = plan_folding(net, [2, 1, 1], simd=[16, 9, 8])
    assert input_beat(odd, 1) is None
    with pytest.raises(ValueError, match=r"layers\[1\] cannot .* simd 9 is not a multiple of "
                                         r"the 2 elements"):
        memory_layers(odd, [1])
    conv = random_conv_net((2, 6, 6), [("conv", 4, 3), ("dense", 10)], input_bits=2)
    conv_plans = plan_folding(conv, [1, 1])
    with pytest.raises(ValueError, match="only a fully-connected layer"):
        memory_layers(conv_plans, [0])
    check_input_beats(plans)
    wrong = [plans[0], plans[1].with_folding(input_beat=3), plans[2]]
    with pytest.raises(ValueError, match=r"layers\[1\] cannot take its input 3 elements a "
                                         r"beat into an input memory; 1 would do"):
        lower(net, wrong)


def test_compile_with_input_memories_is_bit_exact_in_verilator(tmp_path, capsys):
    """``fewmul compile --input-memory all``: the report lists each layer's beat, the manifest
    the image's transfers, and the harness and the cocotb testbench (every layer's beats, with
    stalls) agree with the golden model."""
    import json

    from fewmul.cli import main
    from fewmul.sim.check import check_build

    spec = tmp_path / "tiny.yaml"
    spec.write_text("data: {set: digits, input_bits: 2}\n"
                    "layers:\n  - {units: 16}\n  - {units: 12}\n  - {units: 10, act: none}\n")
    assert main(["train", str(spec), "--untrained", "-o", str(tmp_path / "run")]) == 0
    build = tmp_path / "build"
    assert main(["compile", str(tmp_path / "run"), "-o", str(build), "--pe", "1,2,1",
                 "--simd", "16,8,4", "--input-memory", "all"]) == 0
    report = json.loads((build / "report.json").read_text())
    assert [layer["input_beat"] for layer in report["layers"]] == [16, 1, 2]
    assert json.loads((build / "manifest.json").read_text())["input_beats"] == 4
    result = check_build(build, 60, seed=3, testbench_images=10)
    assert result["error"] is None and result["mismatches"] == 0, result["first_mismatch"]
    assert result["harness"]["images"] == 60 and result["testbench"]["images"] == 10
    assert result["cycles_per_inference"] == result["predicted_cycles_per_inference"]
    with pytest.raises(SystemExit):
        main(["compile", str(tmp_path / "run"), "-o", str(build), "--input-memory", "some"])
    assert "expected none, all or layers such as 0,1, not 'some'" in capsys.readouterr().err


def test_a_first_layer_fed_in_small_beats_takes_as_long_as_its_beats():
    """784 inputs at simd 25 take the image a pixel a transfer: 784 cycles, not 16 x 32."""
    net = random_net((784, 16, 10), input_bits=1)
    plans = with_input_memory(plan_folding(net, [1, 1], simd=[25, 16]), [0])
    assert plans[0].folding.input_beat == 1
    assert plans[0].cycles == 784 and lower(net, plans).cycles_per_inference == 784


def test_boards_keep_the_compilers_input_memories_and_refuse_a_bench():
    from fewmul.boards.fit import FitError, check_fit
    from fewmul.boards.flow import _bench_count
    from fewmul.boards.nets import plan_network
    from fewmul.boards.targets import get_board

    net, _ = memory_net(CASES[0], "none")
    default = {"pe": [1, 2, 1], "simd": [16, 8, 8], "input_memory": [1, 2]}
    plans = plan_network(net, default=default)
    assert [p.folding.input_beat for p in plans] == [None, 1, 2]
    # another folding keeps those that still fit it: beats of 4 into simd 8, not of 16
    plans = plan_network(net, [1, 4, 1], simd=[16, 8, 8], default=default)
    assert [p.folding.input_beat for p in plans] == [None, 1, 4]
    plans = plan_network(net, [1, 16, 1], simd=[16, 8, 8], default=default)
    assert [p.folding.input_beat for p in plans] == [None, 1, None]
    assert [p.folding.input_beat for p in plan_network(net, default=default,
                                                       input_memory="none")] == [None] * 3
    board = get_board("icebreaker")
    first = plan_network(net, default={**default, "input_memory": [0]})
    x = np.zeros((4, 64), int)
    with pytest.raises(ValueError, match="beats of a first layer|first layer that takes"):
        _bench_count(board, net, first, (x, np.zeros(4, int)), 4)
    assert _bench_count(board, net, first, (x, np.zeros(4, int)), None) == 0
    # the fit advice adds to the layers that have one: "all", not just the missing ones
    with pytest.raises(FitError, match=r"layers 0 in block RAM .*--input-memory all,"):
        check_fit(board, {"lut": 9999}, net, plan_network(net, default=default),
                  stage="synthesis")
