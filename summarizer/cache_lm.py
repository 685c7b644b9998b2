"""The cache model: ∞-gram counts of a query's contexts inside a small cache text (the document or a summary).

Why not a suffix array: the caches here are one document (hundreds to a few thousand tokens) and the queries are
a summary or the document itself, so the exact matching statistics are cheapest as vectorised equality tests:
E_t[i, p] = (query[i-t] == cache[p-t]). ANDing E_1..E_k gives, for every query position i and cache position p,
whether the k tokens before i equal the k tokens before p, which yields the counts at *every* suffix length at
once (a suffix array answers one length per search). Counts of disjoint caches add up, so the counts of a set of
sentences are sums of per-sentence counts: the teacher scores thousands of subsets without rescanning.
"""

from __future__ import annotations

import numpy as np

ORDER = 6          # longest context the cache matches (a 7-gram); longer matches change nothing in practice
_ROWS = 1024       # query rows per block, so a long document against itself stays within a few MB


def match_counts(query: np.ndarray, cache: np.ndarray, order: int = ORDER) -> np.ndarray:
    """counts[k, 0, i]: cache positions whose k preceding tokens equal query[i-k:i] (the prompt count);
    counts[k, 1, i]: those among them where the cache continues with query[i] (the continuation count).

    Contexts never reach before the start of the query or of the cache (k = 0 is the cache unigram).
    """
    m, n = len(query), len(cache)
    counts = np.zeros((order + 1, 2, m), dtype=np.int32)
    if m == 0 or n == 0:
        return counts
    # distinct negative pads never equal each other nor a real id, so contexts stop at either start
    q = np.concatenate([np.full(order, -1, np.int64), query.astype(np.int64)])
    c = np.concatenate([np.full(order, -2, np.int64), cache.astype(np.int64)])
    for lo in range(0, m, _ROWS):
        hi = min(m, lo + _ROWS)
        same_next = q[order + lo:order + hi, None] == c[None, order:]
        counts[0, 0, lo:hi] = n
        counts[0, 1, lo:hi] = same_next.sum(1)
        alive = np.ones((hi - lo, n), dtype=bool)
        for t in range(1, order + 1):
            alive &= q[order + lo - t:order + hi - t, None] == c[None, order - t:order - t + n]
            if not alive.any():
                break
            counts[t, 0, lo:hi] = alive.sum(1)
            counts[t, 1, lo:hi] = (alive & same_next).sum(1)
    return counts


def cache_prob(counts: np.ndarray, beta: float) -> np.ndarray:
    """P_cache(query[i] | context) interpolated over all matched suffix lengths.

    P_0 = c_0(w) / n (the cache unigram), P_k = (c_k(h_k w) + beta * P_{k-1}) / (c_k(h_k) + beta): each longer
    context moves the estimate towards what followed it in the cache, in proportion to how often it occurred
    there (a Dirichlet prior centred on the shorter context). Zero for a word the cache never contains.
    """
    # one suffix length at a time: a whole document's per-sentence counts in float64 would be GBs
    prompt, cont = counts[0, 0].astype(np.float64), counts[0, 1].astype(np.float64)
    p = np.divide(cont, prompt, out=np.zeros_like(cont), where=prompt > 0)
    for k in range(1, counts.shape[0]):
        p = (counts[k, 1] + beta * p) / (counts[k, 0] + beta)
    return p


def mixed_logprob(counts: np.ndarray, base_logprob: np.ndarray, lam: float, beta: float) -> np.ndarray:
    """log P(w | h; cache) = log((1 - lam) P_C(w | h) + lam P_cache(w | h)), never -inf since P_C > 0."""
    return np.logaddexp(np.log1p(-lam) + base_logprob, np.log(lam) + np.log(np.maximum(cache_prob(counts, beta),
                                                                                          1e-300)))


def equal_pairs(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every pair of positions (i, p) with x[i] == x[p], built group by group from the sorted tokens: as many as
    equal_pair_count(x), where comparing all against all would hold len(x)**2 booleans."""
    order = np.argsort(x, kind="stable")
    xs = x[order]
    starts = np.flatnonzero(np.concatenate([[True], xs[1:] != xs[:-1]])) if len(x) else np.zeros(0, np.int64)
    sizes = np.diff(np.append(starts, len(x)))
    size_of = np.repeat(sizes, sizes)                   # per sorted position: the size of its group
    qi = np.repeat(order, size_of)
    block = np.repeat(np.cumsum(size_of) - size_of, size_of)    # where each position's run of pairs begins
    cp = order[np.repeat(np.repeat(starts, sizes), size_of) + np.arange(len(qi)) - block]
    return qi, cp


def equal_pair_count(x: np.ndarray) -> int:
    counts = np.unique(x, return_counts=True)[1].astype(np.int64)
    return int((counts * counts).sum())


def sentence_counts(x: np.ndarray, lengths: np.ndarray, order: int = ORDER) -> tuple[np.ndarray, np.ndarray]:
    """The counts of every sentence of a document as a cache, for every query position of the document at once.

    x is the document's tokens, lengths its sentences' lengths. Returns (open, closed), each [k, 0|1, i, s] (int16
    unless a sentence has 2**15 tokens or more): the prompt/continuation counts of x's context at position i in
    sentence s taken alone as the cache (contexts restart at the cache sentence's start, as match_counts(x,
    sentence) would give). In `open` the query's contexts run back across sentence boundaries to the document start
    (match_counts(x, sentence)); in `closed` they restart at the query's own sentence (match_counts(sentence_i,
    sentence_s)).

    Why: critics need one cache per sentence, and ~40 small match_counts calls per document cost more than the
    whole comparison. Equal tokens are sparse, so the pairs (i, p) whose contexts match are listed once at k = 1
    and filtered as k grows, then counted per cache sentence with bincount.
    """
    m, n_sent = len(x), len(lengths)
    # a count never exceeds its cache sentence's length: int16 halves the largest arrays of a long document
    dtype = np.int16 if n_sent == 0 or int(lengths.max()) < 2 ** 15 else np.int32
    opened = np.zeros((order + 1, 2, m, n_sent), dtype=dtype)
    closed = np.zeros_like(opened)
    if m == 0:
        return opened, closed
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    sent = np.repeat(np.arange(n_sent), lengths)
    pos = np.arange(m) - np.repeat(starts, lengths)       # position inside its sentence
    size = m * n_sent

    def count(keys: np.ndarray) -> np.ndarray:
        return np.bincount(keys, minlength=size).reshape(m, n_sent)

    qi, cp = equal_pairs(x)                              # pairs of equal tokens: query i, cache p
    opened[0, 0] = lengths[None, :]
    opened[0, 1] = count(qi * n_sent + sent[cp])
    closed[0] = opened[0]
    # k = 1: x[i-1] == x[p-1], i.e. the equal pairs shifted by one, the cache context inside p's sentence
    i, p = qi + 1, cp + 1
    keep = (i < m) & (p < m)
    i, p = i[keep], p[keep]
    for t in range(1, order + 1):
        keep = pos[p] >= t
        if t > 1:
            keep &= (i >= t) & (x[np.maximum(i - t, 0)] == x[np.maximum(p - t, 0)])
        i, p = i[keep], p[keep]
        if len(i) == 0:
            break
        same = x[i] == x[p]
        keys = i * n_sent + sent[p]
        opened[t, 0], opened[t, 1] = count(keys), count(keys[same])
        own = pos[i] >= t
        closed[t, 0], closed[t, 1] = count(keys[own]), count(keys[own & same])
    return opened, closed
