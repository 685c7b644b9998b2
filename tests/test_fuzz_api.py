"""Property-based fuzzing of every operation in openapi.yaml (schemathesis) against a real `gramdex serve`.

Each operation gets schema-valid cases (positive) and schema-violating ones (negative), with the `index` path
parameter drawn both freely and as a served index name so the handlers past routing are reached. Every response
must be: no 5xx but the documented 503/504, conformant to the contract (status, content type, body schema), and
every error an RFC 9457 problem+json whose `status` matches the HTTP status. GRAMDEX_FUZZ_EXAMPLES scales the
run (default keeps the whole module under a minute on two cores).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hypothesis.strategies as st
import pytest
import schemathesis
from hypothesis import HealthCheck, example, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from service_support.fixtures import ADMIN_KEY, Indexes, Server, write_config

CONTRACT = Path(__file__).resolve().parents[1] / "openapi.yaml"
EXAMPLES = int(os.environ.get("GRAMDEX_FUZZ_EXAMPLES", "40"))
DOCUMENTED_5XX = {503, 504}
SCHEMA = schemathesis.openapi.from_path(CONTRACT)
OPERATIONS = [r.ok() for r in SCHEMA.get_all_operations()]
# checks against the contract; schemathesis' "positive data accepted" does not apply: schema-valid bodies can
# still be refused by rules the schema cannot express (query XOR query_ids, ids over the index's maximum)
CHECKS = [status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance]
seen: dict[str, dict[int, int]] = {}


@pytest.fixture(scope="module")
def fuzz_server(indexes: Indexes, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    # small limits so that schema-valid but huge values hit the limit checks rather than run for long;
    # a short deadline bounds any slow query the fuzzer finds (504 is documented)
    extra = ("[limits]\nmax_query_tokens = 64\nmax_query_chars = 400\ndefault_timeout_ms = 2000\n"
             "max_timeout_ms = 2000\n[summarizer]\nworkers = 1\ndeadline_s = 5\n")
    cfg = write_config(tmp_path_factory.mktemp("fuzz") / "gramdex.toml", {"demo": indexes.text}, extra)
    srv = Server(cfg, env={"GRAMDEX_SUMMARIZER__WORKERS": "1"})
    end = time.monotonic() + 60  # let the summarizer worker come up so /v1/summarize is fuzzed past the 503
    while time.monotonic() < end:
        if srv.client.post("/v1/summarize", json={"text": "a b c .", "max_tokens": 2}).status_code != 503:
            break
        time.sleep(0.2)
    yield srv
    srv.stop()


def _problem_ok(response: Any) -> None:
    status = response.status_code
    assert status < 500 or status in DOCUMENTED_5XX, f"undocumented {status}: {response.text[:500]}"
    if status >= 400:
        ctype = response.headers.get("content-type") or [""]  # schemathesis keeps every value of a header
        assert ctype[0].startswith("application/problem+json"), response.text
        body = response.json()
        assert body["type"].startswith("urn:gramdex:problem:") and body["status"] == status, body
        # no stack traces or file paths leak into error bodies
        text = response.text
        assert "Traceback" not in text and "/work/" not in text and ".py" not in text, text


WORDS = ["the", "cat", "dog", "sat", "on", "mat", "a", "red", "house", "friend", "zebra", "é", "\u4e2d", "\ud800",
         " ", ""]
TEXT = st.lists(st.sampled_from(WORDS), max_size=12).map(" ".join)
CNF_TEXT = st.lists(st.lists(st.sampled_from(WORDS[:-1]), min_size=1, max_size=3).map(" OR ".join),
                    min_size=1, max_size=4).map(" AND ".join)
# documents for /v1/summarize: sentences of plain words (the schema's `text: Any` alone rarely yields one)
DOC_TEXT = st.lists(st.lists(st.sampled_from(WORDS[:11]), min_size=1, max_size=12).map(" ".join),
                    min_size=1, max_size=6).map(" . ".join)
IDS = st.lists(st.integers(0, 70_000), max_size=80)  # over the limit (64) and over u16's maximum at times
CNF_IDS = st.lists(st.lists(st.lists(st.integers(0, 500), max_size=3), max_size=4), max_size=5)


def _near(limit: int) -> st.SearchStrategy[int | None]:
    """None, small values, the limit itself and just past it."""
    return st.one_of(st.none(), st.integers(1, 5), st.sampled_from([limit, limit + 1]), st.integers(1, 2 * limit))


# field -> values that mean something to the handlers (the schema alone mostly yields bodies refused at once)
FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "max_support": _near(10_000), "maxnum": _near(20), "max_disp_len": _near(10_000),
    "max_clause_freq": _near(500_000), "max_diff_tokens": _near(1_000), "max_locations": _near(1_000),
    "timeout_ms": st.one_of(st.none(), st.floats(0.001, 5_000)), "min_len": st.integers(0, 5),
    "seed": st.integers(0, 2**31), "cont": st.one_of(st.none(), st.sampled_from(WORDS)),
    "cont_id": st.one_of(st.none(), st.integers(0, 500)),
    "query_type": st.sampled_from(["count", "prob", "ntd", "infgram_prob", "infgram_ntd", "search_docs", "find"]),
}


@st.composite
def _valid_body(draw: st.DrawFn, props: dict[str, Any]) -> dict[str, Any]:
    """A body every handler answers with 200: plain words or a few ids inside the demo index's vocabulary (338),
    a budget that fits, no optional limits."""
    body: dict[str, Any] = {}
    for base in ("query", "prompt"):
        if base in props:
            if draw(st.booleans()):
                body[base] = draw(st.lists(st.sampled_from(WORDS[:10]), min_size=1, max_size=6).map(" ".join))
            else:
                body[base + "_ids"] = draw(st.lists(st.integers(1, 300), min_size=1, max_size=6))
    if "cont" in props:
        body["cont_id"] = draw(st.integers(1, 300))
    if "text" in props:
        body["text"] = draw(DOC_TEXT)
        body["max_tokens"] = draw(st.integers(1, 60))
    if "corpus" in props:
        body["index"] = "demo"
        body["query_type"] = "count"
    return body


@st.composite
def _semantic_body(draw: st.DrawFn, props: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = {}
    for base in ("query", "prompt"):
        if base in props:  # one of text / ids, as the handlers require
            if draw(st.booleans()):
                body[base] = draw(st.one_of(TEXT, CNF_TEXT) if base == "query" else TEXT)
            else:
                body[base + "_ids"] = draw(st.one_of(IDS, CNF_IDS) if base == "query" else IDS)
    for name, strategy in FIELDS.items():
        if name in props and draw(st.booleans()):
            value = draw(strategy)
            if value is not None:
                body[name] = value
    if "text" in props:
        body["text"] = draw(DOC_TEXT)
        if draw(st.booleans()):
            body["max_tokens"] = draw(st.one_of(st.integers(-1, 5), st.integers(1, 60)))
        else:
            body["ratio"] = draw(st.floats(0.0, 1.2))
        body["mode"] = draw(st.sampled_from(["extractive", "compressive"]))
    if "cont" in props and "cont" not in body and "cont_id" not in body:
        body["cont_id"] = draw(st.integers(0, 400))
    if "corpus" in props:
        body["index"] = "demo"
        body.setdefault("query_type", "count")
    return body


def _body_props(op: Any) -> dict[str, Any]:
    try:
        ref = op.definition.raw["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    except (KeyError, TypeError):
        return {}
    return SCHEMA.raw_schema["components"]["schemas"][ref.rsplit("/", 1)[1]].get("properties", {})


def _cases(op: Any) -> st.SearchStrategy[Any]:
    """Where the operation has a body the handlers understand, one branch of two yields bodies that must answer 200
    (hypothesis drew 13-19% of 400 cases from it), so the random cases reach the handler often; the other probes
    the limits from the handlers' semantics and from the schema alone."""
    valid, strategies = [], []
    props = _body_props(op)
    if "query" in props or "prompt" in props or "text" in props:
        params = {"index": "demo"} if "{index}" in op.path else None
        valid.append(_valid_body(props).flatmap(lambda b: op.as_strategy(path_parameters=params, body=b)))
        strategies.append(_semantic_body(props).flatmap(lambda b: op.as_strategy(path_parameters=params, body=b)))
    if "{doc_ix}" in op.path:  # around the demo index's 300 documents
        strategies.append(st.integers(-3, 305).flatmap(
            lambda d: op.as_strategy(path_parameters={"index": "demo", "doc_ix": d})))
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
        strategies.append(op.as_strategy(generation_mode=mode))
        if "{index}" in op.path:
            strategies.append(op.as_strategy(generation_mode=mode, path_parameters={"index": "demo"}))
    return st.one_of(*valid, st.one_of(strategies))


def _plain_case(op: Any) -> Any | None:
    """One request the operation must answer with 200, always run first (hypothesis's explicit example): the
    random cases reach the handlers often, this one every time."""
    props = _body_props(op)
    body: dict[str, Any] = {}
    if "query" in props:
        body["query"] = "the cat"
    if "prompt" in props:
        body["prompt"] = "the cat"
    if "cont" in props:
        body["cont"] = "sat"
    if "text" in props:
        body |= {"text": "the cat sat on the mat . the dog sat on the red mat .", "max_tokens": 8}
    if "corpus" in props:
        body |= {"index": "demo", "query_type": "count"}
    if not body:
        return None
    params = {"index": "demo"} if "{index}" in op.path else {}
    return op.Case(path_parameters=params, body=body, media_type="application/json")


@pytest.mark.parametrize("op", OPERATIONS, ids=[op.label for op in OPERATIONS])
def test_operation(fuzz_server: Server, op: Any) -> None:
    counts = seen.setdefault(op.label, {})

    def run(case: Any) -> None:
        response = case.call(base_url=fuzz_server.url, timeout=30)
        counts[response.status_code] = counts.get(response.status_code, 0) + 1
        _problem_ok(response)
        case.validate_response(response, checks=CHECKS)

    test = given(case=_cases(op))(run)
    plain = _plain_case(op)
    if plain is not None:
        test = example(case=plain)(test)
    settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))(test)()
    assert sum(counts.values()) > 0
    # the server is still whole after the operation's cases
    assert fuzz_server.client.post("/v1/indexes/demo/count", json={"query": "the cat"}).status_code == 200


def test_admin_reload_with_key_is_fuzzed_too(fuzz_server: Server) -> None:
    """The admin operation with a valid key: schema-valid or not, it reloads or answers a 4xx, never a 5xx."""
    op = SCHEMA.find_operation_by_path("POST", "/v1/admin/reload")

    @settings(max_examples=5, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(case=op.as_strategy())
    def run(case: Any) -> None:
        response = case.call(base_url=fuzz_server.url, headers={"Authorization": f"Bearer {ADMIN_KEY}"})
        assert response.status_code == 200, response.text
        case.validate_response(response, checks=CHECKS)

    run()
    assert fuzz_server.proc.poll() is None


def test_fuzzing_reached_the_handlers() -> None:
    """The cases got past validation: every query operation answered 200 at least once, and some 4xx."""
    if len(seen) < len(OPERATIONS):
        pytest.skip("runs after the per-operation tests")
    print("\nfuzzed", sum(sum(c.values()) for c in seen.values()), "requests:",
          {op: dict(sorted(c.items())) for op, c in seen.items()})
    for op, counts in seen.items():
        if op.startswith("POST /v1/indexes/") or op == "POST /v1/summarize":
            assert counts.get(200, 0) > 0, (op, counts)
    assert any(s >= 400 for c in seen.values() for s in c)
