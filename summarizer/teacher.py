"""The weight-free teacher: sentence subsets under the budget from several generators (beam search on marginal
saliency with trigram blocking, from nothing and from the first sentence; the document's leading sentences), and
compressions of the chosen sentences; every candidate is scored by the critics, which alone decide."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from summarizer import compress
from summarizer.critics import DocumentCritic, Scores, Segment, Thresholds


@dataclass(frozen=True, slots=True)
class Candidate:
    picks: tuple[int, ...]                              # sentence numbers, in document order
    deletions: tuple[tuple[int, compress.Deletion], ...]  # (sentence number, deletion)
    segments: tuple[Segment, ...]
    scores: Scores


def trigrams(seg: Segment) -> set[tuple[str, ...]]:
    return {tuple(seg[i:i + 3]) for i in range(len(seg) - 2)}


def candidate(critic: DocumentCritic, doc: Sequence[Segment], picks: Sequence[int],
               dels: Sequence[tuple[int, compress.Deletion]] = ()) -> Candidate:
    by_sentence: dict[int, list[compress.Deletion]] = {}
    for s, d in dels:
        by_sentence.setdefault(s, []).append(d)
    order = tuple(sorted(picks))
    segs = tuple(compress.apply(doc[s], by_sentence.get(s, [])) for s in order)
    return Candidate(order, tuple(dels), segs, critic.score(segs, order))


def beam_subsets(critic: DocumentCritic, doc: Sequence[Segment], budget: int, beam: int = 4,
                 keep: int = 12, start: tuple[int, ...] = ()) -> list[Candidate]:
    """Subsets grown one sentence at a time from `start`, each step keeping the `beam` best by saliency; a sentence
    sharing a trigram with the subset is blocked (it would repeat, not add, information)."""
    counts = [critic.saliency_counts(seg, s) for s, seg in enumerate(doc)]
    grams = [trigrams(seg) for seg in doc]
    if not counts or sum(len(doc[s]) for s in start) > budget:
        return []
    total0 = sum((counts[s] for s in start), np.zeros_like(counts[0]))
    states: list[tuple[float, tuple[int, ...], np.ndarray, int]] = [
        (0.0, start, total0, sum(len(doc[s]) for s in start))]
    pool: dict[tuple[int, ...], float] = {start: critic.saliency_of_counts(total0)} if start else {}
    pool: dict[tuple[int, ...], float] = {}
    while states:
        grown: dict[tuple[int, ...], tuple[float, tuple[int, ...], np.ndarray, int]] = {}
        for _, picks, total, used in states:
            seen = set().union(*(grams[p] for p in picks)) if picks else set()
            for s, seg in enumerate(doc):
                key = tuple(sorted((*picks, s)))
                if s in picks or key in grown or used + len(seg) > budget or grams[s] & seen:
                    continue
                c = total + counts[s]
                grown[key] = (critic.saliency_of_counts(c), key, c, used + len(seg))
        states = sorted(grown.values(), key=lambda t: -t[0])[:beam]
        pool.update((key, sal) for sal, key, _, _ in states)
    best = sorted(pool, key=lambda k: -pool[k])[:keep]
    return [candidate(critic, doc, picks) for picks in best]


def lead_subsets(critic: DocumentCritic, doc: Sequence[Segment], budget: int) -> list[Candidate]:
    """The document's first k sentences, for every k that fits: writers of news, abstracts and e-mails often put
    the point first, and a prefix of the document is coherent by construction. Only a generator: the critics still
    judge these against every other candidate."""
    out, used = [], 0
    for s, seg in enumerate(doc):
        if used + len(seg) > budget:
            break
        used += len(seg)
        out.append(candidate(critic, doc, range(s + 1)))
    return out


def subsets(critic: DocumentCritic, doc: Sequence[Segment], budget: int) -> list[Candidate]:
    """Every generator's candidates, once each, best saliency first."""
    found: dict[tuple[int, ...], Candidate] = {}
    for c in (*beam_subsets(critic, doc, budget), *beam_subsets(critic, doc, budget, keep=6, start=(0,)),
              *lead_subsets(critic, doc, budget)):
        found.setdefault(c.picks, c)
    return sorted(found.values(), key=lambda c: -c.scores.saliency)


def best(candidates: Sequence[Candidate], thresholds: Thresholds) -> Candidate | None:
    """The teacher's answer: the most salient candidate that clears every critic (None when none does)."""
    return max((c for c in candidates if thresholds.passes(c.scores)), key=lambda c: c.scores.saliency, default=None)


def compressions(critic: DocumentCritic, doc: Sequence[Segment], base: Candidate) -> list[Candidate]:
    """One deletion at a time in each chosen sentence: the critics judge each compression on its own."""
    out = []
    for s in base.picks:
        for d in compress.deletions(doc[s]):
            out.append(candidate(critic, doc, base.picks, (*base.deletions, (s, d))))
    return out
