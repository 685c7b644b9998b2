"""The SDK's retry policy against real servers: connection errors, 429 with Retry-After, 503 when saturated, and
never a retry of another 4xx (see test_client_sync)."""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import Iterator

import gramdex_client as gc
import pytest
from gramdex_client import AsyncClient, Client, Retry
from service_support.fixtures import Indexes, Server, free_port, write_config

KEYS = """
[concurrency]
slow_threads = 1
max_queue = 0

[[api_keys]]
key = "client-key-aaaaaaaa"

[[api_keys]]
key = "client-key-bbbbbbbb"
rate_per_s = 1
burst = 1
"""
FAST, LIMITED = "client-key-aaaaaaaa", "client-key-bbbbbbbb"
# six clauses over a 3-letter alphabet: hundreds of milliseconds of work for the one slow thread
SLOW = gc.all_of([97], [98], [99], [97, 98], [98, 99], [99, 97])
QUICK = Retry(max_retries=6, backoff_s=0.05, max_backoff_s=0.2)


@pytest.fixture(scope="module")
def limited(indexes: Indexes, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = Server(write_config(tmp_path_factory.mktemp("retry") / "gramdex.toml", {"slow": indexes.slow}, KEYS))
    yield srv
    srv.stop()


def test_connection_errors_are_retried_then_raised() -> None:
    port = free_port()  # nothing listens here
    retry = Retry(max_retries=2, backoff_s=0.1)
    start = time.monotonic()
    with Client(f"http://127.0.0.1:{port}", index="x", retry=retry) as c, pytest.raises(gc.TransportError):
        c.count("a")
    # two waits of equal jitter: [0.05, 0.1] then [0.1, 0.2]
    assert 0.15 <= time.monotonic() - start < 2

    async def main() -> None:
        async with AsyncClient(f"http://127.0.0.1:{port}", index="x", retry=retry) as c:
            await c.count("a")

    start = time.monotonic()
    with pytest.raises(gc.TransportError):
        asyncio.run(main())
    assert 0.15 <= time.monotonic() - start < 2


def test_backoff_grows_with_jitter_and_caps() -> None:
    r = Retry(backoff_s=1, max_backoff_s=4)
    for attempt, ceiling in [(0, 1), (1, 2), (2, 4), (5, 4)]:
        delays = {r.delay(attempt) for _ in range(50)}
        assert all(ceiling / 2 <= d <= ceiling for d in delays) and len(delays) > 1
    assert 3 <= r.delay(0, retry_after=3) <= 4
    assert Retry(max_retry_after_s=5).delay(0, retry_after=3600) < 6
    assert gc.config.parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
    assert gc.config.parse_retry_after("2") == 2.0 and gc.config.parse_retry_after("soon") is None


def test_429_waits_for_retry_after(limited: Server) -> None:
    with Client(limited.url, index="slow", api_key=LIMITED, retry=0) as c:
        c.count("ab")
        with pytest.raises(gc.RateLimitedError) as e:
            c.count("ab")
        assert e.value.retry_after is not None and e.value.retry_after >= 1 and e.value.status == 429
    time.sleep(1.0)
    with Client(limited.url, index="slow", api_key=LIMITED, retry=QUICK) as c:
        start = time.monotonic()
        assert [c.count("ab").count for _ in range(3)] == [c.count([97, 98]).count] * 3
        # burst 1 at 1/s: four requests need about three seconds, waited out on Retry-After
        assert time.monotonic() - start >= 2.5
    with Client(limited.url, index="slow", retry=QUICK) as c, pytest.raises(gc.UnauthorizedError):
        c.count("ab")  # 401 is final


def _slow_pool_busy(srv: Server) -> bool:
    m = re.search(r'gramdex_pool_pending\{pool="slow"\} (\S+)', srv.client.get("/metrics").text)
    return bool(m) and float(m.group(1)) >= 1


def test_503_is_retried_until_capacity_frees(limited: Server) -> None:
    results: list[int] = []

    def occupy() -> None:
        with Client(limited.url, index="slow", api_key=FAST, retry=0) as c:
            results.append(c.count(SLOW, max_clause_freq=500_000, max_diff_tokens=1000, timeout_ms=20_000).count)

    t = threading.Thread(target=occupy)
    t.start()
    deadline = time.monotonic() + 10
    while not _slow_pool_busy(limited) and time.monotonic() < deadline:
        time.sleep(0.01)
    with Client(limited.url, index="slow", api_key=FAST, retry=0) as c, pytest.raises(gc.OverloadedError) as e:
        c.count(SLOW, timeout_ms=20_000)
    assert e.value.retry_after == 1 and isinstance(e.value, gc.ServiceUnavailableError)
    with Client(limited.url, index="slow", api_key=FAST, retry=Retry(max_retries=30, max_retry_after_s=0.2)) as c:
        again = c.count(SLOW, max_clause_freq=500_000, max_diff_tokens=1000, timeout_ms=20_000).count
    t.join()
    assert results == [again] and again > 0
