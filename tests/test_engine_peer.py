"""native.Engine gives infini-gram 2.6.0's answers on the same index files, for a fixed query set.

Covers the approximations too: ntd with a small max_support (unit > 1) and CNF with a small
max_clause_freq (subsampled with infini-gram's seeded generator), over two shards, for u8/u16/u32.

The corpora avoid one corner on purpose: infini-gram treats "match at the very end of a shard" and
"next token is the separator" as the same token when it decides that a whole SA segment has one next
token, and so miscounts when a prompt's range holds both; gramdex counts those exactly (checked against
brute force in test_engine_reference.py). Here every shard ends with TAIL, a token no prompt contains,
and eos is an id that never occurs in a document.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from support.index_factory import sep_value, write_index

import native

peer_engine = pytest.importorskip("infini_gram.engine", reason="infini-gram 2.6.0 is not installed")

EOS = 0
TAIL = 9  # ends every shard's last document; never in a prompt
VOCAB = list(range(1, 9))
DTYPE = {1: "u8", 2: "u16", 4: "u32"}


def make_corpus(width: int, n_shards: int, seed: int) -> list[list[list[int]]]:
    rng = random.Random(seed)
    # skewed unigram distribution: counts in the hundreds for frequent tokens, so unit > 1 and
    # clause counts above small max_clause_freq values occur
    weights = [30, 20, 12, 8, 5, 3, 2, 1]
    shards = []
    for _ in range(n_shards):
        docs = []
        for _ in range(40):
            doc = rng.choices(VOCAB, weights, k=rng.choice([0, 1, rng.randint(2, 30)]))
            if doc and rng.random() < 0.1:
                doc[rng.randrange(len(doc))] = sep_value(width)  # the separator value inside a document
            docs.append(doc)
        docs[-1] = docs[-1] + [TAIL]
        shards.append(docs)
    return shards


@dataclass
class Pair:
    width: int
    shards: list[list[list[int]]]
    path: Path
    gx: native.Engine
    peer: Any


def _open(width: int, n_shards: int, table: str, tmp: pytest.TempPathFactory) -> Pair:
    shards = make_corpus(width, n_shards, seed=width * 10 + n_shards)
    path = write_index(tmp.mktemp("gxpeer"), shards, width, table=table)  # type: ignore[arg-type]
    gx = native.Engine(path, token_width=width, eos_token_id=EOS)
    peer = peer_engine.InfiniGramEngine(str(path), eos_token_id=EOS, vocab_size=255 if width == 1 else 65535,
                                        token_dtype=DTYPE[width], ds_prefetch_depth=0, sa_prefetch_depth=0,
                                        od_prefetch_depth=0)
    return Pair(width, shards, path, gx, peer)


# The peer's Rust indexer writes u8 and u16 tables for tiny shards; for u32 it tries to allocate
# 32 GiB and fails, so the u32 index uses the brute-force table (byte-identical for u8/u16, see below).
@pytest.fixture(scope="module", params=[(1, 2, "peer"), (2, 2, "peer"), (2, 1, "peer"), (4, 2, "brute")],
                ids=["u8-2shards", "u16-2shards", "u16-1shard", "u32-2shards"])
def pair(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    yield _open(*request.param, tmp_path_factory)


def ngrams(p: Pair, seed: int, n: int, lo: int = 1, hi: int = 4) -> list[list[int]]:
    """n-grams taken from the documents (so they occur), without TAIL."""
    rng = random.Random(seed)
    docs = [d for shard in p.shards for d in shard if len(d) >= hi]
    out = []
    while len(out) < n:
        d = rng.choice(docs)
        k = rng.randint(lo, hi)
        i = rng.randrange(len(d) - k + 1)
        if TAIL not in d[i:i + k]:
            out.append(d[i:i + k])
    return out


def queries(p: Pair) -> list[list[int]]:
    sep = sep_value(p.width)
    return ([[], [sep], [TAIL], [1, sep], [sep, 1], [1, sep, 1], [3, 3, 3, 3, 3, 3]]
            + [[t] for t in VOCAB] + ngrams(p, 1, 40))


def test_peer_table_is_the_brute_force_table(tmp_path_factory: pytest.TempPathFactory) -> None:
    # the index factory's brute-force SA must be what infini-gram's indexer writes (order and ptr_size)
    for width in (1, 2):
        shards = make_corpus(width, 2, seed=99)
        a = write_index(tmp_path_factory.mktemp("gxa"), shards, width, table="brute")
        b = write_index(tmp_path_factory.mktemp("gxb"), shards, width, table="peer")
        for s in range(2):
            assert (a / f"table.{s}").read_bytes() == (b / f"table.{s}").read_bytes(), (width, s)


def test_counts_and_sizes(pair: Pair) -> None:
    assert pair.gx.num_shards == pair.peer.engine.get_num_shards()
    assert pair.gx.doc_cnt == pair.peer.get_total_doc_cnt()
    for s in range(pair.gx.num_shards):
        assert pair.gx.shard_info(s).tok_cnt == pair.peer.engine.get_tok_cnt(s=s)
        assert pair.gx.shard_info(s).ds_size == pair.peer.engine.get_ds_size(s=s)
    for q in queries(pair):
        want = pair.peer.find(q)
        got = pair.gx.find(q)
        assert (got.cnt, [tuple(x) for x in got.segment_by_shard]) == (
            want["cnt"], [tuple(x) for x in want["segment_by_shard"]]), q
        assert pair.gx.count(q) == pair.peer.count(q)["count"], q


def test_prob(pair: Pair) -> None:
    for q in queries(pair)[:30]:
        for cont in (1, 2, 5, TAIL, sep_value(pair.width)):
            want = pair.peer.prob(q, cont)
            got = pair.gx.prob(q, cont)
            assert (got.prompt_cnt, got.cont_cnt, got.prob) == (want["prompt_cnt"], want["cont_cnt"],
                                                                want["prob"]), (q, cont)


def _ntd_tuple(r: dict[str, Any]) -> tuple[int, dict[int, int], dict[int, float], bool]:
    by = r["result_by_token_id"]
    return (r["prompt_cnt"], {t: v["cont_cnt"] for t, v in by.items()}, {t: v["prob"] for t, v in by.items()},
            r["approx"])


def test_ntd_exact_and_approximate(pair: Pair) -> None:
    prompts = [[], [1], [2], [3], [8], [1, 1], [1, 2], [2, 1], [sep_value(pair.width)]]
    prompts += ngrams(pair, 2, 10, 1, 3)
    approx_seen = 0
    for q in prompts:
        for ms in (1000, 50, 7, 3, 1):
            want = _ntd_tuple(pair.peer.ntd(q, max_support=ms))
            got = pair.gx.ntd(q, max_support=ms)
            assert (got.prompt_cnt, dict(got.counts), got.probs, bool(got.approx)) == want, (q, ms)
            approx_seen += want[3]
    assert approx_seen > 10  # the approximate path was really exercised


def test_infgram(pair: Pair) -> None:
    rng = random.Random(5)
    # unseen material before a corpus n-gram: the back-off has to find the occurring suffix
    prompts = [[TAIL, TAIL, TAIL] + q for q in ngrams(pair, 3, 15, 1, 4)]
    prompts += [[], [TAIL], [8, 8, 8, 8, 8, 8, 8]]
    for q in prompts:
        cont = rng.choice(VOCAB)
        want = pair.peer.infgram_prob(q, cont)
        got = pair.gx.infgram_prob(q, cont)
        assert (got.prompt_cnt, got.cont_cnt, got.prob, got.suffix_len) == (
            want["prompt_cnt"], want["cont_cnt"], want["prob"], want["suffix_len"]), (q, cont)
        for ms in (1000, 3):
            w = pair.peer.infgram_ntd(q, max_support=ms)
            g = pair.gx.infgram_ntd(q, max_support=ms)
            assert (g.prompt_cnt, dict(g.counts), g.probs, bool(g.approx), g.suffix_len) == (
                *_ntd_tuple(w), w["suffix_len"]), (q, ms)


def cnfs(p: Pair) -> list[list[list[list[int]]]]:
    rng = random.Random(7)
    grams = ngrams(p, 4, 30, 1, 2)
    out: list[list[list[list[int]]]] = [
        [[[1]]], [[[1]], [[2]]], [[[1], [2]], [[3]]], [[[1, 1]], [[8]], [[2]]], [[[TAIL]], [[1]]],
        [[[sep_value(p.width)]], [[1]]],
    ]
    for _ in range(12):
        out.append([[rng.choice(grams) for _ in range(rng.randint(1, 3))] for _ in range(rng.randint(1, 3))])
    return out


def test_cnf_exact_and_subsampled(pair: Pair) -> None:
    approx_seen = 0
    for cnf in cnfs(pair):
        for mcf, mdt in ((50000, 100), (50000, 3), (40, 10), (10, 100), (3, 2), (1, 1)):
            want = pair.peer.find_cnf(cnf, max_clause_freq=mcf, max_diff_tokens=mdt)
            got = pair.gx.find_cnf(cnf, max_clause_freq=mcf, max_diff_tokens=mdt)
            assert (got.cnt, bool(got.approx), [list(x) for x in got.ptrs_by_shard]) == (
                want["cnt"], want["approx"], want["ptrs_by_shard"]), (cnf, mcf, mdt)
            c = pair.gx.count_cnf(cnf, max_clause_freq=mcf, max_diff_tokens=mdt)
            assert (c.count, bool(c.approx)) == (want["cnt"], want["approx"]), (cnf, mcf, mdt)
            approx_seen += want["approx"]
    assert approx_seen > 5  # subsampling was really exercised


def _contains_at_needle(doc: dict[str, Any] | Any, q: list[int]) -> bool:
    toks = list(doc["token_ids"] if isinstance(doc, dict) else doc.token_ids)
    off = doc["needle_offset"] if isinstance(doc, dict) else doc.needle_offset
    # the window may cut the match short on the right
    return toks[off:off + len(q)] == q[:len(toks) - off] and off < len(toks)


def test_search_docs(pair: Pair) -> None:
    # search_docs is random in the peer: compare counts, and that each document holds the query
    # (queries without the separator value, whose matches can straddle two documents)
    sep = sep_value(pair.width)
    for q in [[1], [2, 1], [3, 3], [8]] + [g for g in ngrams(pair, 6, 20, 1, 4) if sep not in g]:
        want = pair.peer.search_docs(q, maxnum=3, max_disp_len=20)
        got = pair.gx.search_docs(q, maxnum=3, max_disp_len=20)
        assert (got.cnt, bool(got.approx)) == (want["cnt"], want["approx"]), q
        assert len(got.documents) == len(want["documents"]) == 3, q
        assert all(_contains_at_needle(d, q) for d in want["documents"]), q
        assert all(_contains_at_needle(d, q) for d in got.documents), (q, got.documents)
    for cnf in cnfs(pair)[:10]:
        kw: dict[str, Any] = {"maxnum": 2, "max_disp_len": 30, "max_clause_freq": 10, "max_diff_tokens": 5}
        want = pair.peer.search_docs_cnf(cnf, **kw)
        got = pair.gx.search_docs_cnf(cnf, **kw)
        assert (got.cnt, bool(got.approx), len(got.documents)) == (
            want["cnt"], want["approx"], len(want["documents"])), cnf


def _doc_tuple(d: dict[str, Any] | Any) -> tuple[Any, ...]:
    keys = ("doc_ix", "doc_len", "disp_len", "needle_offset", "metadata", "token_ids")
    if isinstance(d, dict):
        return tuple(list(d[k]) if k == "token_ids" else d[k] for k in keys)
    return tuple(list(getattr(d, k)) if k == "token_ids" else getattr(d, k) for k in keys)


def test_documents(pair: Pair) -> None:
    w = pair.width
    rng = random.Random(8)
    for s in range(pair.gx.num_shards):
        tok_cnt = pair.gx.shard_info(s).tok_cnt
        ranks = sorted({0, tok_cnt - 1, *rng.sample(range(tok_cnt), 60)})
        for rank in ranks:
            for mdl in (1, 2, 7, 1000):
                want = pair.peer.get_doc_by_rank(s, rank, max_disp_len=mdl)
                if want["needle_offset"] > tok_cnt:
                    continue  # a separator position: the peer's needle offset underflows there
                assert _doc_tuple(pair.gx.get_doc_by_rank(s, rank, max_disp_len=mdl)) == _doc_tuple(want), (
                    s, rank, mdl)
        for pos in rng.sample(range(tok_cnt), 40):
            if w == 1 and pos % 2:
                continue  # the peer's Python wrapper only accepts even pointers
            want = pair.peer.get_doc_by_ptr(s, pos * w, max_disp_len=9)
            if want["needle_offset"] > tok_cnt:
                continue
            got = pair.gx.get_doc_by_ptr(s, pos * w, max_disp_len=9)
            assert _doc_tuple(got) == _doc_tuple(want), (s, pos)
    for ix in range(pair.gx.doc_cnt):
        for mdl in (1, 5, 1000):
            assert _doc_tuple(pair.gx.get_doc_by_ix(ix, max_disp_len=mdl)) == _doc_tuple(
                pair.peer.get_doc_by_ix(ix, max_disp_len=mdl)), (ix, mdl)
