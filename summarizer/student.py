"""The student: a one-hidden-layer network scoring sentences, a logistic head scoring deletions, both trained with
soft labels from the candidates that survived the critics, and selection under the budget (greedy, or a small
knapsack search over the best-scored sentences before the greedy fill)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations

import numpy as np

from summarizer import compress
from summarizer.critics import Segment

HIDDEN = 16
# function words: a trigram of these ("one of the", "the u.s .", "' s") repeats in any two sentences about anything
_STOP = frozenset("a an the of to in on at for from by with as and or but nor so if than that this these those "
                  "is are was were be been being has have had do does did will would can could may might must shall "
                  "should it its he she they we you i his her their our your him them us me who which what when where "
                  "how not no s said says also about after before into over up out more most".split())


@dataclass
class Net:
    """Standardised features -> tanh hidden layer -> logit."""

    mean: np.ndarray
    std: np.ndarray
    w1: np.ndarray
    b1: np.ndarray
    w2: np.ndarray
    b2: np.ndarray

    @classmethod
    def init(cls, features: np.ndarray, hidden: int, rng: np.random.Generator) -> Net:
        d = features.shape[1]
        mean, std = features.mean(0), features.std(0) + 1e-6
        return cls(mean, std, rng.normal(0, 1 / np.sqrt(d), (d, hidden)), np.zeros(hidden),
                   rng.normal(0, 1 / np.sqrt(hidden), hidden), np.zeros(1))

    def _hidden(self, z: np.ndarray) -> np.ndarray:
        return np.tanh(z @ self.w1 + self.b1)

    def logits(self, features: np.ndarray) -> np.ndarray:
        return self._hidden((features - self.mean) / self.std) @ self.w2 + self.b2[0]

    def arrays(self) -> list[np.ndarray]:
        return [self.mean, self.std, self.w1, self.b1, self.w2, self.b2]


def train(features: np.ndarray, targets: np.ndarray, weights: np.ndarray, *, hidden: int = HIDDEN,
          epochs: int = 400, lr: float = 0.02, l2: float = 1e-4, seed: int = 0,
          net: Net | None = None) -> tuple[Net, list[float]]:
    """Full-batch Adam on the weighted cross-entropy with soft targets in [0, 1]; returns the loss per epoch."""
    rng = np.random.default_rng(seed)
    net = net or Net.init(features, hidden, rng)
    z = (features - net.mean) / net.std
    params = [net.w1, net.b1, net.w2, net.b2]
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    wsum = weights.sum()
    losses = []
    for step in range(1, epochs + 1):
        h = net._hidden(z)
        logit = h @ net.w2 + net.b2[0]
        p = 1 / (1 + np.exp(-logit))
        eps = 1e-9
        loss = -(weights * (targets * np.log(p + eps) + (1 - targets) * np.log(1 - p + eps))).sum() / wsum
        losses.append(float(loss + l2 * sum((q ** 2).sum() for q in params)))
        g_logit = weights * (p - targets) / wsum
        g_w2, g_b2 = h.T @ g_logit, np.array([g_logit.sum()])
        g_pre = np.outer(g_logit, net.w2) * (1 - h ** 2)
        grads = [z.T @ g_pre, g_pre.sum(0), g_w2, g_b2]
        for i, (q, g) in enumerate(zip(params, grads, strict=True)):
            g = g + 2 * l2 * q
            m[i] = 0.9 * m[i] + 0.1 * g
            v[i] = 0.999 * v[i] + 0.001 * g * g
            q -= lr * (m[i] / (1 - 0.9 ** step)) / (np.sqrt(v[i] / (1 - 0.999 ** step)) + 1e-8)
    return net, losses


@dataclass(frozen=True, slots=True)
class Selection:
    picks: tuple[int, ...]                                  # sentence numbers in document order
    deletions: tuple[tuple[int, compress.Deletion], ...]
    truncated: int | None = None                            # words kept when one sentence had to be cut


def content_trigrams(seg: Segment) -> set[tuple[str, ...]]:
    """The sentence's trigrams of words (no punctuation) with at least two content words: sharing one of these is
    repetition of content, while sharing "one of the" or ", " said" is only shared grammar."""
    grams = (tuple(seg[i:i + 3]) for i in range(len(seg) - 2))
    return {g for g in grams if all(w.isalnum() for w in g) and sum(w not in _STOP for w in g) >= 2}


def select(doc: Sequence[Segment], scores: np.ndarray, budget: int,
           deletions: dict[int, list[compress.Deletion]] | None = None, *, search: int = 0,
           temperature: float = 0.5, allow_wordless: bool = True) -> Selection:
    """Best-scored sentences (compressed where `deletions` says) that fit the budget, skipping any that repeats a
    content trigram already chosen (redundancy control); when not even one fits, the best one cut to the budget.
    With `allow_wordless` False, a segment with no word ("...", a lone quote mark) is never chosen unless none has one:
    it says nothing to a reader. (Distillation keeps them as candidates: its model was built that way, and
    re-distilling without them scored lower on every tuning block, see README.)

    With `search` = 0, greedy by score. With `search` = K > 0, the budget is first filled as a knapsack over the K
    best-scored sentences: of their subsets that fit and repeat no content trigram among themselves, the one with
    the most value, a sentence's value being its length times exp(score / `temperature`) (score per token, so a
    sentence that uses more of the budget with a similar score wins); what budget is left is then filled greedily."""
    deletions = deletions or {}
    lengths = [len(seg) - sum(d.end - d.start for d in deletions.get(i, [])) for i, seg in enumerate(doc)]
    order = [int(i) for i in np.argsort(-scores, kind="stable")]
    if not allow_wordless:
        order = [i for i in order if any(c.isalnum() for w in doc[i] for c in w)] or order
    grams: dict[int, set[tuple[str, ...]]] = {}
    chosen: list[int] = []
    if search > 0 and len(doc):
        top = order[:search]
        for i in top:
            grams[i] = content_trigrams(doc[i])
        value = {i: lengths[i] * float(np.exp((scores[i] - scores[top[0]]) / temperature)) for i in top}
        best, best_value = (), 0.0
        for r in range(1, len(top) + 1):
            for subset in combinations(top, r):
                if sum(lengths[i] for i in subset) > budget:
                    continue
                v = sum(value[i] for i in subset)
                if v > best_value and not any(grams[a] & grams[b] for a, b in combinations(subset, 2)):
                    best, best_value = subset, v
        chosen = list(best)
    seen: set[tuple[str, ...]] = set()
    for i in chosen:
        seen |= grams[i]
    used = sum(lengths[i] for i in chosen)
    for i in order:
        if i in chosen or used + lengths[i] > budget:
            continue
        g = grams[i] if i in grams else content_trigrams(doc[i])
        if not g & seen:
            chosen.append(i)
            seen |= g
            used += lengths[i]
    if not chosen and len(doc):
        best_one = order[0]
        return Selection((best_one,), (), min(budget, len(doc[best_one])))
    dels = tuple((i, d) for i in sorted(chosen) for d in deletions.get(i, []))
    return Selection(tuple(sorted(chosen)), dels)


def sample(doc: Sequence[Segment], scores: np.ndarray, budget: int, temperature: float,
           rng: np.random.Generator) -> Selection:
    """A stochastic proposal: Gumbel noise on the scores, then the same greedy selection."""
    return select(doc, scores + temperature * rng.gumbel(size=len(scores)), budget)
