"""The popcount form of a dot product (fewmul.arith.dot) against a plain matrix product."""

import itertools

import numpy as np
import pytest

from fewmul.arith import INPUT_KINDS, WEIGHT_KINDS, DotProduct

CASES = [(i, b, w) for i, w in itertools.product(INPUT_KINDS, WEIGHT_KINDS)
         for b in ((1,) if i == "bipolar" else (1, 3, 8))]


def random_operands(rng, dot: DotProduct, n=13, m=7, batch=5):
    x = rng.integers(0, 1 << dot.input_bits, (batch, n))
    w = rng.integers(0, 2, (m, n)) if dot.weight_kind == "binary" else rng.integers(-1, 2, (m, n))
    return x, w


def signed_values(dot: DotProduct, x, w):
    xv = 2 * x - 1 if dot.input_kind == "bipolar" else x
    wv = 2 * w - 1 if dot.weight_kind == "binary" else w
    return xv, wv


@pytest.mark.parametrize("input_kind,input_bits,weight_kind", CASES)
def test_sums_equal_the_dot_product(input_kind, input_bits, weight_kind):
    dot = DotProduct(input_kind, input_bits, weight_kind)
    x, w = random_operands(np.random.default_rng(input_bits), dot)
    xv, wv = signed_values(dot, x, w)
    assert (dot.sums(x, w) == xv @ wv.T).all()
    bound = dot.sum_bound(x.shape[1])
    assert np.abs(dot.sums(x, w)).max() <= bound


@pytest.mark.parametrize("input_kind,input_bits,weight_kind", CASES)
def test_bits_and_counts_agree(input_kind, input_bits, weight_kind):
    """Each term's bit vector (as the gateware builds it) has the popcount the golden model
    computes by matrix products."""
    dot = DotProduct(input_kind, input_bits, weight_kind)
    x, w = random_operands(np.random.default_rng(7), dot)
    masks = dot.weight_masks(w)
    for term in filter(None, (dot.positive, dot.negative)):
        plane = x & 1
        counts = term.count(plane, masks)
        for b in range(len(x)):
            for j in range(w.shape[0]):
                bits = term.bits(plane[b].astype(bool), [mk[j].astype(bool) for mk in masks])
                assert bits.sum() == counts[b, j if term.uses_weights else 0]


@pytest.mark.parametrize("input_kind,input_bits,weight_kind", CASES)
def test_padding_adds_nothing(input_kind, input_bits, weight_kind):
    """Zero inputs with the pad bit in every mask leave the sum of the real inputs."""
    dot = DotProduct(input_kind, input_bits, weight_kind)
    x, w = random_operands(np.random.default_rng(3), dot)
    masks = dot.weight_masks(w)
    padded = [np.pad(mk, ((0, 0), (0, 4)), constant_values=dot.pad_bit if k == 0 else 0)
              for k, mk in enumerate(masks)]
    xp = np.pad(x, ((0, 0), (0, 4)))
    assert (dot.masked_sums(xp, padded, x.shape[1]) == dot.sums(x, w)).all()


def test_bad_kinds():
    with pytest.raises(ValueError, match="Weight kind must be one of"):
        DotProduct("bipolar", 1, "quaternary")
    with pytest.raises(ValueError, match="Bipolar inputs must have 1 input bit, not 2"):
        DotProduct("bipolar", 2, "binary")
