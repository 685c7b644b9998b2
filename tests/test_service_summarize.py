"""/v1/summarize through `gramdex serve` itself: the server starts and supervises its summarizer workers."""

from __future__ import annotations

import time
from typing import Any

from service_support.fixtures import Indexes

DOC = ("the city council approved a new budget on tuesday . the budget raises spending on schools by ten percent . "
       "critics said the plan ignores roads . the mayor said roads will get money next year . "
       "the vote was seven to two . a final reading is set for march .")


def test_serve_supervises_workers_and_answers_summaries(make_server: Any, indexes: Indexes) -> None:
    srv = make_server({"demo": indexes.text}, "", env={"GRAMDEX_SUMMARIZER__WORKERS": "1"})
    end = time.monotonic() + 60
    r = srv.client.post("/v1/summarize", json={"text": DOC, "max_tokens": 20})
    while r.status_code == 503 and time.monotonic() < end:  # workers start in the background
        assert r.headers["retry-after"] and r.json()["type"].endswith(":summarizer-unavailable")
        time.sleep(0.2)
        r = srv.client.post("/v1/summarize", json={"text": DOC, "max_tokens": 20})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["summary"] and all(s["text"] in DOC for s in body["sentences"])
    bad = srv.client.post("/v1/summarize", json={"text": DOC, "ratio": 1.5})
    assert bad.status_code == 422 and bad.json()["type"].endswith(":impossible-budget")
    assert "gramdex_summarize" in srv.client.get("/metrics").text


def test_without_workers_summarize_is_a_clear_503(make_server: Any, indexes: Indexes) -> None:
    server = make_server({"demo": indexes.text})
    r = server.client.post("/v1/summarize", json={"text": DOC, "max_tokens": 20})
    assert r.status_code == 503 and r.headers["retry-after"] == "1"
    assert r.json()["type"].endswith(":summarizer-unavailable")
