# amaranth: UnusedElaboratable=no
import numpy as np
import pytest
from amaranth.hdl import Fragment, signed, unsigned

from fewmul.gateware import MatrixVectorUnit, signed_shape, sum_bound

from gateware_helpers import random_inputs, ref_sums, simulate

# (M, N, input_kind, input_bits, pe)
CASES = [
    (6, 10, "bipolar", 1, 1),
    (6, 10, "bipolar", 1, 6),
    (6, 10, "bipolar", 1, 3),
    (1, 1, "bipolar", 1, 1),
    (8, 16, "unsigned", 1, 2),
    (8, 16, "unsigned", 4, 4),
    (5, 7, "unsigned", 8, 5),
    (4, 9, "unsigned", 8, 1),
    (12, 3, "unsigned", 4, 12),
]


def random_weights(rng, m, n):
    """Random weight bits, with an all-ones and an all-zeros row to reach the sum bounds."""
    weights = rng.integers(0, 2, size=(m, n))
    weights[0] = 1
    weights[1:2] = 0
    return weights


def run(case, seed, *, stalls, vectors=6):
    m, n, kind, bits, pe = case
    rng = np.random.default_rng(seed)
    weights = random_weights(rng, m, n)
    x = random_inputs(rng, vectors, n, bits)
    dut = MatrixVectorUnit(weights, input_kind=kind, input_bits=bits, pe=pe)
    in_mon, out_mon = simulate(dut, x.tolist(), vectors * m // pe,
                               seed=seed if stalls else None, p_stall=0.4)
    got = np.array(out_mon.payloads).reshape(vectors, m)
    np.testing.assert_array_equal(got, ref_sums(weights, x, kind))
    return dut, in_mon, out_mon


@pytest.mark.parametrize("case", CASES)
def test_sums_with_stalls(case):
    run(case, seed=sum(case[:2]) + case[3], stalls=True)


@pytest.mark.parametrize("case", CASES)
def test_timing_without_stalls(case):
    dut, in_mon, out_mon = run(case, seed=1, stalls=False)
    groups = case[0] // case[4]
    assert dut.cycles_per_vector == groups + 1
    assert np.all(np.diff(in_mon.cycles) == dut.cycles_per_vector)
    expected = [c + dut.latency + g for c in in_mon.cycles for g in range(groups)]
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
    assert [port.domain for port in mem.read_ports] == ["sync"]
    # Row 1, neuron 2 (=5), input 7 is bit 2 * 10 + 7.
    assert (mem.init[1] >> 27) & 1 == weights[5, 7]
    Fragment.get(m, None)


def test_sum_bound():
    assert sum_bound(784, "bipolar", 1) == 784
    assert sum_bound(3, "unsigned", 8) == 765
    assert signed_shape(-4, 3) == signed(3)
    assert signed_shape(-5, 4) == signed(4)
    assert signed_shape(0, 4) == signed(4)


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
    with pytest.raises(ValueError, match=r"non-empty \(M, N\) array"):
        MatrixVectorUnit(np.zeros(4), input_kind="bipolar", input_bits=1, pe=1)
