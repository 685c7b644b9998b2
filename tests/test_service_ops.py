"""Health, readiness, metrics, saturation (503 + Retry-After) and a slow query beside many cheap ones."""

from __future__ import annotations

import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
from service_support.fixtures import Indexes, Server

SLOW_CNF = {"query_ids": [[[97]], [[98]], [[99]], [[97, 98]], [[98, 99]], [[99, 97]]],
            "max_clause_freq": 500_000, "max_diff_tokens": 1000, "timeout_ms": 20_000}


def test_health_and_readiness(server: Server) -> None:
    assert server.client.get("/healthz").json() == {"status": "ok"}
    r = server.client.get("/readyz")
    assert r.status_code == 200 and r.json()["indexes"] == {"demo": "ok", "slow": "ok"}


def test_metrics_count_requests_without_query_text(server: Server) -> None:
    server.client.post("/v1/indexes/demo/count", json={"query": "secretword"})
    server.client.post("/v1/indexes/nope/count", json={"query": "x"})
    text = server.client.get("/metrics").text
    assert 'gramdex_request_duration_seconds_count{index="demo",method="POST",route="/v1/indexes/{index}/count"' \
           ',status="200"}' in text
    assert 'index="unknown"' in text and 'index="nope"' not in text
    assert 'gramdex_engine_duration_seconds_count{index="demo",op="count"}' in text
    assert 'gramdex_errors_total{route="/v1/indexes/{index}/count",type="unknown-index"}' in text
    assert "gramdex_requests_in_flight" in text and "secretword" not in text


def test_saturation_answers_503_with_retry_after(make_server, indexes: Indexes) -> None:  # noqa: ANN001
    srv = make_server({"slow": indexes.slow}, "[concurrency]\nslow_threads = 1\nmax_queue = 0\n")
    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(httpx.post, f"{srv.url}/v1/indexes/slow/count", json=SLOW_CNF, timeout=30)
                   for _ in range(4)]
        responses = [f.result() for f in futures]
    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(200) >= 1 and 503 in statuses, statuses
    busy = next(r for r in responses if r.status_code == 503)
    assert busy.headers["retry-after"] == "1" and busy.json()["type"].endswith("overloaded")
    # cheap queries have their own pool: still answered while the slow pool is full
    assert srv.client.post("/v1/indexes/slow/count", json={"query": "ab"}).status_code == 200


def test_slow_cnf_does_not_stall_cheap_counts(server: Server) -> None:
    slow_done = threading.Event()
    slow_status: list[int] = []

    def slow() -> None:
        with httpx.Client(base_url=server.url, timeout=30) as c:
            slow_status.append(c.post("/v1/indexes/slow/count", json=SLOW_CNF).status_code)
        slow_done.set()

    threads = [threading.Thread(target=slow) for _ in range(2)]
    for t in threads:
        t.start()
    time.sleep(0.05)
    latencies = []
    with httpx.Client(base_url=server.url, timeout=30) as c:
        while not slow_done.is_set() and len(latencies) < 2000:
            start = time.perf_counter()
            assert c.post("/v1/indexes/demo/count", json={"query_ids": [259, 273]}).status_code == 200
            latencies.append(time.perf_counter() - start)
    for t in threads:
        t.join()
    assert slow_status == [200, 200] and len(latencies) >= 20
    # the slow queries take hundreds of ms; cheap ones keep answering in a few ms meanwhile
    assert statistics.median(latencies) < 0.05, statistics.median(latencies)
