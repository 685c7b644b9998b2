"""POST / takes infini-gram's API bodies and answers what infini-gram's own engine answers on the same index."""

from __future__ import annotations

import pytest
from service_support.fixtures import Indexes, Server

QUERIES = ["the cat", "the cat sat on", "a small child slept near the", "garden", "zebra", "the"]


@pytest.fixture(scope="module")
def peer(indexes: Indexes):  # noqa: ANN201 - infini_gram.engine.InfiniGramEngine
    from infini_gram.engine import InfiniGramEngine

    return InfiniGramEngine(index_dir=str(indexes.text), eos_token_id=0, vocab_size=65535, token_dtype="u16")


def ask(server: Server, **body: object) -> dict:
    r = server.client.post("/", json={"index": "demo", **body})
    assert r.status_code == 200, r.text
    out = r.json()
    assert "error" not in out and out["latency"] >= 0
    return out


@pytest.mark.parametrize("text", QUERIES)
def test_simple_queries_match_infini_gram(server: Server, peer, text: str) -> None:  # noqa: ANN001
    c = ask(server, query_type="count", query=text)
    ids = c["token_ids"]
    assert {k: c[k] for k in ("count", "approx")} == peer.count(ids) and len(c["tokens"]) == len(ids)
    f = ask(server, query_type="find", query_ids=ids)
    assert f["cnt"] == peer.find(ids)["cnt"]
    assert [tuple(s) for s in f["segment_by_shard"]] == [tuple(s) for s in peer.find(ids)["segment_by_shard"]]
    for qt in ("prob", "infgram_prob"):
        got = ask(server, query_type=qt, query=text)
        want = getattr(peer, qt)(prompt_ids=ids[:-1], cont_id=ids[-1])
        assert {k: got[k] for k in want} == want
    for qt in ("ntd", "infgram_ntd"):
        got = ask(server, query_type=qt, query_ids=ids, max_support=20)
        want = getattr(peer, qt)(prompt_ids=ids, max_support=20)
        assert got["prompt_cnt"] == want["prompt_cnt"] and got["approx"] == want["approx"]
        assert got.get("suffix_len") == want.get("suffix_len")
        assert {int(t): (v["cont_cnt"], v["prob"]) for t, v in got["result_by_token_id"].items()} == \
            {t: (v["cont_cnt"], v["prob"]) for t, v in want["result_by_token_id"].items()}
    s = ask(server, query_type="search_docs", query=text, maxnum=2, max_disp_len=30)
    want_s = peer.search_docs(input_ids=ids, maxnum=2, max_disp_len=30)
    assert (s["cnt"], s["approx"]) == (want_s["cnt"], want_s["approx"])
    assert len(s["documents"]) == (2 if s["cnt"] else 0) and s["message"]
    for doc in s["documents"]:
        assert doc["disp_len"] <= 30 and any(label == "0" for _, label in doc["spans"])


@pytest.mark.parametrize("text", ["cat AND mat OR hat", "dog AND tree AND garden", "old man OR child AND house"])
def test_cnf_matches_infini_gram(server: Server, peer, text: str) -> None:  # noqa: ANN001
    got = ask(server, query_type="count", query=text, max_diff_tokens=20, corpus="ignored", engine="c++")
    cnf = got["token_ids"]
    assert {k: got[k] for k in ("count", "approx")} == peer.count_cnf(cnf, max_diff_tokens=20)
    assert len(cnf) == text.count(" AND ") + 1
    s = ask(server, query_type="search_docs", query_ids=cnf, max_diff_tokens=20, maxnum=1)
    want = peer.search_docs_cnf(cnf, maxnum=1, max_diff_tokens=20)
    assert (s["cnt"], s["approx"]) == (want["cnt"], want["approx"])


def test_old_corpus_field(server: Server) -> None:
    r = server.client.post("/", json={"corpus": "demo", "query_type": "count", "query": "the"})
    assert r.status_code == 200 and r.json()["count"] > 0


@pytest.mark.parametrize(("body", "status", "slug"), [
    ({"index": "nope", "query_type": "count", "query": "a"}, 404, "unknown-index"),
    ({"index": "demo", "query_type": "creativity", "query": "a"}, 400, "invalid-query"),
    ({"index": "demo", "query_type": "count"}, 422, "validation-error"),
    ({"index": "demo", "query_type": "count", "query": "a", "query_ids": [1]}, 422, "validation-error"),
    ({"index": "demo", "query_type": "prob", "query_ids": []}, 400, "invalid-query"),
    ({"index": "demo", "query_type": "ntd", "query": "a", "max_support": 0}, 422, "validation-error"),
    ({"index": "demo", "query_type": "search_docs", "query": "a", "maxnum": 1000}, 413, "query-too-large"),
    ({"query_type": "count", "query": "a"}, 422, "validation-error"),
])
def test_errors_have_status_and_error_field(server: Server, body: dict, status: int, slug: str) -> None:
    r = server.client.post("/", json=body)
    assert r.status_code == status, r.text
    out = r.json()
    assert out["type"].endswith(slug) and out["error"] == out["detail"]
