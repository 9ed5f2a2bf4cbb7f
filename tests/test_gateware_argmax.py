# amaranth: UnusedElaboratable=no
import numpy as np
import pytest
from amaranth.hdl import signed, unsigned

from fewmul.gateware import Argmax

from gateware_helpers import simulate


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8, 13])
@pytest.mark.parametrize("score_shape", [signed(3), signed(12), unsigned(4)])
def test_argmax(n, score_shape):
    rng = np.random.default_rng(n)
    lo, hi = (-(1 << (score_shape.width - 1)), 1 << (score_shape.width - 1)) \
        if score_shape.signed else (0, 1 << score_shape.width)
    # Narrow random ranges make many ties; the extremes check signed comparison.
    scores = np.concatenate([
        rng.integers(lo, hi, size=(10, n)),
        rng.integers(lo, lo + 3, size=(10, n)),
        np.full((2, n), lo), np.full((2, n), hi - 1),
    ])
    dut = Argmax(n, score_shape)
    assert dut.o.payload.shape()["label"].shape == unsigned(max(1, (n - 1).bit_length()))
    _, out_mon = simulate(dut, scores.tolist(), len(scores), seed=n, p_stall=0.3)
    assert [p["label"] for p in out_mon.payloads] == np.argmax(scores, axis=1).tolist()
    assert [p["scores"] for p in out_mon.payloads] == scores.tolist()


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 10, 17])
def test_timing(n):
    """A vector every ``latency = 2 * max(1, ceil(log2 n)) + 1`` cycles, labelled ``latency``
    cycles after it was taken."""
    scores = np.random.default_rng(n).integers(-8, 8, size=(12, n))
    dut = Argmax(n, signed(4))
    assert dut.rounds == max(1, int(np.ceil(np.log2(n))))
    assert dut.latency == dut.cycles_per_vector == 2 * dut.rounds + 1
    in_mon, out_mon = simulate(dut, scores.tolist(), len(scores))
    assert set(np.diff(in_mon.cycles)) == {dut.latency}
    assert out_mon.cycles == [c + dut.latency for c in in_mon.cycles]
    assert [p["label"] for p in out_mon.payloads] == np.argmax(scores, axis=1).tolist()


def test_errors():
    with pytest.raises(TypeError, match="Number of scores must be a positive integer, not 0"):
        Argmax(0, signed(4))
