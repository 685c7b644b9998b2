"""The three critics of a candidate summary y of a document x (see README, "Summarizer").

- faithfulness: mean over y's tokens of log P(y_i | y_<i; x) - log P_C(y_i | y_<i), the pointwise mutual
  information of each token with the document, where P(.|x) mixes P_C with the cache model over x;
- support: share of y's tokens inside a span of >= 3 tokens that occurs verbatim in x;
- saliency: G(y) = sum_j log P(x_j | x_<j; y) - log P_C(x_j | x_<j), how much knowing y helps predict x, each
  sentence of y barred from predicting itself; reported as (G(y) - G(empty)) / (G(x) - G(empty));
- brevity is a hard budget, enforced by whoever builds the candidates.

A summary is a list of segments (its sentences, whole or compressed); contexts restart at each segment, so the
counts of a summary are sums of per-segment counts that are computed once and reused across candidates.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from summarizer.cache_lm import ORDER, match_counts, mixed_logprob
from summarizer.corpus_lm import CorpusLM

Segment = tuple[str, ...]
SUPPORT_SPAN = 3


@dataclass(frozen=True, slots=True)
class CriticParams:
    lam: float = 0.5     # weight of the cache in P(.|x): a token the cache misses costs log(1 - lam) nats
    beta: float = 1.0    # Dirichlet strength of each shorter context in the cache's interpolation
    order: int = ORDER


@dataclass(frozen=True, slots=True)
class Scores:
    faithfulness: float
    support: float
    saliency: float
    tokens: int


@dataclass(frozen=True, slots=True)
class Thresholds:
    faithfulness: float
    support: float
    saliency: float

    def passes(self, s: Scores) -> bool:
        return s.faithfulness >= self.faithfulness and s.support >= self.support and s.saliency >= self.saliency


class DocumentCritic:
    """Scores candidate summaries of one document, caching every per-segment quantity."""

    def __init__(self, doc: Sequence[Segment], lm: CorpusLM, params: CriticParams = CriticParams()) -> None:
        self.lm = lm
        self.params = params
        self._ids: dict[str, int] = {}
        doc_words = [w for seg in doc for w in seg]
        self.x = self._encode(doc_words)
        self.lc_x = lm.logprobs(doc_words)
        self.doc = list(doc)
        self.offsets = np.cumsum([0] + [len(seg) for seg in doc])
        self._sal: dict[tuple[Segment, int], np.ndarray] = {}
        self._faith: dict[Segment, tuple[np.ndarray, np.ndarray]] = {}
        # saliency runs from 0 (empty summary: every token costs log(1 - lam)) to 1 (every sentence predicting
        # the others, the most a summary can explain); a document whose sentences share nothing keeps scale 1
        self.empty = len(self.x) * float(np.log1p(-params.lam))
        whole = self._gain(sum(self.saliency_counts(seg, s) for s, seg in enumerate(doc))) if doc else self.empty
        self.norm = whole - self.empty if whole - self.empty > 1e-9 else 1.0

    def _encode(self, ws: Sequence[str]) -> np.ndarray:
        return np.array([self._ids.setdefault(w, len(self._ids)) for w in ws], dtype=np.int64)

    def _gain(self, counts: np.ndarray) -> float:
        p = self.params
        return float((mixed_logprob(counts, self.lc_x, p.lam, p.beta) - self.lc_x).sum())

    def saliency_counts(self, seg: Segment, source: int) -> np.ndarray:
        """The cache counts of x's contexts in one segment taken from sentence `source`; a summary's counts are the
        sum over its segments. The source sentence's own tokens get no counts from it: a sentence trivially
        predicts itself, and counting that would reward copying rare words instead of informing about the rest."""
        key = (seg, source)
        if key not in self._sal:
            counts = match_counts(self.x, self._encode(seg), self.params.order)
            counts[:, :, self.offsets[source]:self.offsets[source + 1]] = 0
            self._sal[key] = counts
        return self._sal[key]

    def saliency_of_counts(self, counts: np.ndarray) -> float:
        return (self._gain(counts) - self.empty) / self.norm

    def saliency(self, summary: Sequence[Segment], sources: Sequence[int]) -> float:
        if not summary:
            return self.saliency_of_counts(np.zeros((self.params.order + 1, 2, len(self.x)), dtype=np.int32))
        return self.saliency_of_counts(sum(self.saliency_counts(s, i) for s, i in zip(summary, sources, strict=True)))

    def segment_pmi(self, seg: Segment) -> tuple[np.ndarray, np.ndarray]:
        """Per-token PMI with x, and per-token support (inside a >= 3-token span found in x)."""
        if seg not in self._faith:
            p = self.params
            counts = match_counts(self._encode(seg), self.x, max(p.order, SUPPORT_SPAN - 1))
            lc = self.lm.logprobs(seg)
            pmi = mixed_logprob(counts[:p.order + 1], lc, p.lam, p.beta) - lc
            self._faith[seg] = (pmi, _supported(counts, len(seg)))
        return self._faith[seg]

    def score(self, summary: Sequence[Segment], sources: Sequence[int]) -> Scores:
        """Scores of a summary whose i-th segment comes from document sentence sources[i]."""
        parts = [self.segment_pmi(s) for s in summary if s]
        n = sum(len(pmi) for pmi, _ in parts)
        if n == 0:
            return Scores(0.0, 0.0, self.saliency([], []), 0)
        faith = float(sum(pmi.sum() for pmi, _ in parts) / n)
        support = float(sum(sup.sum() for _, sup in parts) / n)
        return Scores(faith, support, self.saliency(summary, sources), n)


def _supported(counts: np.ndarray, n: int) -> np.ndarray:
    """counts[k, 1, i] > 0 iff the k + 1 tokens ending at i occur in x; a token is supported when some occurring
    span of SUPPORT_SPAN tokens covers it (a segment shorter than that must occur whole)."""
    span = SUPPORT_SPAN
    if n < span:
        whole = n > 0 and counts[n - 1, 1, n - 1] > 0
        return np.full(n, whole, dtype=bool)
    ends = counts[span - 1, 1, :] > 0
    covered = np.zeros(n, dtype=bool)
    for back in range(span):
        covered[:n - back] |= ends[back:]
    return covered
