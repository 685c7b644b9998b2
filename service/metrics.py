"""Prometheus metrics. Labels hold route templates, index names that exist and error types, never query text,
so their number stays bounded whatever clients send.

With several uvicorn workers, `gramdex serve` sets PROMETHEUS_MULTIPROC_DIR and every worker's samples are
merged on each scrape.
"""

from __future__ import annotations

import functools
import os
import time

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

REQUEST_SECONDS = Histogram("gramdex_request_duration_seconds", "HTTP request latency",
                            ["route", "method", "index", "status"], buckets=BUCKETS)
ENGINE_SECONDS = Histogram("gramdex_engine_duration_seconds", "Time inside engine calls (thread pool run)",
                           ["op", "index"], buckets=BUCKETS)
IN_FLIGHT = Gauge("gramdex_requests_in_flight", "HTTP requests being served", multiprocess_mode="livesum")
ERRORS = Counter("gramdex_errors_total", "Error responses by problem type", ["type", "route"])
QUEUED = Gauge("gramdex_pool_pending", "Engine calls running or queued, by pool", ["pool"],
               multiprocess_mode="livesum")


# children by label values: prometheus_client validates and takes a lock on every labels() call, on the event loop's
# path of every request; the label sets are bounded (see above), so the caches are too
_request_child = functools.lru_cache(maxsize=4096)(REQUEST_SECONDS.labels)
_engine_child = functools.lru_cache(maxsize=4096)(ENGINE_SECONDS.labels)
pending = functools.lru_cache(maxsize=16)(QUEUED.labels)


def observe_engine(op: str, index: str, seconds: float) -> None:
    _engine_child(op, index).observe(seconds)


def render() -> tuple[bytes, str]:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST


class MetricsMiddleware:
    """Pure ASGI (no per-request task or body copy), so the cheap routes keep their latency."""

    def __init__(self, app: ASGIApp, known_index: object) -> None:
        self.app = app
        self.known_index = known_index  # callable: name -> bool

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500
        IN_FLIGHT.inc()

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            IN_FLIGHT.dec()
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            index = scope.get("path_params", {}).get("index") or scope.get("state", {}).get("index") or ""
            if index and not self.known_index(index):  # type: ignore[operator]
                index = "unknown"
            _request_child(template, scope["method"], index, str(status)).observe(time.perf_counter() - start)
            problem = scope.get("state", {}).get("problem")
            if problem:
                ERRORS.labels(problem, template).inc()
