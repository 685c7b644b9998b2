"""The /v1 API over a real server: every endpoint in its text and id forms, CNF, documents, and every error class."""

from __future__ import annotations

import json

import pytest
from service_support.fixtures import Indexes, Server

from native import Engine

PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
def engine(indexes: Indexes) -> Engine:
    return Engine(indexes.text)


def post(server: Server, path: str, body: object, **kw: object) -> tuple[int, dict]:
    r = server.client.post(path, json=body, **kw)  # type: ignore[arg-type]
    return r.status_code, r.json()


def problem(server: Server, method: str, path: str, status: int, slug: str, **kw: object) -> dict:
    r = server.client.request(method, path, **kw)  # type: ignore[arg-type]
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(PROBLEM)
    body = r.json()
    assert body["type"] == f"urn:gramdex:problem:{slug}" and body["status"] == status
    assert "Traceback" not in r.text and "/tmp" not in r.text and "/work" not in r.text
    return body


def test_indexes_listed(server: Server, engine: Engine) -> None:
    r = server.client.get("/v1/indexes")
    assert r.status_code == 200
    demo = {i["name"]: i for i in r.json()["indexes"]}["demo"]
    assert demo["documents"] == engine.doc_cnt == 300 and demo["tokens"] == engine.tok_cnt
    assert demo["token_width"] == 2 and demo["tokenizer"] == "tokenizer.json"


def test_count_text_and_ids(server: Server, engine: Engine) -> None:
    status, body = post(server, "/v1/indexes/demo/count", {"query": "the cat sat on"})
    assert status == 200
    ids = body["token_ids"]
    assert body["count"] == engine.count(ids) > 0 and body["approx"] is False
    assert len(body["tokens"]) == len(ids) and body["tokens"][0].startswith("Ġ")
    status, by_ids = post(server, "/v1/indexes/demo/count", {"query_ids": ids})
    assert by_ids["count"] == body["count"]
    _, empty = post(server, "/v1/indexes/demo/count", {"query_ids": []})
    assert empty["count"] == engine.tok_cnt


def test_count_cnf_text_and_ids(server: Server, engine: Engine) -> None:
    _, body = post(server, "/v1/indexes/demo/count", {"query": "cat AND mat OR hat"})
    cnf = body["token_ids"]
    assert len(cnf) == 2 and len(cnf[0]) == 1 and len(cnf[1]) == 2  # OR binds tighter than AND
    assert body["count"] == engine.count_cnf(cnf).count > 0
    _, by_ids = post(server, "/v1/indexes/demo/count", {"query_ids": cnf, "max_diff_tokens": 5})
    assert by_ids["count"] == engine.count_cnf(cnf, 50000, 5).count


def test_find(server: Server, engine: Engine) -> None:
    _, body = post(server, "/v1/indexes/demo/find", {"query": "the dog"})
    found = engine.find(body["token_ids"])
    assert body["count"] == found.cnt and body["segment_by_shard"] == [list(s) for s in found.segment_by_shard]
    _, cnf = post(server, "/v1/indexes/demo/find", {"query": "dog AND tree"})
    assert cnf["ptrs_by_shard"] == engine.find_cnf(cnf["token_ids"]).ptrs_by_shard


def test_prob_and_infgram_prob(server: Server, engine: Engine) -> None:
    prompt = post(server, "/v1/indexes/demo/count", {"query": "the dog"})[1]["token_ids"]
    cont = post(server, "/v1/indexes/demo/count", {"query": "jumped"})[1]["token_ids"]
    assert len(cont) == 1
    status, body = post(server, "/v1/indexes/demo/prob", {"prompt": "the dog", "cont": "jumped"})
    assert status == 200, body
    expect = engine.prob(prompt, cont[0])
    assert (body["prompt_cnt"], body["cont_cnt"], body["prob"]) == (expect.prompt_cnt, expect.cont_cnt, expect.prob)
    assert body["prompt_ids"] == prompt and body["cont_id"] == cont[0]
    _, by_ids = post(server, "/v1/indexes/demo/prob", {"prompt_ids": [7, 7, 7, 7], "cont_id": cont[0]})
    assert by_ids["prompt_cnt"] == 0 and by_ids["prob"] is None  # never seen: no probability, not -1
    _, inf = post(server, "/v1/indexes/demo/infgram/prob", {"prompt_ids": [7, 7, *prompt], "cont_id": cont[0]})
    e = engine.infgram_prob([7, 7, *prompt], cont[0])
    assert (inf["suffix_len"], inf["prob"]) == (e.suffix_len, e.prob) and e.suffix_len == len(prompt)


def test_ntd_and_infgram_ntd(server: Server, engine: Engine) -> None:
    _, body = post(server, "/v1/indexes/demo/ntd", {"prompt": "the cat", "max_support": 500})
    e = engine.ntd(body["prompt_ids"], 500)
    assert body["prompt_cnt"] == e.prompt_cnt and body["approx"] == e.approx
    assert {t["token_id"]: t["cont_cnt"] for t in body["next_tokens"]} == e.counts
    counts = [t["cont_cnt"] for t in body["next_tokens"]]
    assert counts == sorted(counts, reverse=True) and abs(sum(t["prob"] for t in body["next_tokens"]) - 1) < 1e-9
    _, inf = post(server, "/v1/indexes/demo/infgram/ntd", {"prompt_ids": [9, 9, 9, *body["prompt_ids"]]})
    ei = engine.infgram_ntd([9, 9, 9, *body["prompt_ids"]])
    assert inf["suffix_len"] == ei.suffix_len
    assert {t["token_id"]: t["cont_cnt"] for t in inf["next_tokens"]} == ei.counts


def test_search_documents_marks_matches(server: Server, engine: Engine) -> None:
    _, body = post(server, "/v1/indexes/demo/documents/search",
                   {"query": "the old man", "maxnum": 3, "max_disp_len": 15, "seed": 4})
    assert body["count"] == engine.count(body["token_ids"]) and len(body["documents"]) == 3
    for doc in body["documents"]:
        assert doc["disp_len"] <= 15 and doc["metadata"]["metadata"]["title"].startswith("doc ")
        marked = [s["text"] for s in doc["spans"] if s["match"] == "0"]
        assert marked and all(t.strip() == "the old man" for t in marked)
        assert "".join(s["text"] for s in doc["spans"]).replace(" ", "") == doc["text"].replace(" ", "")
    _, again = post(server, "/v1/indexes/demo/documents/search",
                    {"query": "the old man", "maxnum": 3, "max_disp_len": 15, "seed": 4})
    assert again["idxs"] == body["idxs"]  # deterministic for a seed
    _, cnf = post(server, "/v1/indexes/demo/documents/search", {"query": "bird AND garden", "max_disp_len": 200})
    assert cnf["count"] > 0
    labels = {s["match"] for s in cnf["documents"][0]["spans"]}
    assert {"0", "1"} <= labels


def test_get_document(server: Server, engine: Engine) -> None:
    r = server.client.get("/v1/indexes/demo/documents/3", params={"max_disp_len": 5})
    assert r.status_code == 200
    body = r.json()
    doc = engine.get_doc_by_ix(3, 5)
    assert body["token_ids"] == doc.token_ids and body["doc_len"] == doc.doc_len and body["metadata"]["linenum"] == 3
    assert body["spans"] == [{"text": body["text"], "match": None}]


def test_attribute(server: Server, engine: Engine) -> None:
    _, body = post(server, "/v1/indexes/demo/attribute",
                   {"query": "the cat sat on the mat zzqx", "min_len": 2, "max_locations": 2})
    spans = engine.attribute(body["token_ids"], 2, 2)
    assert [(s["start"], s["end"], s["count"]) for s in body["spans"]] == [(s.start, s.end, s.count) for s in spans]
    first = body["spans"][0]
    assert "the cat sat on the mat" in first["text"] and len(first["locations"]) == 2
    assert all(0 <= loc["doc_ix"] < 300 for loc in first["locations"])


def test_score(server: Server, engine: Engine) -> None:
    _, body = post(server, "/v1/indexes/demo/score", {"query": "the cat ran to the garden"})
    e = engine.score(body["token_ids"])
    assert [s["prob"] for s in body["scores"]] == [t.prob for t in e]
    assert [s["suffix_len"] for s in body["scores"]] == [t.suffix_len for t in e]


def test_bytes_index_takes_text(server: Server) -> None:
    _, body = post(server, "/v1/indexes/slow/count", {"query": "abc"})
    assert body["token_ids"] == [97, 98, 99] and body["tokens"] == ["a", "b", "c"] and body["count"] > 0


# --- errors ---

def test_unknown_index_document_and_route(server: Server) -> None:
    body = problem(server, "POST", "/v1/indexes/nope/count", 404, "unknown-index", json={"query": "x"})
    assert body["field"] == "index"
    problem(server, "GET", "/v1/indexes/demo/documents/300", 404, "unknown-document")
    problem(server, "GET", "/v1/nothing", 404, "not-found")
    problem(server, "GET", "/v1/indexes/demo/count", 405, "method-not-allowed")


def test_malformed_bodies(server: Server) -> None:
    problem(server, "POST", "/v1/indexes/demo/count", 400, "invalid-json", content=b"{\"query\": ",
            headers={"content-type": "application/json"})
    body = problem(server, "POST", "/v1/indexes/demo/count", 422, "validation-error", json={"quer": "x"})
    assert body["field"] == "quer"
    body = problem(server, "POST", "/v1/indexes/demo/count", 422, "validation-error", json={"query_ids": [1, -2]})
    assert body["field"].startswith("query_ids")
    assert problem(server, "POST", "/v1/indexes/demo/count", 422, "validation-error",
                   json={"query_ids": [70000]})["field"] == "query_ids"
    assert problem(server, "POST", "/v1/indexes/demo/count", 422, "validation-error",
                   json={"query": "a", "query_ids": [1]})["field"] == "query"
    assert problem(server, "POST", "/v1/indexes/demo/count", 422, "validation-error", json={})["field"] == "query"
    assert problem(server, "POST", "/v1/indexes/demo/ntd", 422, "validation-error",
                   json={"prompt": "a", "max_support": 0})["field"] == "max_support"
    assert problem(server, "POST", "/v1/indexes/demo/prob", 400, "invalid-query",
                   json={"prompt": "the", "cont": "cat sat"})["field"] == "cont"
    assert problem(server, "GET", "/v1/indexes/demo/documents/x", 422, "validation-error")["field"] == "doc_ix"
    problem(server, "POST", "/v1/indexes/demo/count", 400, "invalid-query", json={"query": "cat AND  OR x"})
    # no coercion: JSON true is not token id 1 (it counted "!" before), "5" and 5.5 are not 5
    for body, field in [({"query_ids": [True, 5]}, "query_ids"), ({"query_ids": ["5"]}, "query_ids"),
                        ({"query_ids": [5.5]}, "query_ids"), ({"query": "the", "max_diff_tokens": True},
                                                              "max_diff_tokens")]:
        assert problem(server, "POST", "/v1/indexes/demo/count", 422, "validation-error",
                       json=body)["field"].startswith(field), body


def test_limits_answer_413(server: Server) -> None:
    cases = [
        ({"query_ids": [5] * 1001}, "query_ids"),
        ({"query": "x" * 10_001}, "query"),
        ({"query_ids": [[[5]]] * 9}, "query_ids"),
        ({"query_ids": [[[5]] * 9]}, "query_ids"),
        ({"query": "cat AND mat", "max_clause_freq": 500_001}, "max_clause_freq"),
    ]
    for body, field in cases:
        assert problem(server, "POST", "/v1/indexes/demo/count", 413, "query-too-large", json=body)["field"] == field
    for body, field in [({"query": "cat", "maxnum": 21}, "maxnum"), ({"query": "cat", "max_disp_len": 10_001},
                                                                       "max_disp_len")]:
        assert problem(server, "POST", "/v1/indexes/demo/documents/search", 413, "query-too-large",
                       json=body)["field"] == field
    big = json.dumps({"query": "a" * (1 << 20)}).encode()
    problem(server, "POST", "/v1/indexes/demo/count", 413, "body-too-large", content=big,
            headers={"content-type": "application/json"})

    def chunks():  # no Content-Length: the limit applies while reading
        for _ in range(20):
            yield b" " * 65536
    problem(server, "POST", "/v1/indexes/demo/count", 413, "body-too-large", content=chunks(),
            headers={"content-type": "application/json"})


def test_deadline_stops_the_query(server: Server) -> None:
    cnf = [[[97]], [[98]], [[99]], [[97, 98]], [[98, 99]], [[99, 97]]]
    body = problem(server, "POST", "/v1/indexes/slow/count", 504, "deadline-exceeded",
                   json={"query_ids": cnf, "max_clause_freq": 500_000, "max_diff_tokens": 1000, "timeout_ms": 30})
    assert body["field"] == "timeout_ms"
    r = server.client.post("/v1/indexes/slow/count", json={"query_ids": cnf, "max_clause_freq": 500_000,
                                                            "max_diff_tokens": 1000, "timeout_ms": 20_000})
    assert r.status_code == 200 and r.json()["count"] > 0
