"""The network IR: typed ops, the golden model as the graph executed, files, and the seam a
new op kind plugs into."""

# amaranth: UnusedElaboratable=no
import numpy as np
import pytest
from amaranth.lib import data

from fewmul.compiler.lower import lower, probes
from fewmul.compiler.planner import plan_folding
from fewmul.gateware import SkidBuffer
from fewmul.ir import (OP_KINDS, Binding, Graph, Op, StreamLayout, TensorType, dense_layer,
                       dense_net, register)
from fewmul.nn.artifacts import save_npz

from gateware_helpers import StreamMonitor, random_inputs, simulate


def small_net(seed=0, weight_kind="ternary"):
    rng = np.random.default_rng(seed)
    w0 = rng.integers(-1, 2, (6, 9)) if weight_kind == "ternary" else rng.integers(0, 2, (6, 9))
    return dense_net([
        dense_layer(w0, "unsigned", 3, weight_kind=weight_kind,
                    thresholds=np.sort(rng.integers(-8, 9, (6, 3)), axis=1)),
        dense_layer(rng.integers(0, 2, (4, 6)), "unsigned", 2,
                    shifts=rng.integers(0, 3, 4), offsets=rng.integers(-9, 10, 4)),
    ])


def test_types_layers_and_forward():
    net = small_net()
    assert [op.kind for op in net.ops] == ["matvec", "threshold", "matvec", "scores", "argmax"]
    assert [layer.name for layer in net.layers] == ["layer0", "layer1"]
    assert [op.kind for op in net.tail] == ["argmax"]
    assert net.in_type == TensorType((9, 1, 1), "unsigned", 3)
    assert net.layers[0].out_type == TensorType((6, 1, 1), "unsigned", 2)
    sums = net.ops[0].out_type
    assert (sums.kind, sums.bound, sums.bits) == ("signed", 9 * 7, 7)
    x = np.random.default_rng(1).integers(0, 8, (30, 9))
    outs = net.execute(x)
    w = net.ops[0].weights
    np.testing.assert_array_equal(outs[0], x @ w.T)                 # the exact dot product
    assert net.forward(x)[0] is not None and len(net.forward(x)) == 2
    np.testing.assert_array_equal(outs[-1][:, 0], net.predict(x))
    np.testing.assert_array_equal(net.predict(x), outs[3].argmax(1))


def test_files_round_trip(tmp_path):
    net = small_net()
    save_npz(tmp_path / "net.npz", net.arrays())
    again = Graph.load(tmp_path / "net.npz")
    assert [op.name for op in again.ops] == [op.name for op in net.ops]
    x = np.random.default_rng(2).integers(0, 8, (20, 9))
    for a, b in zip(net.execute(x), again.execute(x)):
        np.testing.assert_array_equal(a, b)


def test_bad_graphs_and_files(tmp_path):
    net = small_net()
    with pytest.raises(ValueError, match="Op name 'layer0.matvec' is used more than once"):
        Graph([net.ops[0], net.ops[1], net.ops[0]])
    with pytest.raises(ValueError, match="layer0.threshold: the first op must start a layer"):
        Graph(net.ops[1:])

    class StandAlone(Op):      # takes whole vectors, has no folding
        kind = "stand_alone_for_test"
        out_type = property(lambda self: self.in_type)

    StandAlone.binding_class = type("StandAloneBinding", (Binding,), {"takes_vector": True})
    with pytest.raises(ValueError, match="layer1.matvec: a matvec after between; ops that "
                                         "stand alone must end the graph"):
        Graph([*net.ops[:2], StandAlone("between", net.ops[1].out_type), *net.ops[2:]])
    arrays = net.arrays()
    arrays["ops"] = np.array(str(arrays["ops"]).replace('"scores"', '"softmax"'))
    save_npz(tmp_path / "odd.npz", arrays)
    with pytest.raises(ValueError, match="unknown op kind 'softmax'; known kinds are"):
        Graph.load(tmp_path / "odd.npz")


# --- A new op kind is one class and its binding: here a stage that passes the activations on,
# one register later. Nothing else in fewmul is told about it. -------------------------------

class Delay(Op):
    kind = "delay_for_test"

    @property
    def out_type(self):
        return self.in_type

    def forward(self, x):
        return x


class DelayBinding(Binding):
    role = "delay"

    def latency(self, folding):
        return SkidBuffer.latency

    def stream(self, folding):
        t = self.op.out_type
        return StreamLayout(t.size // folding.pe, folding.pe, t.bits, t.kind == "signed")

    def build(self, folding):
        return SkidBuffer(data.ArrayLayout(self.op.in_type.bits, folding.pe))


Delay.binding_class = DelayBinding


def test_a_new_op_kind_plugs_in(tmp_path):
    register(Delay)
    try:
        base = small_net(3, "binary")
        ops = list(base.ops)
        ops.insert(2, Delay("layer0.delay", ops[1].out_type))
        net = Graph(ops)
        assert [op.kind for op in net.layers[0].ops] == ["matvec", "threshold", "delay_for_test"]
        plans = plan_folding(net, [3, 2])
        top = lower(net, plans)
        assert "layer0_delay" in top.stages
        assert top.latency_cycles == lower(base, plan_folding(base, [3, 2])).latency_cycles + 1
        assert [p.path for p in probes(net, plans)] == ["layer0_collect", "layer1_collect"]
        # bit-exact in simulation, with stalls
        x = random_inputs(np.random.default_rng(4), 12, 9, 3)
        collected = [StreamMonitor(top.stages[p.path].o) for p in probes(net, plans)]
        _, out_mon = simulate(top, x.tolist(), len(x), seed=5, p_stall=0.3, monitors=collected)
        for mon, expected in zip(collected, net.forward(x)):
            assert mon.payloads == expected.tolist()
        assert [o["label"] for o in out_mon.payloads] == net.predict(x).tolist()
        save_npz(tmp_path / "net.npz", net.arrays())
        assert [op.kind for op in Graph.load(tmp_path / "net.npz").ops] == \
            [op.kind for op in net.ops]
    finally:
        OP_KINDS.pop(Delay.kind, None)


def test_the_planner_takes_its_candidates_from_the_binding():
    """The foldings a layer may have come from the op that starts it: for a matrix-vector
    product, pe over the divisors of its outputs and one simd per fold count."""
    from fewmul.ir import Folding
    head = small_net().layers[0].head                      # 6 outputs, 9 inputs
    foldings = head.binding.foldings(Folding(1, None, 3, "compressor"))
    assert sorted({f.pe for f in foldings}) == [1, 2, 3, 6]
    assert sorted({f.simd for f in foldings}) == [1, 2, 3, 5, 9]      # 9, 5, 3, 2, 1 folds
    assert len(foldings) == 4 * 5
    assert {(f.pipeline, f.popcount_style) for f in foldings} == {(3, "compressor")}
    assert Delay("d", head.out_type).binding.foldings(Folding(2)) == [Folding(2)]


def test_scores_and_labels_come_in_chunks_of_images():
    """Large batches run a chunk of images at a time: the same scores, bounded memory."""
    from fewmul.ir.build import weighted_ops
    from fewmul.ir.ops import Argmax
    rng = np.random.default_rng(4)
    t = TensorType.vector(12, "unsigned", 3)
    ops = weighted_ops("layer0", t, rng.integers(0, 2, (5, 12)), "binary",
                       shifts=rng.integers(0, 3, 5), offsets=rng.integers(-5, 6, 5))
    net = Graph(ops + [Argmax("argmax", ops[-1].out_type)])
    x = rng.integers(0, 8, (23, 12))
    whole = net.forward(x)[-1]
    for batch in (1, 5, 23, 100):
        np.testing.assert_array_equal(net.scores(x, batch), whole)
        np.testing.assert_array_equal(net.predict(x, batch), whole.argmax(1))
    np.testing.assert_array_equal(net.scores(x), whole)
