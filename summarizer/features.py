"""Sentence and deletion features for the student, computed from the document and the model's stored word
statistics only, so they are the same with or without a corpus index."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

from summarizer.compress import RULES, Deletion
from summarizer.corpus_lm import Unigram
from summarizer.critics import DocumentCritic, Segment

SENTENCE_FEATURES = ("position", "inverse_position", "first", "lead3", "length", "log_length", "surprisal",
                     "recurrence", "centrality", "first_overlap", "saliency", "saliency_rank", "quote", "digits",
                     "question", "doc_sentences", "dependence", "graph_centrality")
DELETION_FEATURES = (*RULES, "share", "length", "start", "surprisal_gap", "sentence_length")


def _idf(unigram: Unigram, word: str) -> float:
    # surprisal under the stored unigram stands in for idf: rare words carry the content
    return -unigram.logprob(word)


def graph_centrality(vecs: Sequence[Counter[str]], weight: dict[str, float], threshold: float = 0.1,
                     damping: float = 0.85, steps: int = 50) -> np.ndarray:
    """Eigenvector centrality of each sentence in the graph linking sentences whose weighted content-word vectors
    have cosine above `threshold` (LexRank's graph): high for the sentences most of the text is about, which in
    scientific writing is the claim rather than the opening background. Scaled so the mean is 1."""
    n = len(vecs)
    ids = {w: k for k, w in enumerate(sorted({w for v in vecs for w in v}))}
    if n < 2 or not ids:
        return np.ones(n)
    m = np.zeros((n, len(ids)))
    for i, v in enumerate(vecs):
        for w, c in v.items():
            m[i, ids[w]] = c * weight[w]
    norms = np.linalg.norm(m, axis=1, keepdims=True)
    m = np.divide(m, norms, out=np.zeros_like(m), where=norms > 0)
    adj = (m @ m.T > threshold).astype(float)
    np.fill_diagonal(adj, 1.0)  # as LexRank: each sentence is similar to itself (an isolated one keeps its mass)
    trans = adj / adj.sum(1, keepdims=True)
    p = np.full(n, 1.0 / n)
    for _ in range(steps):
        p = (1 - damping) / n + damping * (p @ trans)
    return p * n


def sentence_features(doc: Sequence[Segment], unigram: Unigram, critic: DocumentCritic) -> np.ndarray:
    n = len(doc)
    feats = np.zeros((n, len(SENTENCE_FEATURES)))
    if n == 0:
        return feats
    doc_counts = Counter(w for seg in doc for w in seg)
    weight = {w: _idf(unigram, w) for w in doc_counts}
    content = {w for w in doc_counts if w.isalnum() and weight[w] > 7.0}  # ~ outside the 1,000 commonest words
    vecs = []
    for seg in doc:
        c = Counter(w for w in seg if w in content)
        vecs.append(c)
    doc_vec = Counter(w for seg in doc for w in seg if w in content)
    first = set(vecs[0])
    sal = critic.sentence_saliencies()
    ranks = np.argsort(np.argsort(-sal))
    # nats per token the sentence gains from the text before it: how much it leans on context (the coherence
    # critic's loss when it is picked without what came before)
    dependence = critic.sentence_dependence()
    graph = graph_centrality(vecs, weight)
    # the rest of the document's weighted counts, squared, in doc_vec's order: each sentence changes only its own
    # words' terms, and a cumulative sum adds them in the same order as a sum over the rest would (same value to
    # the bit) without rebuilding the rest, which cost sentences x distinct words in Python
    column = {w: j for j, w in enumerate(doc_vec)}
    whole_sq = np.array([(c * weight[w]) ** 2 for w, c in doc_vec.items()])
    for i, (seg, vec) in enumerate(zip(doc, vecs, strict=True)):
        rest = {w: doc_vec[w] - c for w, c in vec.items()}       # the sentence's words, in the rest of the text
        dot = sum(vec[w] * rest[w] * weight[w] ** 2 for w in vec)
        rest_sq = whole_sq.copy()
        for w, c in rest.items():
            rest_sq[column[w]] = (c * weight[w]) ** 2
        norm = np.sqrt(sum((vec[w] * weight[w]) ** 2 for w in vec) * (np.cumsum(rest_sq)[-1] if len(rest_sq) else 0))
        surprisal = float(np.mean([weight[w] for w in seg]))
        recurrence = sum(weight[w] * np.log1p(rest[w]) for w in vec) / max(1, len(seg))
        overlap = len(first & set(vec)) / max(1, len(set(vec))) if i else 1.0
        feats[i] = (i / max(1, n - 1), 1.0 / (i + 1), i == 0, i < 3, len(seg) / 30, np.log1p(len(seg)), surprisal,
                    recurrence, dot / norm if norm > 0 else 0.0, overlap, sal[i], ranks[i] / max(1, n - 1),
                    '"' in seg or "''" in seg, sum(w.isdigit() for w in seg) / len(seg), seg[-1] == "?", np.log1p(n),
                    dependence[i], graph[i])
    return feats


def deletion_features(words: Segment, d: Deletion, unigram: Unigram) -> np.ndarray:
    span = words[d.start:d.end]
    s_sur = np.mean([_idf(unigram, w) for w in words])
    d_sur = np.mean([_idf(unigram, w) for w in span])
    onehot = [float(d.rule == r) for r in RULES]
    return np.array([*onehot, len(span) / len(words), len(span) / 10, d.start / len(words), d_sur - s_sur,
                     len(words) / 30])
