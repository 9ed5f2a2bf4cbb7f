# amaranth: UnusedElaboratable=no
import numpy as np
import pytest
from amaranth.hdl import signed, unsigned

from fewmul.gateware import ScoreUnit, ThresholdUnit, signed_shape
from fewmul.gateware.activation import TABLE_GROUPS

from gateware_helpers import ref_scores, ref_threshold, simulate

# (M, pe, sum_bound); the last two have more than TABLE_GROUPS groups: constants from a table
CASES = [(6, 1, 10), (6, 6, 10), (6, 3, 150), (8, 2, 7), (1, 1, 1), (40, 1, 30), (70, 2, 90)]


def random_sums(rng, vectors, m, bound):
    """Sums in ``[-bound, bound]``, both extremes included."""
    sums = rng.integers(-bound, bound + 1, size=(vectors, m))
    sums[0], sums[1] = bound, -bound
    return sums


def run(dut, sums, seed):
    """Stream ``sums`` (vectors, M) through ``dut`` in beats; outputs as (vectors, M)."""
    beats = sums.reshape(-1, dut.pe).tolist()
    _, out_mon = simulate(dut, beats, len(beats), seed=seed, p_stall=0.3)
    return np.array(out_mon.payloads).reshape(sums.shape)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("stalls", [False, True])
def test_threshold(case, stalls):
    m, pe, bound = case
    rng = np.random.default_rng(m + pe + bound)
    # Some thresholds far outside [-S, S + 1], where they are clamped.
    thresholds = rng.integers(-bound - 2, bound + 3, size=m)
    thresholds[rng.random(m) < 0.3] *= 1000
    if m > 1:
        thresholds[:2] = [bound + 1, -bound]
    sums = random_sums(rng, 5, m, bound)
    dut = ThresholdUnit(thresholds.tolist(), sum_bound=bound, pe=pe)
    assert (dut.groups > TABLE_GROUPS) == (m // pe >= 35)
    assert dut.o.payload.shape().elem_shape == unsigned(1)
    assert dut.i.payload.shape().elem_shape == signed_shape(-bound, bound)
    got = run(dut, sums, seed=m if stalls else None)
    np.testing.assert_array_equal(got, ref_threshold(sums, thresholds))


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("stalls", [False, True])
def test_score(case, stalls):
    m, pe, bound = case
    rng = np.random.default_rng(m + pe + bound)
    shifts = rng.integers(0, 4, size=m)
    offsets = rng.integers(-1000, 1000, size=m)
    sums = random_sums(rng, 5, m, bound)
    dut = ScoreUnit(shifts.tolist(), offsets.tolist(), sum_bound=bound, pe=pe)
    scores = ref_scores(sums, shifts, offsets)
    lo = min((-bound << int(sh)) + int(off) for sh, off in zip(shifts, offsets))
    hi = max((bound << int(sh)) + int(off) for sh, off in zip(shifts, offsets))
    assert dut.score_shape == signed_shape(lo, hi)
    got = run(dut, sums, seed=m if stalls else None)
    np.testing.assert_array_equal(got, scores)


def test_score_shape():
    assert ScoreUnit([0], [0], sum_bound=7, pe=1).score_shape == signed(4)
    assert ScoreUnit([2], [100], sum_bound=7, pe=1).score_shape == signed(9)  # 72..128
    assert ScoreUnit([0, 3], [0, -1], sum_bound=7, pe=1).score_shape == signed(7)  # -57..55


def test_threshold_clamp():
    dut = ThresholdUnit([-10**9, 10**9, 3], sum_bound=5, pe=1)
    assert dut.thresholds == [-5, 6, 3]


def test_errors():
    with pytest.raises(ValueError, match="must divide the number of neurons M=6, not pe=4"):
        ThresholdUnit([0] * 6, sum_bound=5, pe=4)
    with pytest.raises(TypeError, match="Sum bound must be a positive integer, not 0"):
        ThresholdUnit([0] * 6, sum_bound=0, pe=1)
    with pytest.raises(TypeError, match="Thresholds must be a sequence of integers"):
        ThresholdUnit([0.5], sum_bound=5, pe=1)
    with pytest.raises(ValueError, match="Shifts and offsets must have the same length"):
        ScoreUnit([0, 1], [0], sum_bound=5, pe=1)
    with pytest.raises(ValueError, match="Shifts must be non-negative"):
        ScoreUnit([-1], [0], sum_bound=5, pe=1)
    with pytest.raises(ValueError, match="M=3, not pe=2"):
        ScoreUnit([0] * 3, [0] * 3, sum_bound=5, pe=2)
    with pytest.raises(ValueError, match="At least one neuron is needed"):
        ThresholdUnit([], sum_bound=5, pe=1)


@pytest.mark.parametrize("levels", [3, 7])
@pytest.mark.parametrize("stalls", [False, True])
@pytest.mark.parametrize("m", [6, 3 * TABLE_GROUPS + 9])   # the second from a table
def test_multi_threshold(levels, stalls, m):
    """``2^k - 1`` thresholds per neuron give the ``k``-bit level, the count of those reached."""
    pe, bound = 3, 40
    rng = np.random.default_rng(levels)
    thresholds = np.sort(rng.integers(-bound - 2, bound + 3, size=(m, levels)), axis=1)
    thresholds[0] = bound + 1          # never reached: level 0
    thresholds[1] = -bound             # always reached: the top level
    thresholds[2, :2] = [5000, -5000]  # clamped, and not sorted: still a count
    sums = random_sums(rng, 6, m, bound)
    dut = ThresholdUnit(thresholds.tolist(), sum_bound=bound, pe=pe)
    assert dut.levels == levels
    assert dut.o.payload.shape().elem_shape == unsigned(levels.bit_length())
    assert dut.thresholds[2][:2] == [bound + 1, -bound]
    got = run(dut, sums, seed=levels if stalls else None)
    np.testing.assert_array_equal(got, ref_threshold(sums, thresholds))
    assert set(got[:, 0]) == {0} and set(got[:, 1]) == {levels}


def test_multi_threshold_errors():
    with pytest.raises(ValueError, match=r"same positive number of thresholds, not \[1, 2\]"):
        ThresholdUnit([[1, 2], [3]], sum_bound=5, pe=1)
