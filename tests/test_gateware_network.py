# amaranth: UnusedElaboratable=no
import re

import numpy as np
import pytest
from amaranth.back import rtlil

from fewmul.compiler.lower import lower
from fewmul.compiler.planner import LayerPlan, layer_plans
from fewmul.ir import Folding, dense_layer, dense_net

from gateware_helpers import StreamMonitor, random_inputs, ref_network, simulate


def random_network(seed, sizes, pes, *, input_kind="unsigned", input_bits=4, simds=None,
                   weight_kind="binary", act_bits=1, pipeline=0, popcount_style="adder"):
    """Layers ``sizes[0] -> sizes[1] -> ...``, thresholds near the middle of the sums' range,
    and their foldings.

    Hidden layers output bits (``act_bits == 1``) or ``act_bits``-bit levels.
    """
    rng = np.random.default_rng(seed)
    simds = simds or [None] * len(pes)
    layers, foldings = [], []
    kind, bits = input_kind, input_bits
    for index, (n, m, pe) in enumerate(zip(sizes[:-1], sizes[1:], pes, strict=True)):
        weights = (rng.integers(0, 2, size=(m, n)) if weight_kind == "binary" else
                   rng.integers(-1, 2, size=(m, n)))
        spread = max(1, int(np.sqrt(n)) << (bits - 1))
        foldings.append(Folding(pe, simds[index], pipeline, popcount_style))
        if index < len(pes) - 1:
            levels = (1 << act_bits) - 1
            t = np.sort(rng.integers(-spread, spread + 1, (m, levels)), axis=1)
            t = t[:, 0] if act_bits == 1 else t
            layers.append(dense_layer(weights, kind, bits, thresholds=t,
                                      weight_kind=weight_kind))
        else:
            layers.append(dense_layer(weights, kind, bits, shifts=rng.integers(0, 3, m),
                                      offsets=rng.integers(-spread, spread + 1, m),
                                      weight_kind=weight_kind))
        kind, bits = ("bipolar", 1) if act_bits == 1 else ("unsigned", act_bits)
    return layers, foldings


def build(layers, foldings):
    """The gateware network of the graph of ``layers``, lowered with ``foldings``."""
    net = dense_net(layers)
    plans = [LayerPlan(plan.layer, folding)
             for plan, folding in zip(layer_plans(net), foldings, strict=True)]
    return lower(net, plans)


def units(net, role):
    return [unit for name, unit in net.stages.items() if name.endswith(f"_{role}")]


NETWORKS = {  # name: (sizes, pes, input_kind, input_bits, options)
    "balanced":     ([16, 12, 8, 5], [4, 2, 5], "unsigned", 4, {}),
    "first_slow":   ([16, 12, 8, 5], [1, 8, 1], "unsigned", 8, {}),
    "last_slow":    ([16, 12, 8, 5], [12, 8, 1], "unsigned", 1, {}),
    "single_layer": ([10, 3], [1], "bipolar", 1, {}),
    "folded":       ([16, 12, 8, 5], [4, 2, 5], "unsigned", 8,
                     dict(simds=[5, 4, 3], pipeline=1)),
    "ternary_2bit": ([16, 12, 8, 5], [3, 4, 5], "unsigned", 8,
                     dict(simds=[6, 5, 8], weight_kind="ternary", act_bits=2)),
    "binary_2bit":  ([16, 12, 8, 5], [6, 2, 1], "unsigned", 4,
                     dict(simds=[16, 7, 2], act_bits=2, pipeline=2)),
    "ternary_sign": ([16, 12, 8, 5], [2, 4, 5], "unsigned", 4,
                     dict(simds=[3, 12, 1], weight_kind="ternary")),
    "compressor":   ([16, 12, 8, 5], [4, 4, 5], "unsigned", 8,
                     dict(simds=[7, 12, 4], pipeline=2, popcount_style="compressor")),
    # the stall-free datapath (from 5 stages on), with the word registered again
    "stall_free":   ([16, 12, 8, 5], [4, 2, 5], "unsigned", 4,
                     dict(simds=[5, 4, 3], pipeline=5)),
    "stall_free_6": ([16, 12, 8, 5], [6, 4, 1], "unsigned", 2,
                     dict(simds=[16, 5, 8], weight_kind="ternary", act_bits=2, pipeline=6)),
}


def run(name, *, vectors, seed=None):
    sizes, pes, kind, bits, options = NETWORKS[name]
    layers, foldings = random_network(sum(map(ord, name)), sizes, pes, input_kind=kind,
                                      input_bits=bits, **options)
    x = random_inputs(np.random.default_rng(len(name)), vectors, sizes[0], bits)
    net = build(layers, foldings)
    collected = [StreamMonitor(collector.o) for collector in units(net, "collect")]
    in_mon, out_mon = simulate(net, x.tolist(), vectors, seed=seed, p_stall=0.3,
                               monitors=collected)
    for index, vector in enumerate(x):
        outputs, label, scores = ref_network(layers, vector)
        for mon, expected in zip(collected, outputs, strict=True):
            assert mon.payloads[index] == expected.tolist()
        assert out_mon.payloads[index] == {"label": label, "scores": scores.tolist()}
    return net, in_mon, out_mon


@pytest.mark.parametrize("name", NETWORKS)
def test_inference_with_stalls(name):
    run(name, vectors=20, seed=7)


@pytest.mark.parametrize("name", NETWORKS)
def test_timing_without_stalls(name):
    net, in_mon, out_mon = run(name, vectors=40)
    sizes, pes, _, _, options = NETWORKS[name]
    simds = options.get("simds") or sizes[:-1]
    groups = [m // pe for m, pe in zip(sizes[1:], pes)]
    folds = [-(-n // simd) for n, simd in zip(sizes[:-1], simds)]
    latency = [f + 2 + options.get("pipeline", 0) for f in folds]
    argmax_cycles = 2 * max(1, (sizes[-1] - 1).bit_length()) + 1  # two per round, and one
    assert net.cycles_per_inference == max(argmax_cycles, *(g * f for g, f in zip(groups, folds)))
    # per layer: first beat, the other beats, 1 cycle in the skid buffer, 1 in the collector;
    # then the argmax and the skid buffer after it
    assert net.latency_cycles == sum(l + (g - 1) * f + 2
                                     for l, g, f in zip(latency, groups, folds)) + argmax_cycles
    assert out_mon.cycles[0] - in_mon.cycles[0] == net.latency_cycles
    # Once the buffers of every layer (the latched vector, the datapath registers, the output
    # queue, the skid buffer, the collector) and the argmax are full, inputs (like outputs) move
    # every `cycles_per_inference` cycles. Beats in the datapath, the queue and the skid buffer
    # count `groups` to a vector.
    pipeline = options.get("pipeline", 0)
    warm_up = 2 + sum(3 + -(-(pipeline + 2 + mvu.queue_capacity + 2) // mvu.groups)
                      for mvu in units(net, "mvu"))
    assert set(np.diff(in_mon.cycles[warm_up:])) == {net.cycles_per_inference}
    assert set(np.diff(out_mon.cycles)) == {net.cycles_per_inference}


def test_submodule_names():
    text = rtlil.convert(build(*random_network(0, [16, 12, 8, 5], [4, 2, 5])), name="top")
    for index in range(3):
        for unit in ["mvu", "act", "collect"]:
            assert f"cell \\top.layer{index}_{unit} \\layer{index}_{unit}\n" in text
    assert "cell \\top.argmax \\argmax\n" in text


@pytest.mark.parametrize("name", NETWORKS)
def test_no_multipliers(name):
    sizes, pes, kind, bits, options = NETWORKS[name]
    text = rtlil.convert(build(*random_network(0, sizes, pes, input_kind=kind,
                                               input_bits=bits, **options)))
    assert "$mul" not in text
    assert "$shift" not in text     # no variable shifts either (a folded slice is a case)
    # one weight memory per layer (and a small one in each layer's output queue)
    assert len(re.findall(r"^ *memory .*\\memory$", text, re.M)) == len(pes)
    assert len(re.findall(r"^ *memory .*\\storage$", text, re.M)) <= len(pes)


def test_errors():
    (good, _), fold = random_network(0, [16, 12, 8, 5], [4, 2, 5]), Folding(4)
    with pytest.raises(ValueError, match="at least one layer"):
        dense_net([])
    with pytest.raises(ValueError, match="layer1.matvec takes 12 bipolar 1-bit but "
                                         "layer0.threshold gives 8 bipolar 1-bit"):
        dense_net([dense_layer(good[0].weights[:8], "unsigned", 4, thresholds=[0] * 8),
                   *good[1:]])
    with pytest.raises(ValueError, match="layer1.matvec takes 12 unsigned 1-bit but "
                                         "layer0.threshold gives 12 bipolar 1-bit"):
        dense_net([good[0], dense_layer(good[1].weights, "unsigned", 1,
                                        thresholds=good[1].thresholds), good[2]])
    with pytest.raises(ValueError, match="layer1.matvec takes 12 bipolar 1-bit but "
                                         "layer0.scores gives 12 signed 9-bit"):
        dense_net([dense_layer(good[0].weights, "unsigned", 4, shifts=[0] * 12,
                               offsets=[0] * 12), *good[1:]])
    with pytest.raises(ValueError, match="argmax: inputs must be signed scores"):
        dense_net([*good[:2], dense_layer(good[2].weights, "bipolar", 1, thresholds=[0] * 5)])
    with pytest.raises(ValueError, match="layer2.scores: 5 neurons but 4 shifts"):
        dense_net([*good[:2], dense_layer(good[2].weights, "bipolar", 1, shifts=[0] * 4,
                                          offsets=[0] * 4)])
    with pytest.raises(ValueError, match="M=5, not pe=2"):
        build(good, [fold, Folding(2), Folding(2)])
