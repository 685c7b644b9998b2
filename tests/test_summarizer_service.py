"""Workers end to end: real worker processes behind a real gateway, over real HTTP."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator

import httpx
import pytest
from prometheus_client import REGISTRY
from service_support.gateway import Gateway

from service.summarize.gateway import PoolConfig, WorkerPool

NEWS = ("the city council approved a new budget on monday . the budget cuts funding for parks . "
        "council members said the parks budget would be restored next year . residents protested the cuts . ")


def _long_document(words: int) -> str:
    # varied but repetitive text: the cache model's work grows with the square of the length
    base = NEWS.split()
    return " ".join(f"{base[i % len(base)]}{'' if i % 7 else i % 97}" for i in range(words))


@pytest.fixture(scope="module")
def gateway() -> Iterator[Gateway]:
    g = Gateway(PoolConfig(local_workers=2, health_interval_s=0.3, hang_timeout_s=2.0))
    yield g
    g.close()


def _metric(name: str, labels: dict[str, str] | None = None) -> float:
    return REGISTRY.get_sample_value(name, labels or {}) or 0.0


def test_summarize_and_batch(gateway: Gateway) -> None:
    with httpx.Client(base_url=gateway.url, timeout=30) as c:
        r = c.post("/v1/summarize", json={"text": NEWS, "max_tokens": 20})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["summary"] and body["model"] and body["scores"]["support"] == 1.0
        for s in body["sentences"]:
            assert NEWS[s["start"]:s["end"]] == s["text"]
        r = c.post("/v1/summarize/batch", json={"documents": [{"text": NEWS, "ratio": 0.5},
                                                              {"text": NEWS, "max_tokens": 10, "mode": "compressive"}]})
        assert r.status_code == 200 and len(r.json()["results"]) == 2


@pytest.mark.parametrize(("body", "status"), [
    ({"text": "", "max_tokens": 10}, 400), ({"text": "   .,;", "max_tokens": 10}, 400),
    ({"text": 42, "ratio": 0.5}, 400),
    ({"text": "x " * 150_000, "max_tokens": 10}, 413), ({"text": NEWS}, 422), ({"text": NEWS, "max_tokens": 0}, 422),
    ({"text": NEWS, "ratio": 2.0}, 422), ({"text": NEWS, "max_tokens": 5, "ratio": 0.1}, 422),
    ({"text": NEWS, "max_tokens": 5, "index": "nope"}, 404),
    # no coercion, no ignored fields: each was a 200 before (true as a budget of 1, a misspelt mode ignored)
    ({"text": NEWS, "max_tokens": True}, 422), ({"text": NEWS, "ratio": True}, 422),
    ({"text": NEWS, "max_tokens": "5"}, 422),
    ({"text": NEWS, "max_tokens": 5, "mdoe": "compressive"}, 422)])
def test_bad_input_is_a_clear_problem(gateway: Gateway, body: dict[str, object], status: int) -> None:
    r = httpx.post(f"{gateway.url}/v1/summarize", json=body, timeout=30)
    assert r.status_code == status
    assert r.headers["content-type"].startswith("application/problem+json") and r.json()["detail"]
    if status == 422 and len(body) == 2:   # the one field besides text is the one at fault
        assert r.json()["field"] == next(k for k in body if k != "text")
    if "mdoe" in body:
        assert r.json()["field"] == "mdoe"


def test_the_size_limit_is_one_the_deadline_can_serve(gateway: Gateway) -> None:
    # the limit (60,000 characters) is set by the cache model's quadratic cost: 413 one character past it
    text = ("the council met . " * 4000)[:60_001]
    r = httpx.post(f"{gateway.url}/v1/summarize", json={"text": text, "max_tokens": 10}, timeout=30)
    assert r.status_code == 413 and r.json()["limit"] == 60_000 and "60,001 characters" in r.json()["detail"]


@pytest.mark.parametrize(("text", "reason"), [
    ("Yes. " * 12_000, "24,000 tokens in 12,000 sentences"),          # every token against every sentence
    ("a " * 30_000, "30,000 tokens that repeat so much")])            # every token against its equals
def test_texts_within_the_size_limit_that_would_take_gbs_are_413_too(gateway: Gateway, text: str,
                                                                     reason: str) -> None:
    assert len(text) <= 60_000
    with httpx.Client(base_url=gateway.url, timeout=30) as c:
        r = c.post("/v1/summarize", json={"text": text, "max_tokens": 10})
        assert r.status_code == 413, r.text
        assert r.json()["type"] == "urn:gramdex:problem:query-too-large" and reason in r.json()["detail"]
        assert r.json()["field"] == "text"
        # the worker refused before allocating anything: it is still there and answers
        assert c.post("/v1/summarize", json={"text": NEWS, "max_tokens": 20}).status_code == 200
        # in a batch, the problem names the document
        r = c.post("/v1/summarize/batch", json={"documents": [{"text": NEWS, "max_tokens": 20},
                                                              {"text": text, "max_tokens": 10}]})
        assert r.status_code == 413 and r.json()["field"] == "documents[1].text"
        assert r.json()["detail"].startswith("documents[1]: ") and reason in r.json()["detail"]


def test_a_batch_names_the_document_a_problem_is_about(gateway: Gateway) -> None:
    r = httpx.post(f"{gateway.url}/v1/summarize/batch", timeout=30, json={"documents": [
        {"text": NEWS, "max_tokens": 20}, {"text": NEWS, "max_tokens": 20}, {"text": NEWS, "ratio": 2.0}]})
    assert r.status_code == 422 and r.json()["field"] == "documents[2].ratio"
    assert r.json()["detail"] == "documents[2]: ratio must be in (0, 1], not 2.0"


def test_killing_a_worker_mid_request_retries_on_another(gateway: Gateway) -> None:
    restarts = _metric("gramdex_summarize_worker_restarts_total", {"why": "exited"})

    async def scenario() -> httpx.Response:
        async with httpx.AsyncClient(base_url=gateway.url, timeout=60) as c:
            req = asyncio.create_task(c.post("/v1/summarize", json={"text": _long_document(4000), "max_tokens": 30}))
            for _ in range(200):
                busy = [w for w in gateway.pool.workers if w.busy and w.process is not None]
                if busy:
                    await asyncio.sleep(0.05)
                    os.kill(busy[0].process.pid, signal.SIGKILL)
                    break
                await asyncio.sleep(0.01)
            return await req

    r = asyncio.run(scenario())
    assert r.status_code == 200, r.text
    end = time.monotonic() + 30
    while _metric("gramdex_summarize_worker_restarts_total", {"why": "exited"}) <= restarts:
        assert time.monotonic() < end, "the dead worker was not restarted"
        time.sleep(0.1)
    while not all(w.alive for w in gateway.pool.workers):
        assert time.monotonic() < end
        time.sleep(0.1)


def test_full_queue_is_503_with_retry_after_and_deadline_is_504(gateway: Gateway) -> None:
    pool = gateway.pool
    old = (pool.config.max_queue, pool.config.deadline_s)
    pool.config.max_queue, pool.config.deadline_s = 0, 0.4
    try:
        async def scenario() -> list[httpx.Response]:
            async with httpx.AsyncClient(base_url=gateway.url, timeout=60) as c:
                slow = {"text": _long_document(7000), "max_tokens": 30}
                return list(await asyncio.gather(*(c.post("/v1/summarize", json=slow) for _ in range(4))))

        rejected = _metric("gramdex_summarize_rejections_total", {"reason": "queue_full"})
        codes = sorted(r.status_code for r in asyncio.run(scenario()))
        # two requests take the two workers and run out of time; with no queue the other two are refused
        assert codes == [503, 503, 504, 504], codes
        assert _metric("gramdex_summarize_rejections_total", {"reason": "queue_full"}) == rejected + 2
    finally:
        pool.config.max_queue, pool.config.deadline_s = old


def _worker_children() -> list[int]:
    """Live summarizer worker processes started by this process."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmd = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(b")") + 2:].split()
        if int(fields[1]) == os.getpid() and fields[0] != b"Z" and b"service.summarize.worker" in cmd:
            pids.append(int(entry))
    return pids


def test_a_start_cancelled_midway_leaves_no_worker_running() -> None:
    before = set(_worker_children())

    async def cancel_start() -> None:
        task = asyncio.create_task(WorkerPool.start(PoolConfig(local_workers=2)))
        deadline = time.monotonic() + 10
        while len(set(_worker_children()) - before) < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.02)  # both launched, neither ready yet (they take ~1 s to import)
        assert len(set(_worker_children()) - before) == 2
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(cancel_start())
    deadline = time.monotonic() + 10
    while set(_worker_children()) - before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not set(_worker_children()) - before
