"""/v1/summarize through `gramdex serve` itself: the server starts and supervises its summarizer workers."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from service_support.fixtures import Indexes

from summarizer.corpus_lm import InfiniGram
from summarizer.model import Model
from summarizer.summarize import Summarizer
from summarizer.word_index import build_word_index

DOC = ("the city council approved a new budget on tuesday . the budget raises spending on schools by ten percent . "
       "critics said the plan ignores roads . the mayor said roads will get money next year . "
       "the vote was seven to two . a final reading is set for march .")


def _wait_for_summary(srv: Any, body: dict[str, Any]) -> Any:
    end = time.monotonic() + 60
    r = srv.client.post("/v1/summarize", json=body)
    while r.status_code == 503 and time.monotonic() < end:  # workers start in the background
        assert r.headers["retry-after"] and r.json()["type"].endswith(":summarizer-unavailable")
        time.sleep(0.2)
        r = srv.client.post("/v1/summarize", json=body)
    return r


def test_serve_supervises_workers_and_answers_summaries(make_server: Any, indexes: Indexes) -> None:
    srv = make_server({"demo": indexes.text}, "", env={"GRAMDEX_SUMMARIZER__WORKERS": "1"})
    r = _wait_for_summary(srv, {"text": DOC, "max_tokens": 20})
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


def test_the_settings_name_word_level_indexes_for_the_critics(make_server: Any, indexes: Indexes,
                                                             tmp_path: Path) -> None:
    news = tmp_path / "wordix"
    build_word_index([DOC, "the council met again on friday . the mayor said the budget is final ."], news, threads=1)
    extra = f'[summarizer]\nindex = "news"\n[summarizer.indexes]\nnews = "{news}"\n'
    srv = make_server({"demo": indexes.text}, extra, env={"GRAMDEX_SUMMARIZER__WORKERS": "1"})
    r = _wait_for_summary(srv, {"text": DOC, "max_tokens": 20})
    assert r.status_code == 200, r.text
    local = Summarizer(Model.load())
    with_index = local.summarize(DOC, max_tokens=20, lm=InfiniGram(news)).scores.faithfulness
    assert r.json()["scores"]["faithfulness"] == pytest.approx(with_index)           # the default index was used
    assert with_index != pytest.approx(local.summarize(DOC, max_tokens=20).scores.faithfulness)
    named = srv.client.post("/v1/summarize", json={"text": DOC, "max_tokens": 20, "index": "news"})
    assert named.json()["scores"] == r.json()["scores"]
    # the engine's own index is served for n-gram queries, but it is not word-level: a clear 404 that says so
    demo = srv.client.post("/v1/summarize", json={"text": DOC, "max_tokens": 20, "index": "demo"})
    assert demo.status_code == 404 and demo.json()["type"].endswith(":unknown-index")
    assert "'news'" in demo.json()["detail"] and "word-level" in demo.json()["detail"]


def test_a_worker_refuses_an_index_that_is_not_word_level(indexes: Indexes) -> None:
    r = subprocess.run([sys.executable, "-m", "service.summarize.worker", "--port", "1",
                        "--index", f"demo={indexes.text}"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "not a word-level index" in r.stderr, r.stderr
    r = subprocess.run([sys.executable, "-m", "service.summarize.worker", "--port", "1", "--default-index", "x"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "default index 'x'" in r.stderr, r.stderr
    r = subprocess.run([sys.executable, "-m", "service.summarize.worker", "--port", "1", "--index",
                        f"gone={indexes.text / 'missing'}"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "index 'gone' at" in r.stderr and "Traceback" not in r.stderr, r.stderr
