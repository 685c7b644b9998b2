"""Every query of native.Engine equals the brute-force reference on random small corpora.

Corpora: u8/u16/u32, one to three shards, empty and one-token documents, documents that contain the
separator value itself, token values whose little-endian byte order differs from their numeric order
(0x100 vs 0xFF), with and without metadata. Queries: n-grams taken from the corpus (so most occur,
including ones spanning separators) plus random ones over the same small alphabet.
"""

from __future__ import annotations

import random
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from support.index_factory import ptr_size_for, sep_value, write_index
from support.reference_model import RefDoc, ReferenceModel

import native

# Small alphabets so that n-grams repeat; each holds the separator value and values whose LE bytes
# sort differently from their numeric value (so a token-id-ordered SA would give wrong ranges).
ALPHABETS: dict[int, list[int]] = {
    1: [0, 1, 2, 0x7F, 0xFE, 0xFF],
    2: [0, 1, 2, 0xFF, 0x100, 0x1FF, 0xFF00, 0xFFFF],
    4: [0, 1, 2, 0xFF, 0x100, 0xFF000000, 0xFFFFFF00, 0xFFFFFFFF],
}

SETTINGS = settings(max_examples=100, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@dataclass
class Corpus:
    width: int
    shards: list[list[list[int]]]
    eos: int
    metadata: bool = True


@st.composite
def corpora(draw: st.DrawFn) -> Corpus:
    width = draw(st.sampled_from([1, 2, 4]))
    alpha = ALPHABETS[width]
    # mostly the three small values (many repeats), sometimes any of the alphabet
    token = st.one_of(st.sampled_from(alpha[:3]), st.sampled_from(alpha))
    doc = st.lists(token, max_size=10)
    shards = draw(st.lists(st.lists(doc, min_size=1, max_size=6), min_size=1, max_size=3))
    return Corpus(width, shards, draw(st.sampled_from(alpha[:3])), draw(st.booleans()))


# Fixed corner cases every run tries: empty documents, one-token documents, the separator value
# inside a document, a document ending a shard, and a shard that is a single empty document.
CORNERS = [
    Corpus(2, [[[], [5], [0xFFFF, 5, 0xFFFF], [5, 6]], [[]], [[6, 5], [5]]], eos=0),
    Corpus(1, [[[0xFF], [], [1, 0xFF, 1]], [[1]]], eos=2, metadata=False),
    Corpus(4, [[[0xFFFFFFFF, 1], [1, 0xFFFFFFFF]], [[1, 1, 1, 1]]], eos=1),
]


@contextmanager
def opened(corpus: Corpus) -> Iterator[tuple[native.Engine, ReferenceModel]]:
    with tempfile.TemporaryDirectory(prefix="gx-") as d:
        write_index(d, corpus.shards, corpus.width, metadata=corpus.metadata)
        eng = native.Engine(d, token_width=corpus.width, eos_token_id=corpus.eos)
        yield eng, ReferenceModel(corpus.shards, corpus.width, corpus.eos, metadata=corpus.metadata)


def queries(corpus: Corpus, ref: ReferenceModel, seed: int, n: int = 30, max_len: int = 4) -> list[list[int]]:
    """n queries: corpus n-grams (occurring; some across separators) and random alphabet strings."""
    rng = random.Random(seed)
    alpha = ALPHABETS[corpus.width]
    out: list[list[int]] = [[]]
    streams = [sh.stream for sh in ref.shards]
    for _ in range(n):
        if rng.random() < 0.7:
            st_ = rng.choice(streams)
            i = rng.randrange(len(st_))
            out.append(st_[i:i + rng.randint(1, max_len)])
        else:
            out.append([rng.choice(alpha) for _ in range(rng.randint(1, max_len))])
    return out


def assert_doc(doc: Any, ref: RefDoc, *, at_separator: bool = False, what: str = "") -> None:
    got = {"shard": doc.shard, "doc_ix": doc.doc_ix, "doc_len": doc.doc_len, "disp_start": doc.disp_start,
           "disp_len": doc.disp_len, "needle_offset": doc.needle_offset, "token_ids": list(doc.token_ids),
           "metadata": doc.metadata}
    want = {k: getattr(ref, k) for k in got}
    if at_separator:
        # a pointer at a document's separator lies before the window; its needle offset is not defined
        got.pop("needle_offset")
        want.pop("needle_offset")
    assert got == want, what


# --- find / count / shard info -------------------------------------------------------------------


@SETTINGS
@given(corpus=corpora(), seed=st.integers(0, 2**16))
@example(corpus=CORNERS[0], seed=0)
@example(corpus=CORNERS[1], seed=1)
@example(corpus=CORNERS[2], seed=2)
def test_find_count_and_shard_info(corpus: Corpus, seed: int) -> None:
    with opened(corpus) as (eng, ref):
        assert eng.num_shards == ref.num_shards
        assert eng.token_width == corpus.width
        assert eng.eos_token_id == corpus.eos
        assert eng.tok_cnt == ref.tok_cnt
        assert eng.doc_cnt == ref.doc_cnt
        for s, sh in enumerate(ref.shards):
            info = eng.shard_info(s)
            ds_size = len(sh.stream) * corpus.width
            assert (info.tok_cnt, info.ds_size, info.doc_cnt) == (len(sh.stream), ds_size, len(sh.doc_starts))
            assert info.ptr_size == ptr_size_for(ds_size)
            assert bool(info.has_metadata) == corpus.metadata
        qs = queries(corpus, ref, seed)
        for q in qs:
            cnt, segs = ref.find(q)
            res = eng.find(q)
            assert (res.cnt, [tuple(x) for x in res.segment_by_shard]) == (cnt, segs), q
            assert eng.count(q) == cnt, q
        assert eng.count_many(qs) == [ref.count(q) for q in qs]


@SETTINGS
@given(corpus=corpora())
def test_several_directories_equal_one_directory_of_shards(corpus: Corpus) -> None:
    # Engine([dir_a, dir_b]) numbers shards directory after directory, like one dir holding all shards.
    with tempfile.TemporaryDirectory(prefix="gx-") as root:
        dirs = [write_index(f"{root}/d{i}", [docs], corpus.width) for i, docs in enumerate(corpus.shards)]
        eng = native.Engine([str(d) for d in dirs], token_width=corpus.width, eos_token_id=corpus.eos)
        ref = ReferenceModel(corpus.shards, corpus.width, corpus.eos)
        assert eng.num_shards == ref.num_shards
        for q in queries(corpus, ref, 7, n=10):
            assert eng.find(q).cnt == ref.count(q), q
        for ix in range(ref.doc_cnt):
            # metadata line numbers restart in each directory; compare the documents themselves
            d, r = eng.get_doc_by_ix(ix), ref.doc_by_ix(ix)
            assert (d.shard, list(d.token_ids)) == (r.shard, r.token_ids), ix


# --- prob / ntd / ∞-gram / score -----------------------------------------------------------------


@SETTINGS
@given(corpus=corpora(), seed=st.integers(0, 2**16))
@example(corpus=CORNERS[0], seed=0)
@example(corpus=CORNERS[1], seed=1)
@example(corpus=CORNERS[2], seed=2)
def test_prob_and_ntd(corpus: Corpus, seed: int) -> None:
    alpha = ALPHABETS[corpus.width]
    with opened(corpus) as (eng, ref):
        for q in queries(corpus, ref, seed, n=20, max_len=3):
            for cont in (alpha[0], alpha[1], sep_value(corpus.width)):
                r, g = ref.prob(q, cont), eng.prob(q, cont)
                assert (g.prompt_cnt, g.cont_cnt, g.prob, g.suffix_len) == (r.prompt_cnt, r.cont_cnt, r.prob,
                                                                          None), (q, cont)
            # exact (default max_support) and approximate (unit > 1) distributions
            for ms in (1000, 1, 2, 3):
                r, g = ref.ntd(q, ms), eng.ntd(q, max_support=ms)
                assert (g.prompt_cnt, dict(g.counts), bool(g.approx), g.suffix_len) == (
                    r.prompt_cnt, r.counts, r.approx, None), (q, ms)
                assert g.probs == {t: c / r.prompt_cnt for t, c in r.counts.items()}, (q, ms)


@SETTINGS
@given(corpus=corpora(), seed=st.integers(0, 2**16))
@example(corpus=CORNERS[0], seed=0)
@example(corpus=CORNERS[2], seed=2)
def test_infgram_and_score(corpus: Corpus, seed: int) -> None:
    alpha = ALPHABETS[corpus.width]
    rng = random.Random(seed)
    with opened(corpus) as (eng, ref):
        # longer prompts: a corpus n-gram with random tokens before it, so back-off is exercised
        prompts = [[rng.choice(alpha) for _ in range(rng.randint(0, 3))] + q
                   for q in queries(corpus, ref, seed, n=12, max_len=5)]
        for p in prompts:
            cont = rng.choice(alpha)
            r, g = ref.infgram_prob(p, cont), eng.infgram_prob(p, cont)
            assert (g.prompt_cnt, g.cont_cnt, g.prob, g.suffix_len) == (
                r.prompt_cnt, r.cont_cnt, r.prob, r.suffix_len), (p, cont)
            for ms in (1000, 2):
                rn, gn = ref.infgram_ntd(p, ms), eng.infgram_ntd(p, max_support=ms)
                assert (gn.prompt_cnt, dict(gn.counts), bool(gn.approx), gn.suffix_len) == (
                    rn.prompt_cnt, rn.counts, rn.approx, rn.suffix_len), (p, ms)
        for p in prompts[:6]:
            ids = p + [rng.choice(alpha) for _ in range(3)]
            got = [(t.suffix_len, t.prompt_cnt, t.cont_cnt, t.prob) for t in eng.score(ids)]
            assert got == [(r.suffix_len, r.prompt_cnt, r.cont_cnt, r.prob) for r in ref.score(ids)], ids
        assert list(eng.score([])) == []


def test_ntd_end_of_shard_and_separator_are_told_apart() -> None:
    # "5" is followed by: the end of shard 0 (rank 0 of its range), 6 (middle ranks) and the separator
    # (last ranks). infini-gram's shortcut sees eos at both ends and credits the whole range to eos;
    # gramdex must count exactly: the end-of-shard and separator matches are eos, the rest are 6.
    corpus = Corpus(2, [[[5]] + [[5, 6]] * 5 + [[5]] * 3 + [[5]]], eos=0)
    with opened(corpus) as (eng, ref):
        r = ref.ntd([5])
        assert r.counts == {0: 5, 6: 5}
        g = eng.ntd([5])
        assert (g.prompt_cnt, dict(g.counts), bool(g.approx)) == (10, {0: 5, 6: 5}, False)


# --- CNF -----------------------------------------------------------------------------------------


def random_cnf(rng: random.Random, alpha: Sequence[int], qs: Sequence[list[int]]) -> list[list[list[int]]]:
    def term() -> list[int]:
        nonempty = [q for q in qs if q]
        if nonempty and rng.random() < 0.7:
            return list(rng.choice(nonempty)[:2])
        return [rng.choice(alpha)]

    return [[term() for _ in range(rng.randint(1, 2))] for _ in range(rng.randint(1, 3))]


@SETTINGS
@given(corpus=corpora(), seed=st.integers(0, 2**16))
@example(corpus=CORNERS[0], seed=0)
@example(corpus=CORNERS[1], seed=3)
def test_cnf_without_subsampling(corpus: Corpus, seed: int) -> None:
    rng = random.Random(seed)
    alpha = ALPHABETS[corpus.width]
    with opened(corpus) as (eng, ref):
        qs = queries(corpus, ref, seed, n=20, max_len=2)
        for _ in range(12):
            cnf = random_cnf(rng, alpha, qs)
            mdt = rng.choice([1, 2, 3, 5, 100])
            r = ref.find_cnf(cnf, max_diff_tokens=mdt)
            g = eng.find_cnf(cnf, max_diff_tokens=mdt)
            assert (g.cnt, bool(g.approx), [list(p) for p in g.ptrs_by_shard]) == (
                r.cnt, False, r.ptrs_by_shard), (cnf, mdt)
            c = eng.count_cnf(cnf, max_diff_tokens=mdt)
            assert (c.count, bool(c.approx)) == (r.cnt, False), (cnf, mdt)


def test_cnf_one_sided_match_keeps_the_other_end() -> None:
    # seed 8 (pos 7); [1, 1] only within reach on the left -> range [5, 7]; 2 only within reach on the
    # right -> infini-gram 2.6.0 keeps the left end: [5, 9] (ptr 10), not [7, 9] (ptr 14).
    corpus = Corpus(2, [[[2, 9, 9, 9, 1, 1, 8, 3, 2]]], eos=0)
    with opened(corpus) as (eng, ref):
        cnf = [[[8]], [[1, 1]], [[2]]]
        assert ref.find_cnf(cnf, max_diff_tokens=3).ptrs_by_shard == [[10]]
        g = eng.find_cnf(cnf, max_diff_tokens=3)
        assert (g.cnt, [list(p) for p in g.ptrs_by_shard]) == (1, [[10]])


# --- documents -----------------------------------------------------------------------------------


@SETTINGS
@given(corpus=corpora(), mdl=st.integers(1, 9))
@example(corpus=CORNERS[0], mdl=3)
@example(corpus=CORNERS[1], mdl=1)
def test_get_doc_by_rank_ptr_ix(corpus: Corpus, mdl: int) -> None:
    w = corpus.width
    with opened(corpus) as (eng, ref):
        for s, sh in enumerate(ref.shards):
            seps = set(sh.doc_starts)
            for pos in range(len(sh.stream)):
                assert_doc(eng.get_doc_by_ptr(s, pos * w, max_disp_len=mdl), ref.doc_by_ptr(s, pos * w, mdl),
                           at_separator=pos in seps, what=f"ptr {s}/{pos * w}")
            sa = ref.suffix_array(s)
            for rank in range(len(sa)):
                assert_doc(eng.get_doc_by_rank(s, rank, max_disp_len=mdl), ref.doc_by_rank(s, rank, mdl),
                           at_separator=sa[rank] // w in seps, what=f"rank {s}/{rank}")
        for ix in range(ref.doc_cnt):
            assert_doc(eng.get_doc_by_ix(ix, max_disp_len=mdl), ref.doc_by_ix(ix, mdl), what=f"ix {ix}")
            assert_doc(eng.get_doc_by_ix(ix), ref.doc_by_ix(ix), what=f"ix {ix}")


def _rank_of_idx(segs: list[tuple[int, int]], idx: int) -> tuple[int, int]:
    for s, (lo, hi) in enumerate(segs):
        if idx < hi - lo:
            return s, lo + idx
        idx -= hi - lo
    raise AssertionError(f"idx {idx} beyond the count")


@SETTINGS
@given(corpus=corpora(), seed=st.integers(0, 2**16))
@example(corpus=CORNERS[0], seed=0)
def test_search_docs(corpus: Corpus, seed: int) -> None:
    rng = random.Random(seed)
    w = corpus.width
    with opened(corpus) as (eng, ref):
        qs = queries(corpus, ref, seed, n=10, max_len=3)
        for q in qs:
            cnt, segs = ref.find(q)
            maxnum, mdl = rng.randint(1, 4), rng.randint(1, 8)
            res = eng.search_docs(q, maxnum=maxnum, max_disp_len=mdl, seed=seed)
            assert (res.cnt, bool(res.approx)) == (cnt, False), q
            assert len(res.documents) == len(res.idxs) == (maxnum if cnt else 0), q
            for idx, doc in zip(res.idxs, res.documents, strict=True):
                # idx is the global rank of the picked match: its document is get_doc_by_rank's
                s, rank = _rank_of_idx(segs, idx)
                ptr = ref.suffix_array(s)[rank]
                at_sep = ref.is_separator_position(s, ptr // w)
                assert_doc(doc, ref.doc_by_rank(s, rank, mdl), at_separator=at_sep, what=f"{q} idx {idx}")
            again = eng.search_docs(q, maxnum=maxnum, max_disp_len=mdl, seed=seed)
            assert list(again.idxs) == list(res.idxs), "search_docs must be deterministic for a seed"
        alpha = ALPHABETS[w]
        for _ in range(5):
            cnf = random_cnf(rng, alpha, qs)
            r = ref.find_cnf(cnf, max_diff_tokens=3)
            res = eng.search_docs_cnf(cnf, maxnum=3, max_disp_len=6, max_diff_tokens=3, seed=seed)
            assert (res.cnt, bool(res.approx)) == (r.cnt, False), cnf
            assert len(res.documents) == (3 if r.cnt else 0), cnf
            allowed = [(ref.doc_by_ptr(s, p, 6), ref.is_separator_position(s, p // w))
                       for s, ptrs in enumerate(r.ptrs_by_shard) for p in ptrs]
            for doc in res.documents:
                assert any(_doc_eq(doc, a, sep) for a, sep in allowed), (cnf, doc)


def _doc_eq(doc: Any, ref: RefDoc, at_separator: bool) -> bool:
    try:
        assert_doc(doc, ref, at_separator=at_separator)
    except AssertionError:
        return False
    return True


# --- attribution ---------------------------------------------------------------------------------


@SETTINGS
@given(corpus=corpora(), seed=st.integers(0, 2**16))
@example(corpus=CORNERS[0], seed=0)
def test_attribute(corpus: Corpus, seed: int) -> None:
    rng = random.Random(seed)
    alpha = ALPHABETS[corpus.width]
    with opened(corpus) as (eng, ref):
        for _ in range(6):
            # corpus n-grams glued with random tokens: several maximal spans, some overlapping
            ids: list[int] = []
            for q in queries(corpus, ref, rng.randrange(1 << 30), n=3, max_len=5)[1:]:
                ids += q + [rng.choice(alpha) for _ in range(rng.randint(0, 2))]
            min_len, max_loc = rng.randint(1, 3), rng.randint(1, 4)
            want = ref.attribute(ids, min_len)
            got = eng.attribute(ids, min_len=min_len, max_locations=max_loc)
            assert [(g.start, g.end, g.count) for g in got] == [(r.start, r.end, r.count) for r in want], (
                ids, min_len)
            for g, r in zip(got, want, strict=True):
                locs = [tuple(x) for x in g.locations]
                assert len(locs) == len(set(locs)) == min(r.count, max_loc), (ids, g.start)
                assert set(locs) <= r.locations, (ids, g.start)
        assert list(eng.attribute([])) == []
