"""Paired bootstrap of a difference of means: is system A's mean score above system B's on these documents, or
within what resampling the same documents would give? On 100 documents a ROUGE gap of half a point can be noise;
a benchmark that reports only means cannot tell."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class Difference:
    mean: float    # mean of a - b over the documents
    low: float     # the interval's ends: percentiles of the resampled means
    high: float
    p_not_above: float  # share of resamples in which a's mean is not above b's (one-sided)

    @property
    def significant(self) -> bool:
        """The interval excludes 0: the sign of the difference holds under resampling."""
        return self.low > 0 or self.high < 0


def paired_difference(a: np.ndarray, b: np.ndarray, *, resamples: int = 10_000, confidence: float = 0.95,
                      seed: int = 0) -> Difference:
    """Resample documents with replacement (the same documents for both systems, since the scores are paired)
    and take the mean of a - b in each resample; the interval is the central `confidence` share of those means."""
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    if a.shape != b.shape or a.ndim != 1 or len(a) == 0:
        raise ValueError(f"need two equal-length, non-empty score vectors, got shapes {a.shape} and {b.shape}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), not {confidence}")
    diff = a - b
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    # in chunks, so that 10,000 resamples of 1,000 documents never hold a 10,000 x 1,000 index matrix at once
    for lo in range(0, resamples, 1000):
        hi = min(resamples, lo + 1000)
        means[lo:hi] = diff[rng.integers(0, len(diff), size=(hi - lo, len(diff)))].mean(axis=1)
    tail = (1 - confidence) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return Difference(float(diff.mean()), float(low), float(high), float(np.mean(means <= 0)))
