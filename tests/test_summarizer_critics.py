"""Critic formulas against values computed by hand on tiny documents and a tiny word-level index."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from summarizer import critics
from summarizer.cache_lm import cache_prob, equal_pair_count, equal_pairs, match_counts, sentence_counts
from summarizer.corpus_lm import InfiniGram, Unigram
from summarizer.critics import CriticParams, DocumentCritic, DocumentTooLargeError, Thresholds
from summarizer.word_index import build_word_index

LAM, BETA = 0.5, 1.0
UNI = Unigram(["a", "b", "c", "d"], np.array([3, 2, 1, 1]), 7)   # P(w) = (c(w) + 1) / 12


def p_uni(w: str) -> float:
    return {"a": 4, "b": 3, "c": 2, "d": 2}.get(w, 1) / 12


def gain(words: str, p_cache: list[float]) -> float:
    return sum(math.log((1 - LAM) * p_uni(w) + LAM * pc) - math.log(p_uni(w)) for w, pc in zip(words.split(),
                                                                                                  p_cache, strict=True))


def test_match_counts_and_interpolation_by_hand() -> None:
    q, c = np.array([1, 2, 3]), np.array([1, 2, 3, 1, 2, 4])
    counts = match_counts(q, c, 2)
    assert counts[:, 0, :].tolist() == [[6, 6, 6], [0, 2, 2], [0, 0, 2]]   # prompt counts per suffix length
    assert counts[:, 1, :].tolist() == [[2, 2, 1], [0, 2, 1], [0, 0, 1]]   # continuation counts
    # P_0 = 2/6, P_1(b | a) = (2 + 1/3) / 3, P_2(c | a b) = (1 + (1 + 1/6) / 3) / 3
    assert cache_prob(counts, BETA) == pytest.approx([1 / 3, 7 / 9, 25 / 54])


def test_saliency_by_hand() -> None:
    doc = [("a", "b", "c"), ("a", "b", "d")]
    critic = DocumentCritic(doc, UNI, CriticParams(LAM, BETA, 6))
    empty = 6 * math.log(1 - LAM)
    # s0 predicts s1 (a b d): a from the cache unigram 1/3, b after a 2/3, d never; s0's own tokens get nothing
    g_y = gain("a b c a b d", [0, 0, 0, 1 / 3, 2 / 3, 0])
    g_x = gain("a b c a b d", [1 / 3, 2 / 3, 0, 1 / 3, 2 / 3, 0])
    assert critic.saliency([doc[0]], [0]) == pytest.approx((g_y - empty) / (g_x - empty))
    assert critic.saliency([], []) == pytest.approx(0.0)
    assert critic.saliency(doc, [0, 1]) == pytest.approx(1.0)


def test_faithfulness_and_support_by_hand() -> None:
    doc = [("a", "b", "c"), ("a", "b", "d")]
    critic = DocumentCritic(doc, UNI, CriticParams(LAM, BETA, 6))
    s = critic.score([doc[0]], [0])
    assert s.faithfulness == pytest.approx(gain("a b c", [1 / 3, 7 / 9, 25 / 54]) / 3)
    assert s.support == 1.0 and s.tokens == 3
    # "a b c a" occurs (two 3-spans), "c a x" does not: the last token is outside every occurring 3-span
    assert critic.score([("a", "b", "c", "a", "x")], [0]).support == pytest.approx(4 / 5)
    assert critic.score([("c", "a", "x")], [0]).support == 0.0
    # a word the document never has lowers faithfulness by at most log(1 - lam) per token
    assert critic.score([("a", "b", "x")], [0]).faithfulness < s.faithfulness


def test_infinigram_lm_by_hand(tmp_path: Path) -> None:
    index = tmp_path / "ix"
    counts = build_word_index(["a b c .", "a b d .", "x y z ."], index, threads=1)
    assert sum(counts.values()) == 12
    lm = InfiniGram(index)
    n, v = 12, 8 + 1          # 12 tokens; 8 distinct words plus [UNK]
    p1 = {w: (c + 1) / (n + v + 1) for w, c in counts.items()}
    # a: no context, the unigram; b after "a": c(a b) = 2 of c(a) = 2; c after "a b": 1 of 2 (gamma = 1)
    expected = [p1["a"], (2 + p1["b"]) / 3, (1 + p1["c"]) / 3]
    assert np.exp(lm.logprobs(["a", "b", "c"])) == pytest.approx(expected)
    # an unseen continuation is never impossible: "a b" was followed by c and d only
    assert np.exp(lm.logprobs(["a", "b", "x"]))[2] == pytest.approx(p1["x"] / 3)
    assert np.isfinite(lm.logprobs(["zzz", "qqq"])).all()


def test_coherence_by_hand() -> None:
    doc = [("a", "b", "c"), ("a", "b", "d")]
    critic = DocumentCritic(doc, UNI, CriticParams(LAM, BETA, 6))
    # s1 alone: s0 (a b c) before it predicts a with 1/3, b after a with (1 + 1/3) / 2, d never; the summary
    # before it is empty, so every token falls back to (1 - lam) P_C
    lost = gain("a b d", [1 / 3, 2 / 3, 0]) - 3 * math.log(1 - LAM)
    assert critic.score([doc[1]], [1]).coherence == pytest.approx(-lost / 3)
    assert critic.context_loss([doc[1]], [1]) == pytest.approx(lost)
    # a prefix of the document carries all the context its sentences lean on
    assert critic.score([doc[0]], [0]).coherence == pytest.approx(0.0)
    assert critic.score(doc, [0, 1]).coherence == pytest.approx(0.0)
    assert Thresholds(0.0, 0.0, 0.0, -0.1).passes(critic.score(doc, [0, 1]))
    assert not Thresholds(0.0, 0.0, 0.0, -0.1).passes(critic.score([doc[1]], [1]))


def test_sentence_counts_match_per_sentence_caches() -> None:
    """The one-pass counts equal match_counts with each sentence as the cache, queries open or closed."""
    rng = np.random.default_rng(0)
    for _ in range(20):
        lengths = rng.integers(1, 9, size=rng.integers(1, 7))
        x = rng.integers(0, 3, size=lengths.sum())
        opened, closed = sentence_counts(x, lengths, 6)
        st = np.concatenate([[0], np.cumsum(lengths)])
        for s in range(len(lengths)):
            assert (opened[..., s] == match_counts(x, x[st[s]:st[s + 1]], 6)).all()
            for q in range(len(lengths)):
                assert (closed[:, :, st[q]:st[q + 1], s] == match_counts(x[st[q]:st[q + 1]], x[st[s]:st[s + 1]],
                                                                          6)).all()
        assert opened.dtype == closed.dtype == np.int16


def test_sentence_counts_of_a_sentence_too_long_for_int16() -> None:
    # the unigram prompt count is the cache sentence's length: 2**15 does not fit in int16
    long = np.arange(2 ** 15)
    opened, closed = sentence_counts(np.concatenate([long, [0, 1, 7]]), np.array([2 ** 15, 3]), 6)
    assert opened.dtype == np.int32
    assert (opened[0, 0, :, 0] == 2 ** 15).all() and (closed[0, 0, :, 0] == 2 ** 15).all()
    # "0 1" starts both sentences: from the second one, the context "0" is followed by "1" in the long sentence
    assert opened[1, :, 2 ** 15 + 1, 0].tolist() == [1, 1] and opened[0, 1, 2 ** 15 + 2, 0] == 1


def test_batched_sentence_scores_match_the_critics() -> None:
    doc = [("a", "b", "c"), ("a", "b", "d"), ("c", "a", "b", "c")]
    critic = DocumentCritic(doc, UNI, CriticParams(LAM, BETA, 6))
    assert critic.sentence_saliencies() == pytest.approx([critic.saliency([s], [i]) for i, s in enumerate(doc)])
    assert critic.sentence_dependence() == pytest.approx([critic.context_loss([s], [i]) / len(s)
                                                          for i, s in enumerate(doc)])
    # a compressed segment (not a whole sentence) takes the per-sentence path: same value as the whole-sentence one
    # when nothing was deleted but the tuple is new
    assert critic.context_before(("c", "a", "b"), 2) > critic.context_before(("c", "a", "b"), 0) == pytest.approx(
        float(np.sum(np.log1p(-LAM) + UNI.logprobs(["c", "a", "b"]))))


def test_equal_pairs_are_all_pairs_of_equal_tokens() -> None:
    rng = np.random.default_rng(1)
    for n in (0, 1, 2, 17, 40):
        x = rng.integers(0, 5, size=n)
        qi, cp = equal_pairs(x)
        brute = set(zip(*(v.tolist() for v in np.nonzero(x[:, None] == x[None, :])), strict=True))
        assert set(zip(qi.tolist(), cp.tolist(), strict=True)) == brute and len(qi) == len(brute) == equal_pair_count(x)


def test_a_document_the_critics_cannot_afford_is_refused_before_counting(monkeypatch: pytest.MonkeyPatch) -> None:
    doc = [("a", "b", "c"), ("d", "e", "f"), ("g", "h", "a")]        # 9 tokens x 3 sentences, pairs: a 4, others 7
    monkeypatch.setattr(critics, "MAX_CELLS", 27)
    monkeypatch.setattr(critics, "MAX_PAIRS", 11)
    DocumentCritic(doc, UNI)                                           # exactly at both limits
    with pytest.raises(DocumentTooLargeError, match="10 tokens in 3 sentences.*30 pairs"):
        DocumentCritic([*doc[:2], ("g", "h", "a", "i")], UNI)
    monkeypatch.setattr(critics, "MAX_PAIRS", 10)
    with pytest.raises(DocumentTooLargeError, match="11 pairs of equal tokens"):
        DocumentCritic(doc, UNI)


def test_a_critic_for_another_lm_shares_the_counts_and_scores_as_a_new_one() -> None:
    doc = [("a", "b", "c"), ("a", "b", "d"), ("c", "a", "b", "c")]
    other = Unigram(["a", "b", "c", "d"], np.array([1, 1, 5, 2]), 9)
    shared = DocumentCritic(doc, UNI, CriticParams(LAM, BETA, 6)).with_lm(other)
    fresh = DocumentCritic(doc, other, CriticParams(LAM, BETA, 6))
    summary, sources = [doc[2], doc[0]], [2, 0]
    assert shared.score(summary, sources) == fresh.score(summary, sources)
    assert shared.sentence_saliencies().tolist() == fresh.sentence_saliencies().tolist()
    assert shared.sentence_dependence().tolist() == fresh.sentence_dependence().tolist()
    assert shared.norm == fresh.norm and shared.score([doc[1]], [1]) != DocumentCritic(doc, UNI).score([doc[1]], [1])
