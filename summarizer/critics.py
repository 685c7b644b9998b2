"""The three critics of a candidate summary y of a document x (see README, "Summarizer").

- faithfulness: mean over y's tokens of log P(y_i | y_<i; x) - log P_C(y_i | y_<i), the pointwise mutual
  information of each token with the document, where P(.|x) mixes P_C with the cache model over x;
- support: share of y's tokens inside a span of >= 3 tokens that occurs verbatim in x;
- saliency: G(y) = sum_j log P(x_j | x_<j; y) - log P_C(x_j | x_<j), how much knowing y helps predict x, each
  sentence of y barred from predicting itself; reported as (G(y) - G(empty)) / (G(x) - G(empty));
- coherence: minus the mean over y's tokens of log P(y_i | y_<i; x before y_i's sentence) - log P(y_i | y_<i; the
  summary before that segment): what each summary sentence leans on in the text that preceded it in x but that the
  summary does not carry (a referent introduced in a sentence left out); 0 when the summary carries it all;
- brevity is a hard budget, enforced by whoever builds the candidates.

A summary is a list of segments (its sentences, whole or compressed); contexts restart at each segment, so the
counts of a summary are sums of per-segment counts that are computed once and reused across candidates.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from summarizer.cache_lm import ORDER, equal_pair_count, match_counts, mixed_logprob, sentence_counts
from summarizer.corpus_lm import CorpusLM

Segment = tuple[str, ...]
_SENTENCE_BLOCK = 64  # cache sentences per block where every sentence is scored as a summary at once
SUPPORT_SPAN = 3


# Every sentence is a cache for every token: the counts take ~56 bytes per (token, sentence) cell and ~50 per pair
# of equal tokens. The longest dev documents (PubMed papers) reach 8,420,636 cells and 2,005,436 pairs; a text cut
# into thousands of tiny sentences, or one word repeated, would take GBs within the character limit.
MAX_CELLS = 10_000_000
MAX_PAIRS = 5_000_000


class DocumentTooLargeError(ValueError):
    """The document would cost the critics more memory than MAX_CELLS or MAX_PAIRS allow."""


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
    coherence: float = 0.0


@dataclass(frozen=True, slots=True)
class Thresholds:
    faithfulness: float
    support: float
    saliency: float
    coherence: float = -np.inf

    def passes(self, s: Scores) -> bool:
        return (s.faithfulness >= self.faithfulness and s.support >= self.support and s.saliency >= self.saliency
                and s.coherence >= self.coherence)


class DocumentCritic:
    """Scores candidate summaries of one document, caching every per-segment quantity."""

    def __init__(self, doc: Sequence[Segment], lm: CorpusLM, params: CriticParams = CriticParams(), *,
                 _counts: tuple[np.ndarray, np.ndarray] | None = None) -> None:
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
        self._before: dict[tuple[Segment, int], float] = {}
        self._pairs: dict[tuple[Segment, Segment], np.ndarray] = {}
        self._lc: dict[Segment, np.ndarray] = {}
        self._number = {seg: s for s, seg in reversed(list(enumerate(self.doc)))}
        lengths = np.array([len(seg) for seg in self.doc], dtype=np.int64)
        if _counts is None:
            _check_size(self.x, len(self.doc))
            # every whole sentence as a cache, against x (open) and against each sentence (closed), in one pass
            _counts = sentence_counts(self.x, lengths, params.order)
        self._open, self._closed = _counts
        self._own = np.repeat(np.arange(len(self.doc)), lengths)   # the sentence number of each token of x
        # saliency runs from 0 (empty summary: every token costs log(1 - lam)) to 1 (every sentence predicting
        # the others, the most a summary can explain); a document whose sentences share nothing keeps scale 1
        self.empty = len(self.x) * float(np.log1p(-params.lam))
        if doc:
            whole = self._gain(self._open.sum(3) - self._open[:, :, np.arange(len(self.x)), self._own])
        else:
            whole = self.empty
        self.norm = whole - self.empty if whole - self.empty > 1e-9 else 1.0

    def with_lm(self, lm: CorpusLM) -> DocumentCritic:
        """The same document judged against another corpus LM. The cache counts depend on the document alone and
        are the quadratic part, so they are shared (never written to) instead of counted again."""
        return DocumentCritic(self.doc, lm, self.params, _counts=(self._open, self._closed))

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
            s = self._number.get(seg)
            # int32: the sentence counts are int16, and a summary's are a sum over its segments
            counts = (self._open[:, :, :, s].astype(np.int32) if s is not None
                      else match_counts(self.x, self._encode(seg), self.params.order))
            counts[:, :, self.offsets[source]:self.offsets[source + 1]] = 0
            self._sal[key] = counts
        return self._sal[key]

    def saliency_of_counts(self, counts: np.ndarray) -> float:
        return (self._gain(counts) - self.empty) / self.norm

    def sentence_saliencies(self) -> np.ndarray:
        """saliency([sentence s], [s]) for every sentence at once (the student's features need them all)."""
        n_sent = len(self.doc)
        if n_sent == 0:
            return np.zeros(0)
        p = self.params
        own = self._own
        gains = np.zeros(n_sent)
        # a block of cache sentences at a time: a copy of all of them is as large as the counts themselves
        for lo in range(0, n_sent, _SENTENCE_BLOCK):
            hi = min(n_sent, lo + _SENTENCE_BLOCK)
            counts = self._open[:, :, :, lo:hi].copy()
            mine = (own >= lo) & (own < hi)
            counts[:, :, np.flatnonzero(mine), own[mine] - lo] = 0
            mixed = mixed_logprob(counts, self.lc_x[:, None], p.lam, p.beta)
            gains[lo:hi] = (mixed - self.lc_x[:, None]).sum(0)
        return (gains - self.empty) / self.norm

    def sentence_dependence(self) -> np.ndarray:
        """context_loss([sentence s], [s]) / its length for every sentence at once: nats per token that the
        sentence gains from the sentences before it, i.e. how much it leans on context."""
        if not self.doc:
            return np.zeros(0)
        lengths = np.diff(self.offsets)
        counts = np.concatenate([self._closed_before(s, s) for s in range(len(self.doc))], axis=2)
        lc = np.concatenate([self._corpus_logprobs(seg) for seg in self.doc])
        p = self.params
        gain = mixed_logprob(counts, lc, p.lam, p.beta) - (np.log1p(-p.lam) + lc)
        return np.add.reduceat(gain, self.offsets[:-1]) / np.maximum(lengths, 1)

    def saliency(self, summary: Sequence[Segment], sources: Sequence[int]) -> float:
        if not summary:
            return self.saliency_of_counts(np.zeros((self.params.order + 1, 2, len(self.x)), dtype=np.int32))
        return self.saliency_of_counts(sum(self.saliency_counts(s, i) for s, i in zip(summary, sources, strict=True)))

    def segment_pmi(self, seg: Segment) -> tuple[np.ndarray, np.ndarray]:
        """Per-token PMI with x, and per-token support (inside a >= 3-token span found in x)."""
        if seg not in self._faith:
            p = self.params
            counts = match_counts(self._encode(seg), self.x, max(p.order, SUPPORT_SPAN - 1))
            lc = self._corpus_logprobs(seg)
            pmi = mixed_logprob(counts[:p.order + 1], lc, p.lam, p.beta) - lc
            self._faith[seg] = (pmi, _supported(counts, len(seg)))
        return self._faith[seg]

    def _corpus_logprobs(self, seg: Segment) -> np.ndarray:
        if seg not in self._lc:
            self._lc[seg] = self.lm.logprobs(seg)
        return self._lc[seg]

    def _closed_before(self, s: int, source: int) -> np.ndarray:
        """[k, c, i]: the counts of the contexts of sentence s's tokens (restarting at s) in all the sentences before
        sentence `source`, summed when asked: a running sum over all sentences would be as large as the counts."""
        rows = slice(self.offsets[s], self.offsets[s + 1])
        return self._closed[:, :, rows, :source].sum(axis=3, dtype=np.int32)

    def _context_logprob(self, seg: Segment, counts: np.ndarray) -> float:
        p = self.params
        return float(mixed_logprob(counts, self._corpus_logprobs(seg), p.lam, p.beta).sum())

    def context_before(self, seg: Segment, source: int) -> float:
        """Sum of log P(seg_i | seg_<i; cache = the sentences of x before sentence `source`, each a cache of its
        own as the summary's segments are): how well what preceded it in the document predicts the segment."""
        key = (seg, source)
        if key not in self._before:
            s = self._number.get(seg)
            if s is not None:
                counts = self._closed_before(s, source)
            else:
                counts = sum((self._pair_counts(seg, self.doc[j]) for j in range(source)),
                             np.zeros((self.params.order + 1, 2, len(seg)), dtype=np.int32))
            self._before[key] = self._context_logprob(seg, counts)
        return self._before[key]

    def _pair_counts(self, seg: Segment, other: Segment) -> np.ndarray:
        key = (seg, other)
        if key not in self._pairs:
            s, o = self._number.get(seg), self._number.get(other)
            if s is not None and o is not None:
                self._pairs[key] = self._closed[:, :, self.offsets[s]:self.offsets[s + 1], o]
            else:
                self._pairs[key] = match_counts(self._encode(seg), self._encode(other), self.params.order)
        return self._pairs[key]

    def context_loss(self, summary: Sequence[Segment], sources: Sequence[int]) -> float:
        """Total nats by which each segment is better predicted by the document before its sentence than by the
        summary before it (segments in document order): the context a reader of the summary alone is missing.
        A prefix of the document loses nothing; a sentence whose referents were introduced in sentences left out
        loses the most. Clipped at 0 per segment: a summary never lacks more than the document had."""
        order = sorted(range(len(summary)), key=lambda k: sources[k])
        loss = 0.0
        for pos, k in enumerate(order):
            seg = summary[k]
            if not seg:
                continue
            before = [summary[j] for j in order[:pos] if summary[j]]
            counts = sum((self._pair_counts(seg, o) for o in before),
                         np.zeros((self.params.order + 1, 2, len(seg)), dtype=np.int32))
            loss += max(0.0, self.context_before(seg, sources[k]) - self._context_logprob(seg, counts))
        return loss

    def score(self, summary: Sequence[Segment], sources: Sequence[int]) -> Scores:
        """Scores of a summary whose i-th segment comes from document sentence sources[i]."""
        parts = [self.segment_pmi(s) for s in summary if s]
        n = sum(len(pmi) for pmi, _ in parts)
        if n == 0:
            return Scores(0.0, 0.0, self.saliency([], []), 0)
        faith = float(sum(pmi.sum() for pmi, _ in parts) / n)
        support = float(sum(sup.sum() for _, sup in parts) / n)
        return Scores(faith, support, self.saliency(summary, sources), n, -self.context_loss(summary, sources) / n)


def _check_size(x: np.ndarray, n_sentences: int) -> None:
    cells = len(x) * n_sentences
    if cells > MAX_CELLS:
        raise DocumentTooLargeError(
            f"{len(x):,} tokens in {n_sentences:,} sentences: the critics compare every token with every sentence, "
            f"{cells:,} pairs, and the limit is {MAX_CELLS:,} (the longest paper of the dev set has 8,420,636); "
            "a text cut into very many short sentences reaches it first")
    pairs = equal_pair_count(x)
    if pairs > MAX_PAIRS:
        raise DocumentTooLargeError(
            f"{len(x):,} tokens that repeat so much that {pairs:,} pairs of equal tokens would be compared, and the "
            f"limit is {MAX_PAIRS:,} (the longest paper of the dev set has 2,005,436)")


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
