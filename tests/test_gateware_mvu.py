# amaranth: UnusedElaboratable=no
import numpy as np
import pytest
from amaranth.hdl import Fragment, signed, unsigned

from fewmul.gateware import MatrixVectorUnit, Widths, signed_shape, sum_bound

from gateware_helpers import random_inputs, ref_sums, simulate

# (M, N, input_kind, input_bits, weight_kind, pe, simd, pipeline)
CASES = [
    (6, 10, "bipolar", 1, "binary", 1, None, 0),
    (6, 10, "bipolar", 1, "binary", 6, None, 0),
    (6, 10, "bipolar", 1, "binary", 3, 5, 0),       # SIMD divides N
    (6, 10, "bipolar", 1, "binary", 3, 4, 1),       # SIMD does not divide N: padded
    (6, 10, "bipolar", 1, "binary", 2, 1, 2),       # one input per cycle
    (1, 1, "bipolar", 1, "binary", 1, None, 0),
    (8, 16, "unsigned", 1, "binary", 2, 16, 0),
    (8, 16, "unsigned", 4, "binary", 4, 6, 1),
    (5, 7, "unsigned", 8, "binary", 5, 3, 0),       # 8-bit bit-planes
    (4, 9, "unsigned", 8, "binary", 1, 9, 3),       # more stages than adder levels
    (4, 9, "unsigned", 4, "binary", 2, 5, 5),       # the last stage on the partial sums
    (6, 10, "bipolar", 1, "binary", 3, 4, 6),       # the word registered again
    (4, 8, "bipolar", 1, "binary", 1, None, 6),     # stall-free, one fold: a sum every cycle
    (2, 8, "unsigned", 2, "binary", 1, None, 5),    # ... and the next vector every 2 cycles
    (5, 7, "unsigned", 3, "binary", 5, 3, 4),       # three planes: an odd one in the combining
    (4, 9, "unsigned", 8, "ternary", 2, 5, 7),      # two registers among four combining levels
    (4, 9, "unsigned", 4, "binary", 2, 5, 8),       # a register after every combining level
    (12, 3, "unsigned", 4, "binary", 12, 2, 0),
    (6, 10, "bipolar", 1, "ternary", 3, 4, 0),
    (6, 10, "bipolar", 1, "ternary", 1, None, 1),
    (6, 11, "unsigned", 2, "ternary", 2, 4, 2),
    (4, 9, "unsigned", 8, "ternary", 4, 9, 0),
    (3, 5, "unsigned", 2, "binary", 3, 2, 0),
    # many folds: the slices chosen in two stages, by the low bits of the fold in its run
    (4, 40, "unsigned", 3, "binary", 2, 3, 1),      # 14 folds: 4 runs of 4
    (2, 40, "bipolar", 1, "binary", 1, 1, 6),       # 40 folds, stall-free: 5 runs of 8
    (2, 45, "unsigned", 2, "binary", 2, 5, 2),      # 9 folds: runs of 4, 4 and 1
    (3, 70, "bipolar", 1, "binary", 3, 35, 0),      # 2 folds; 35 inputs: two select groups
    (2, 99, "unsigned", 2, "binary", 1, 33, 6),     # 3 folds of 33: two select groups
    # compressor-tree popcounts
    (6, 10, "bipolar", 1, "binary", 3, 7, 2, "compressor"),
    (4, 13, "unsigned", 8, "binary", 2, 13, 0, "compressor"),
    (6, 11, "unsigned", 2, "ternary", 3, 6, 1, "compressor"),
    (4, 9, "bipolar", 1, "ternary", 4, 9, 4, "compressor"),  # partial-sum stage
]


def random_weights(rng, m, n, weight_kind):
    """Random weights, with an all-ones and an all-zeros (all-negative) row to reach the bounds."""
    if weight_kind == "binary":
        weights = rng.integers(0, 2, size=(m, n))
        low = 0
    else:
        weights = rng.integers(-1, 2, size=(m, n))
        low = -1
    weights[0] = 1
    weights[1:2] = low
    return weights


def make(case, seed):
    m, n, kind, bits, wkind, pe, simd, pipeline, *style = case
    rng = np.random.default_rng(seed)
    weights = random_weights(rng, m, n, wkind)
    dut = MatrixVectorUnit(weights, input_kind=kind, input_bits=bits, pe=pe, simd=simd,
                           weight_kind=wkind, pipeline=pipeline,
                           popcount_style=style[0] if style else "adder")
    return dut, weights, rng


def run(case, seed, *, stalls, vectors=6):
    m, n, kind, bits, wkind, pe, *_ = case
    dut, weights, rng = make(case, seed)
    x = random_inputs(rng, vectors, n, bits)
    in_mon, out_mon = simulate(dut, x.tolist(), vectors * m // pe,
                               seed=seed if stalls else None, p_stall=0.4)
    got = np.array(out_mon.payloads).reshape(vectors, m)
    np.testing.assert_array_equal(got, ref_sums(weights, x, kind, wkind))
    return dut, in_mon, out_mon


def case_id(case):
    m, n, kind, bits, wkind, pe, simd, pipeline, *style = case
    return f"{m}x{n}-{kind}{bits}-{wkind}-pe{pe}-simd{simd or n}-pl{pipeline}" + \
        "".join(f"-{s}" for s in style)


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_sums_with_stalls(case):
    run(case, seed=sum(case[:2]) + case[3], stalls=True)


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_timing_without_stalls(case):
    dut, in_mon, out_mon = run(case, seed=1, stalls=False)
    m, n, _, _, _, pe, simd, pipeline, *_ = case
    folds = -(-n // (simd or n))
    assert (dut.groups, dut.folds) == (m // pe, folds)
    assert dut.cycles_per_vector == m // pe * folds
    assert dut.latency == folds + 2 + pipeline
    assert np.all(np.diff(in_mon.cycles) == dut.cycles_per_vector)
    expected = [c + dut.latency + g * folds for c in in_mon.cycles for g in range(dut.groups)]
    assert out_mon.cycles == expected


def test_widths_and_memory():
    weights = np.random.default_rng(0).integers(0, 2, size=(6, 10))
    dut = MatrixVectorUnit(weights, input_kind="unsigned", input_bits=4, pe=3)
    assert dut.sum_bound == sum_bound(10, "unsigned", 4) == 150
    assert dut.sum_shape == signed(9)
    assert dut.i.payload.shape().elem_shape == unsigned(4)
    assert dut.o.payload.shape().elem_shape == signed(9)
    assert dut.o.payload.shape().length == 3
    m = dut.elaborate(None)
    mem = m.submodules.weights
    assert (mem.depth, mem.shape) == (2, unsigned(30))
    inner = mem.elaborate(None).submodules.memory   # the Memory the simulator sees
    assert (inner.depth, inner.init[1]) == (2, mem.init[1])
    assert [port.domain for port in inner.read_ports] == ["sync"]
    # Row 1, neuron 2 (=5), input 7 is bit 2 * 10 + 7.
    assert (mem.init[1] >> 27) & 1 == weights[5, 7]
    Fragment.get(m, None)


def test_folded_memory_layout():
    weights = np.random.default_rng(1).integers(-1, 2, size=(4, 7))
    dut = MatrixVectorUnit(weights, input_kind="unsigned", input_bits=2, pe=2, simd=3,
                           weight_kind="ternary")
    assert (dut.groups, dut.folds, dut.word_bits) == (2, 3, 12)
    mem = dut.elaborate(None).submodules.weights
    assert mem.depth == 6
    # Word g * 3 + f; lane p: positive mask at 2 * p * 3 + j, negative at (2 * p + 1) * 3 + j.
    for g in range(2):
        for f in range(3):
            for p in range(2):
                for j in range(3):
                    col = f * 3 + j
                    w = weights[g * 2 + p, col] if col < 7 else 0
                    word = mem.init[g * 3 + f]
                    assert (word >> (2 * p * 3 + j)) & 1 == (w == 1)
                    assert (word >> ((2 * p + 1) * 3 + j)) & 1 == (w == -1)


def test_sum_bound():
    assert sum_bound(784, "bipolar", 1) == 784
    assert sum_bound(3, "unsigned", 8) == 765
    assert signed_shape(-4, 3) == signed(3)
    assert signed_shape(-5, 4) == signed(4)
    assert signed_shape(0, 4) == signed(4)


@pytest.mark.parametrize("n,simd,kind,bits,wkind", [
    (1024, 32, "bipolar", 1, "binary"), (784, 49, "unsigned", 8, "binary"),
    (1024, 100, "unsigned", 2, "ternary"), (1023, 1023, "bipolar", 1, "ternary"),
    (1, 1, "bipolar", 1, "binary"), (5, 2, "unsigned", 8, "ternary")])
def test_widths_are_proved_and_tight(n, simd, kind, bits, wkind):
    w = Widths(n, simd, kind, bits, wkind)
    w.prove()
    bound = n * ((1 << bits) - 1)
    assert w.sum_bound == bound
    assert w.acc_shape == signed_shape(-bound, bound)
    # One bit fewer would not hold the sum bound.
    assert bound >= 1 << (w.acc_shape.width - 2)


def test_width_proof_can_fail():
    class Narrow(Widths):
        @property
        def acc_shape(self):
            return signed(4)
    with pytest.raises(OverflowError, match=r"accumulator after fold 1 ranges over \[-10, 10\]"):
        Narrow(20, 5, "unsigned", 1, "binary").prove()


def test_errors():
    weights = np.zeros((6, 4), dtype=int)
    with pytest.raises(ValueError, match=r"M=6, not pe=4; valid values are \[1, 2, 3, 6\]"):
        MatrixVectorUnit(weights, input_kind="bipolar", input_bits=1, pe=4)
    with pytest.raises(TypeError, match="PE count must be a positive integer, not 0"):
        MatrixVectorUnit(weights, input_kind="bipolar", input_bits=1, pe=0)
    with pytest.raises(ValueError, match="Bipolar inputs must have 1 input bit, not 2"):
        MatrixVectorUnit(weights, input_kind="bipolar", input_bits=2, pe=1)
    with pytest.raises(ValueError, match="Input bits must be between 1 and 8, not 9"):
        MatrixVectorUnit(weights, input_kind="unsigned", input_bits=9, pe=1)
    with pytest.raises(ValueError, match="Input kind must be one of"):
        MatrixVectorUnit(weights, input_kind="ternary", input_bits=2, pe=1)
    with pytest.raises(ValueError, match="only contain the bits 0 and 1"):
        MatrixVectorUnit(weights - 1, input_kind="bipolar", input_bits=1, pe=1)
    with pytest.raises(ValueError, match="Ternary weights must only contain -1, 0 and 1"):
        MatrixVectorUnit(weights + 2, input_kind="bipolar", input_bits=1, pe=1,
                         weight_kind="ternary")
    with pytest.raises(ValueError, match="Weight kind must be one of"):
        MatrixVectorUnit(weights, input_kind="bipolar", input_bits=1, pe=1, weight_kind="quad")
    with pytest.raises(ValueError, match=r"non-empty \(M, N\) array"):
        MatrixVectorUnit(np.zeros(4), input_kind="bipolar", input_bits=1, pe=1)
    with pytest.raises(ValueError, match="SIMD width must be at most the number of inputs N=4, "
                                         "not 5"):
        MatrixVectorUnit(weights, input_kind="bipolar", input_bits=1, pe=1, simd=5)
    with pytest.raises(TypeError, match="SIMD width must be a positive integer, not 0"):
        MatrixVectorUnit(weights, input_kind="bipolar", input_bits=1, pe=1, simd=0)
    with pytest.raises(TypeError, match="Pipeline stages must be a non-negative integer, not -1"):
        MatrixVectorUnit(weights, input_kind="bipolar", input_bits=1, pe=1, pipeline=-1)
    with pytest.raises(ValueError, match="Popcount style must be one of"):
        MatrixVectorUnit(weights, input_kind="bipolar", input_bits=1, pe=1, popcount_style="x")


@pytest.mark.parametrize("pipeline, kind, bits, wkind, expected", [
    # (word_stage, combine_levels, combine_stages, tree_stages); 64 inputs: 6 popcount levels
    (3, "unsigned", 4, "binary", (0, 3, 0, 2)),
    (4, "unsigned", 4, "binary", (0, 3, 0, 3)),      # the trees first: a stage per two levels
    (6, "unsigned", 4, "binary", (1, 3, 1, 3)),      # then the combining levels
    (8, "unsigned", 4, "binary", (1, 3, 3, 3)),      # a register after each of them
    (9, "unsigned", 4, "binary", (1, 3, 3, 4)),      # and any more to the trees again
    (6, "unsigned", 8, "ternary", (1, 4, 1, 3)),
    (8, "unsigned", 8, "binary", (1, 4, 3, 3)),
    (5, "bipolar", 1, "ternary", (1, 1, 0, 3)),
    (6, "bipolar", 1, "binary", (1, 0, 0, 4)),        # one XNOR-popcount: nothing to combine
])
def test_stage_allocation(pipeline, kind, bits, wkind, expected):
    weights = np.ones((2, 64), dtype=int)
    dut = MatrixVectorUnit(weights, input_kind=kind, input_bits=bits, pe=1, weight_kind=wkind,
                           pipeline=pipeline)
    assert dut.stall_free == (pipeline >= 5)
    assert (dut.word_stage, dut.combine_levels, dut.combine_stages, dut.tree_stages) == expected
    # every stage is somewhere: the memory's output register, the word, the combining, the trees
    assert 1 + dut.word_stage + dut.combine_stages + dut.tree_stages == pipeline


# --- The popcount terms and the choice of datapath ---------------------------------------------

@pytest.mark.parametrize("wkind, kind, bits, names", [
    ("binary", "bipolar", 1, ["match_0", "match_1"]),
    ("binary", "unsigned", 2, ["ones_0", "ones_1", "and_0_0", "and_0_1", "and_1_0", "and_1_1"]),
    ("ternary", "bipolar", 1, ["agree_0", "disagree_0", "agree_1", "disagree_1"]),
    ("ternary", "unsigned", 2, ["pos_0_0", "neg_0_0", "pos_0_1", "neg_0_1",
                                "pos_1_0", "neg_1_0", "pos_1_1", "neg_1_1"]),
])
def test_popcount_units_of_each_dot_product(wkind, kind, bits, names):
    """The units that count the terms of :class:`fewmul.arith.DotProduct`, named as the
    emitted Verilog has always named them."""
    weights = np.zeros((4, 9), dtype=int)
    dut = MatrixVectorUnit(weights, input_kind=kind, input_bits=bits, pe=2, simd=3,
                           weight_kind=wkind)
    assert dut.word_bits == 2 * 3 * dut.dot.masks
    m = dut.elaborate(None)
    units = [name for name in m._named_submodules if name.endswith("_count")]
    assert units == [f"{name}_count" for name in names]
    Fragment.get(m, None)


@pytest.mark.parametrize("stall_free, pipeline", [(True, 2), (True, 3), (False, 5), (False, 6)])
def test_stall_free_is_a_choice(stall_free, pipeline):
    case = (4, 9, "unsigned", 3, "ternary", 2, 4, pipeline)
    m, n, kind, bits, wkind, pe, simd, _ = case
    rng = np.random.default_rng(pipeline)
    weights = random_weights(rng, m, n, wkind)
    dut = MatrixVectorUnit(weights, input_kind=kind, input_bits=bits, pe=pe, simd=simd,
                           weight_kind=wkind, pipeline=pipeline, stall_free=stall_free)
    assert dut.stall_free is stall_free and dut.word_stage == int(stall_free)
    assert 1 + dut.word_stage + dut.combine_stages + dut.tree_stages == pipeline
    x = random_inputs(rng, 5, n, bits)
    for seed in (None, 4):
        in_mon, out_mon = simulate(dut, x.tolist(), 5 * m // pe, seed=seed, p_stall=0.4)
        got = np.array(out_mon.payloads).reshape(5, m)
        np.testing.assert_array_equal(got, ref_sums(weights, x, kind, wkind))
    assert out_mon.cycles[0] >= in_mon.cycles[0] + dut.latency


def test_stall_free_errors():
    weights = np.zeros((2, 4), dtype=int)
    with pytest.raises(ValueError, match="stall-free datapath needs at least 2 pipeline stages, "
                                         "not 1"):
        MatrixVectorUnit(weights, input_kind="bipolar", input_bits=1, pe=1, pipeline=1,
                         stall_free=True)
    with pytest.raises(TypeError, match="Stall-free must be a bool or None, not 1"):
        MatrixVectorUnit(weights, input_kind="bipolar", input_bits=1, pe=1, pipeline=5,
                         stall_free=1)


# (M, N, input_kind, input_bits, weight_kind, pe, simd, pipeline, input_beat)
BEAT_CASES = [
    (6, 12, "bipolar", 1, "binary", 3, 4, 0, 2),
    (6, 12, "bipolar", 1, "binary", 3, 4, 0, 1),       # one input a transfer
    (3, 8, "bipolar", 1, "binary", 3, 8, 0, 4),        # one fold
    (6, 10, "unsigned", 4, "binary", 2, 5, 1, 5),      # a word a transfer
    (4, 16, "unsigned", 2, "binary", 1, 6, 2, 2),      # the last word partial (16 = 6 + 6 + 4)
    (4, 9, "unsigned", 8, "ternary", 2, 3, 6, 3),      # stall-free
    (2, 40, "bipolar", 1, "binary", 1, 4, 6, 2),       # stall-free, 10 folds
]


@pytest.mark.parametrize("case", BEAT_CASES)
@pytest.mark.parametrize("stalls", [False, True])
def test_vector_in_memory_gives_the_same_sums(case, stalls):
    """With ``input_beat``, the vector arrives a few inputs at a time into block RAM: the sums
    are those of the latched vector, with and without stalls on both sides."""
    m, n, kind, bits, wkind, pe, simd, pipeline, beat = case
    for seed in range(2):
        rng = np.random.default_rng(seed)
        weights = random_weights(rng, m, n, wkind)
        dut = MatrixVectorUnit(weights, input_kind=kind, input_bits=bits, pe=pe, simd=simd,
                               weight_kind=wkind, pipeline=pipeline, input_beat=beat)
        vectors = 5
        x = random_inputs(rng, vectors, n, bits)
        _, out_mon = simulate(dut, x.reshape(vectors * n // beat, beat).tolist(),
                              vectors * m // pe, seed=seed if stalls else None, p_stall=0.4)
        got = np.array(out_mon.payloads).reshape(vectors, m)
        np.testing.assert_array_equal(got, ref_sums(weights, x, kind, wkind))


def test_vector_in_memory_holds_no_planes():
    """The memory replaces the latched planes (and their fold multiplexers): the unit takes one
    input a transfer and has a ``vector`` memory, the latching one neither."""
    weights = np.ones((4, 32), int)
    latched = MatrixVectorUnit(weights, input_kind="bipolar", input_bits=1, pe=1, simd=8)
    beats = MatrixVectorUnit(weights, input_kind="bipolar", input_bits=1, pe=1, simd=8,
                             input_beat=1)
    assert len(beats.i.payload.as_value()) == 1 and len(latched.i.payload.as_value()) == 32

    def submodules(unit):
        return {name for _, name, _ in Fragment.get(unit, None).subfragments}

    assert "vector" in submodules(beats) and "vector" not in submodules(latched)


@pytest.mark.parametrize("beat, simd, exc, error", [
    (0, 4, TypeError, "Beat must be a positive integer, not 0"),
    (5, 4, ValueError, "Beat must divide the count 12, not 5"),
    (3, 4, ValueError, "Beat must divide the SIMD width 4, not 3"),
])
def test_vector_in_memory_errors(beat, simd, exc, error):
    with pytest.raises(exc, match=error):
        MatrixVectorUnit(np.ones((2, 12), int), input_kind="bipolar", input_bits=1, pe=1,
                         simd=simd, input_beat=beat)


def test_latched_chunks_have_enables_of_their_own(tmp_path):
    """In the stall-free datapath each chunk of a latched plane that a fold multiplexer reads is
    enabled by a copy of ``i.ready`` of its own (one net for thousands of bits limited the
    784-input, 8-bit layer on the ECP5), and Yosys keeps the copies apart: each still has a
    flip-flop of its own after synthesis and merging of identical cells."""
    import subprocess

    from amaranth.back import rtlil

    from fewmul.compiler.yosys import yosys_command

    weights = np.random.default_rng(0).integers(0, 2, size=(4, 100))
    unit = MatrixVectorUnit(weights, input_kind="unsigned", input_bits=2, pe=2, simd=10,
                            pipeline=6)
    assert unit.stall_free and unit.folds == 10
    chunks = [name for plane in range(2) for name, _ in unit._latch_chunks(plane)]
    assert len(chunks) == 6   # 2 planes x 3 runs of folds (4, 4, 2) x 1 group of 10 bits
    (tmp_path / "mvu.il").write_text(rtlil.convert(unit, name="top"))
    result = subprocess.run(
        [*yosys_command(), "-q", "-p", "read_rtlil mvu.il; synth -flatten -top top; "
         f"opt_merge -share_all; select -assert-count {len(chunks)} w:ready_* %ci1 w:* %d"],
        cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("n, simd, pipeline", [(100, 10, 6), (100, 10, 0), (784, 49, 11),
                                               (1024, 512, 9), (7, 3, 5), (70, 70, 5)])
def test_latched_chunks_cover_each_input_once(n, simd, pipeline):
    weights = np.ones((2, n), int)
    unit = MatrixVectorUnit(weights, input_kind="bipolar", input_bits=1, pe=1, simd=simd,
                            pipeline=pipeline)
    bits = [j for _, ranges in unit._latch_chunks(0) for lo, hi in ranges for j in range(lo, hi)]
    assert sorted(bits) == list(range(n))
