"""The benchmark's paired bootstrap against the exact resampling distribution of a tiny case."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from bench.paired_bootstrap import paired_difference


def test_matches_the_exact_distribution_of_three_documents() -> None:
    a, b = np.array([1.0, 2.0, 4.0]), np.array([1.0, 1.0, 2.0])   # differences 0, 1, 2
    exact = np.array([np.mean(c) for c in itertools.product([0.0, 1.0, 2.0], repeat=3)])  # all 27 resamples
    d = paired_difference(a, b, resamples=40_000, seed=3)
    assert d.mean == pytest.approx(1.0)
    assert d.p_not_above == pytest.approx(np.mean(exact <= 0), abs=0.005)   # only (0, 0, 0): 1/27
    # each end carries 1/27 > 2.5% of the mass: the interval is [0, 2], and a gap that three documents, one of
    # them a tie, show is not significant
    assert d.low == np.quantile(exact, 0.025, method="inverted_cdf") == 0.0
    assert d.high == np.quantile(exact, 0.975, method="inverted_cdf") == 2.0
    assert not d.significant
    four = paired_difference(np.array([1.0, 2.0, 4.0, 4.0]), np.array([0.0, 1.0, 2.0, 2.0]), resamples=40_000)
    assert four.low == 1.0 and four.significant   # no tie: every resample's mean is at least 1


def test_identical_systems_differ_by_nothing() -> None:
    x = np.random.default_rng(0).random(50)
    d = paired_difference(x, x.copy())
    assert (d.mean, d.low, d.high, d.p_not_above) == (0.0, 0.0, 0.0, 1.0)
    assert not d.significant


def test_pairing_separates_a_small_shift_from_large_per_document_spread() -> None:
    rng = np.random.default_rng(1)
    base = rng.normal(0.4, 0.15, 400)          # documents differ a lot from each other
    a = base + 0.01 + rng.normal(0, 0.005, 400)  # a beats b by 0.01 on nearly every document
    d = paired_difference(a, base)
    assert d.low < 0.01 < d.high and d.significant and d.p_not_above == 0.0
    # an unpaired reading of the same scores (shuffled partners) cannot see it
    assert not paired_difference(a, rng.permutation(base)).significant


def test_rejects_unpaired_or_empty_scores() -> None:
    with pytest.raises(ValueError, match="equal-length"):
        paired_difference(np.ones(3), np.ones(4))
    with pytest.raises(ValueError, match="non-empty"):
        paired_difference(np.ones(0), np.ones(0))
    with pytest.raises(ValueError, match="confidence"):
        paired_difference(np.ones(3), np.ones(3), confidence=1.0)
