"""Hostile requests against a real server: each gets its documented 4xx as problem+json, quickly, and the server
answers an ordinary count afterwards (checked after every test)."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from service_support.fixtures import Server

QUICK_S = 2.0  # a refusal must not wait for anything slow


@pytest.fixture(autouse=True)
def still_answers(server: Server) -> Iterator[None]:
    yield
    r = server.client.post("/v1/indexes/demo/count", json={"query": "the cat"}, timeout=10)
    assert r.status_code == 200 and r.json()["count"] > 0
    assert server.proc.poll() is None


def _problem(r: httpx.Response, status: int, slug: str) -> dict[str, Any]:
    assert r.status_code == status, r.text[:300]
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert body["type"] == f"urn:gramdex:problem:{slug}", body
    assert body["status"] == status
    return body  # type: ignore[no-any-return]


def _post_raw(server: Server, path: str, content: bytes) -> httpx.Response:
    start = time.monotonic()
    r = server.client.post(path, content=content, headers={"content-type": "application/json"})
    assert time.monotonic() - start < QUICK_S
    return r


def _raw_http(server: Server, request: bytes, timeout: float = 10) -> bytes:
    """Sends bytes no HTTP client would; returns what came back before the server closed or went quiet."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=timeout) as s:
        try:
            s.sendall(request)
        except OSError:  # the server may answer and close before reading everything: the answer still counts
            pass
        out = b""
        try:
            while b"\r\n\r\n" not in out or len(out) < out.find(b"\r\n\r\n") + 20:
                chunk = s.recv(65536)
                if not chunk:
                    break
                out += chunk
        except (TimeoutError, ConnectionResetError):
            pass
        return out


@pytest.mark.parametrize("body", [
    b'{"query": "\xff\xfe bad utf-8"}',
    b'{"query_ids": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    b'{"a": ' * 50_000 + b"1" + b"}" * 50_000,
    b'{"query": "the cat"',
], ids=["invalid-utf8", "nested-arrays", "nested-objects", "truncated"])
def test_undecodable_bodies_are_invalid_json(server: Server, body: bytes) -> None:
    _problem(_post_raw(server, "/v1/indexes/demo/count", body), 400, "invalid-json")


def test_missing_body_is_a_validation_error(server: Server) -> None:
    _problem(_post_raw(server, "/v1/indexes/demo/count", b""), 422, "validation-error")


@pytest.mark.parametrize("path,body", [
    ("/v1/indexes/demo/count", b'{"query": "the \\ud800 cat"}'),
    ("/v1/indexes/demo/count", b'{"query": "the AND \\udfff"}'),
    ("/v1/indexes/demo/ntd", b'{"prompt": "\\ud83d"}'),
    ("/v1/indexes/demo/prob", b'{"prompt": "the", "cont": "\\ud800"}'),
    ("/", b'{"index": "demo", "query_type": "count", "query": "\\ud800"}'),
    ("/v1/summarize", b'{"text": "One. Two \\ud800 three.", "max_tokens": 5}'),
    ("/v1/summarize/batch",
     b'{"documents": [{"text": "One. Two.", "max_tokens": 2}, {"text": "\\udc00 x", "ratio": 1}]}'),
])
def test_lone_surrogates_are_a_validation_error(server: Server, path: str, body: bytes) -> None:
    # JSON may escape a lone surrogate; Python decodes it into a str that no tokenizer takes, nor the summarizer
    # gateway's UTF-8 encoder on its way to a worker (both were 500s, and the 500 dropped the client's connection)
    problem = _problem(_post_raw(server, path, body), 422, "validation-error")
    if path.startswith("/v1/summarize"):
        assert problem["field"] == ("text" if path == "/v1/summarize" else "documents[1].text")
        assert "lone surrogate" in problem["detail"]


def test_body_over_the_limit(server: Server) -> None:
    _problem(_post_raw(server, "/v1/indexes/demo/count", b'{"query": "' + b"x" * (2 << 20) + b'"}'), 413,
             "body-too-large")
    # chunked, so no Content-Length announces it: refused while reading
    chunk = b" " * 0x100000
    raw = (b"POST /v1/indexes/demo/count HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
           b"Transfer-Encoding: chunked\r\n\r\n" + (b"100000\r\n" + chunk + b"\r\n") * 3 + b"0\r\n\r\n")
    head = _raw_http(server, raw)
    assert head.startswith(b"HTTP/1.1 413") and b"urn:gramdex:problem:body-too-large" in head


@pytest.mark.parametrize("body,field", [
    ({"query_ids": list(range(1, 100_000))}, "query_ids"),
    ({"query": "the " * 5000}, "query"),
    ({"query": "x" * 10_001}, "query"),
    ({"query_ids": [[[1]]] * 9}, "query_ids"),
    ({"query_ids": [[[1]] * 9]}, "query_ids"),
    ({"query": " AND ".join(["cat"] * 9)}, "query"),
    ({"query": " OR ".join(["cat"] * 9)}, "query"),
    ({"query_ids": [[list(range(1, 200))] * 8] * 8}, "query_ids"),
])
def test_giant_queries_are_query_too_large(server: Server, body: dict[str, Any], field: str) -> None:
    start = time.monotonic()
    r = server.client.post("/v1/indexes/demo/count", json=body)
    assert time.monotonic() - start < QUICK_S
    assert _problem(r, 413, "query-too-large")["field"] == field


def test_cnf_explosion_is_bounded_by_the_deadline(server: Server) -> None:
    """8 clauses of 8 very frequent terms over the 3-letter corpus: an answer (maybe approximate) or 504, never
    longer than the deadline allows, and cheap queries keep answering meanwhile."""
    terms = ["a", "b", "c", "ab", "ba", "ca", "bc", "cb"]
    cnf = " AND ".join(" OR ".join(terms) for _ in range(8))
    with httpx.Client(base_url=server.url, timeout=30) as other:
        start = time.monotonic()
        r = other.post("/v1/indexes/slow/count", json={"query": cnf, "max_clause_freq": 500_000,
                                                        "max_diff_tokens": 1000, "timeout_ms": 800})
        elapsed = time.monotonic() - start
    assert elapsed < 5
    if r.status_code == 504:
        _problem(r, 504, "deadline-exceeded")
    else:
        assert r.status_code == 200, r.text[:300]
        assert r.json()["count"] >= 0


@pytest.mark.parametrize("path,body,field,limit", [
    ("/v1/indexes/demo/ntd", {"prompt": "the"}, "max_support", 10_000),
    ("/v1/indexes/demo/infgram/ntd", {"prompt": "the"}, "max_support", 10_000),
    ("/v1/indexes/demo/documents/search", {"query": "the cat"}, "maxnum", 20),
    ("/v1/indexes/demo/documents/search", {"query": "the cat"}, "max_disp_len", 10_000),
    ("/v1/indexes/demo/count", {"query": "cat AND mat"}, "max_clause_freq", 500_000),
    ("/v1/indexes/demo/count", {"query": "cat AND mat"}, "max_diff_tokens", 1_000),
    ("/v1/indexes/demo/attribute", {"query": "the cat sat"}, "max_locations", 1_000),
    ("/", {"index": "demo", "query_type": "ntd", "query": "the"}, "max_support", 10_000),
    ("/", {"index": "demo", "query_type": "search_docs", "query": "the"}, "maxnum", 20),
    ("/", {"index": "demo", "query_type": "search_docs", "query": "the"}, "max_disp_len", 10_000),
])
def test_limits_at_and_past(server: Server, path: str, body: dict[str, Any], field: str, limit: int) -> None:
    assert server.client.post(path, json={**body, field: limit}).status_code == 200
    over = _problem(server.client.post(path, json={**body, field: limit + 1}), 413, "query-too-large")
    assert over["limit"] == limit
    _problem(server.client.post(path, json={**body, field: 2**70}), 413, "query-too-large")
    if field != "max_locations":  # 0 locations is allowed: spans without where they occur
        assert server.client.post(path, json={**body, field: 0}).status_code in (400, 422)
    assert server.client.post(path, json={**body, field: -1}).status_code in (400, 422)


def test_document_limits(server: Server) -> None:
    assert server.client.get("/v1/indexes/demo/documents/0", params={"max_disp_len": 10_000}).status_code == 200
    _problem(server.client.get("/v1/indexes/demo/documents/0", params={"max_disp_len": 10_001}), 413,
             "query-too-large")
    _problem(server.client.get("/v1/indexes/demo/documents/" + "9" * 40), 404, "unknown-document")
    _problem(server.client.get("/v1/indexes/demo/documents/-1"), 404, "unknown-document")


def test_timeouts_past_the_maximum_are_capped(server: Server) -> None:
    for t in (1e308, 30_001):
        r = server.client.post("/v1/indexes/demo/ntd", json={"prompt": "the", "timeout_ms": t})
        assert r.status_code == 200
    r = server.client.post("/v1/indexes/demo/ntd", content=b'{"prompt": "the", "timeout_ms": NaN}',
                           headers={"content-type": "application/json"})
    _problem(r, 422, "validation-error")


@pytest.mark.parametrize("name", ["%2e%2e", "%2e%2e%2f%2e%2e%2fetc", "..%2fslow", "%00", "demo%00", "demo%2f",
                                  "~root", "a" * 5000, "%2fetc%2fpasswd"])
def test_path_like_index_names(server: Server, name: str) -> None:
    r = server.client.post(f"/v1/indexes/{name}/count", json={"query": "the"})
    assert r.status_code == 404 and r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["type"] in ("urn:gramdex:problem:unknown-index", "urn:gramdex:problem:not-found")
    r = server.client.get(f"/v1/indexes/{name}/documents/0")
    assert r.status_code == 404


@pytest.mark.parametrize("name", ["../../etc/passwd", "/etc/passwd", "demo/../slow", "", ".", "\x00"])
def test_path_like_index_names_in_the_compat_body(server: Server, name: str) -> None:
    r = server.client.post("/", json={"index": name, "query_type": "count", "query": "the"})
    body = _problem(r, 404, "unknown-index")
    assert "/tmp" not in r.text and "gs" not in body.get("instance", "")


def test_oversized_headers_are_refused(server: Server) -> None:
    one_big = b"GET /v1/indexes HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (1 << 20) + b"\r\n\r\n"
    many = b"GET /v1/indexes HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: a\r\n" % i for i in range(20_000)) + b"\r\n"
    for request in (one_big, many):
        start = time.monotonic()
        head = _raw_http(server, request)
        assert time.monotonic() - start < 5
        assert head.startswith(b"HTTP/1.1 431"), head[:200]
        assert b"urn:gramdex:problem:headers-too-large" in head


def test_garbage_on_the_wire(server: Server) -> None:
    for request in (b"GET /v1/indexes/\xff\xfe/documents/1 HTTP/1.1\r\nHost: x\r\n\r\n",
                    b"POST /v1/indexes/demo/count HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n",
                    b"POST /v1/indexes/demo/count HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n{}",
                    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 200,  # a TLS hello
                    b"GARBAGE\r\n\r\n"):
        head = _raw_http(server, request)
        assert head == b"" or head.startswith(b"HTTP/1.1 4"), head[:200]


def test_wrong_content_type_is_a_415(server: Server) -> None:
    for media in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"):
        r = server.client.post("/v1/indexes/demo/count", content=b'{"query": "the"}', headers={"content-type": media})
        assert r.status_code == 415 and r.headers["content-type"].startswith("application/problem+json")
        assert r.json()["type"].endswith(":unsupported-media-type")
    for media in ("application/json", "application/json; charset=utf-8", "application/problem+json"):
        r = server.client.post("/v1/indexes/demo/count", content=b'{"query": "the"}', headers={"content-type": media})
        assert r.status_code == 200, (media, r.text)
