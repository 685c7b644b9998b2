"""The gateway's side of the summarizer: a pool of worker processes behind one shared httpx client.

Least-busy routing, a bounded queue (QueueFullError -> 503 + Retry-After), a per-request deadline (-> 504), one
retry on another worker when a worker dies mid-request, and a supervisor that restarts local workers that exit or
stop answering their health check.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from prometheus_client import Counter, Gauge, Histogram

QUEUE_DEPTH = Gauge("gramdex_summarize_queue_depth", "summarize requests waiting for a worker")
IN_FLIGHT = Gauge("gramdex_summarize_in_flight", "summarize requests being processed by workers")
LATENCY = Histogram("gramdex_summarize_latency_seconds", "gateway latency of summarize requests",
                    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
REJECTIONS = Counter("gramdex_summarize_rejections_total", "summarize requests refused", ["reason"])
RESTARTS = Counter("gramdex_summarize_worker_restarts_total", "summarizer workers restarted", ["why"])


class QueueFullError(Exception):
    pass


class DeadlineError(Exception):
    pass


class NoWorkerError(Exception):
    pass


class WorkerError(Exception):
    """The worker answered with an error status; carries its status and body for the client."""

    def __init__(self, status: int, body: Any) -> None:
        super().__init__(f"worker answered {status}")
        self.status, self.body = status, body


@dataclass
class Worker:
    url: str
    process: subprocess.Popen[bytes] | None = None   # None: run elsewhere, given by URL
    busy: int = 0
    alive: bool = True
    failures: int = 0


@dataclass
class PoolConfig:
    local_workers: int = 2
    urls: list[str] = field(default_factory=list)
    model: Path | None = None
    abstractive_model: Path | None = None   # an ONNX model directory for mode "abstractive" (local workers)
    indexes: dict[str, Path] = field(default_factory=dict)   # word-level indexes requests may name
    default_index: str | None = None                            # ... and the one they use when they name none
    per_worker: int = 1            # concurrent requests per worker: summarizing is CPU-bound
    max_queue: int = 32            # waiting requests beyond all workers' slots before 503
    deadline_s: float = 10.0
    retry_after_s: int = 1
    health_interval_s: float = 1.0
    hang_timeout_s: float = 5.0    # a worker that cannot answer its health check this long is restarted
    start_timeout_s: float = 30.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class WorkerPool:
    def __init__(self, config: PoolConfig) -> None:
        self.config = config
        self.workers: list[Worker] = [Worker(u.rstrip("/")) for u in config.urls]
        self.client = httpx.AsyncClient(timeout=None, limits=httpx.Limits(max_connections=256))
        self._changed = asyncio.Condition()
        self._waiting = 0
        self._supervisor: asyncio.Task[None] | None = None

    @classmethod
    async def start(cls, config: PoolConfig) -> WorkerPool:
        pool = cls(config)
        for _ in range(config.local_workers):
            pool.workers.append(pool._spawn())
        try:
            await asyncio.gather(*(pool._wait_ready(w) for w in pool.workers if w.process is not None))
        except BaseException:  # failed or cancelled (server stopped while starting): leave no worker behind
            for w in pool.workers:
                pool._stop(w)
            await pool.client.aclose()
            raise
        pool._supervisor = asyncio.create_task(pool._supervise())
        return pool

    def _spawn(self) -> Worker:
        port = _free_port()
        cmd = [sys.executable, "-m", "service.summarize.worker", "--port", str(port)]
        if self.config.model is not None:
            cmd += ["--model", str(self.config.model)]
        if self.config.abstractive_model is not None:
            cmd += ["--abstractive-model", str(self.config.abstractive_model)]
        for name, path in self.config.indexes.items():
            cmd += ["--index", f"{name}={path}"]
        if self.config.default_index is not None:
            cmd += ["--default-index", self.config.default_index]
        return Worker(f"http://127.0.0.1:{port}", subprocess.Popen(cmd))

    async def _wait_ready(self, w: Worker) -> None:
        end = time.monotonic() + self.config.start_timeout_s
        while time.monotonic() < end:
            if w.process is not None and w.process.poll() is not None:
                raise NoWorkerError(f"worker at {w.url} exited with {w.process.returncode} while starting")
            with contextlib.suppress(httpx.HTTPError):
                if (await self.client.get(f"{w.url}/healthz", timeout=1.0)).status_code == 200:
                    return
            await asyncio.sleep(0.1)
        raise NoWorkerError(f"worker at {w.url} did not start in {self.config.start_timeout_s} s")

    async def close(self) -> None:
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
        for w in self.workers:
            self._stop(w)
        await self.client.aclose()

    @staticmethod
    def _stop(w: Worker) -> None:
        if w.process is not None and w.process.poll() is None:
            w.process.kill()
            w.process.wait()

    # --- routing ---

    def _free_worker(self, exclude: set[str]) -> Worker | None:
        ready = [w for w in self.workers if w.alive and w.busy < self.config.per_worker and w.url not in exclude]
        return min(ready, key=lambda w: w.busy) if ready else None

    async def _acquire(self, exclude: set[str], deadline: float) -> Worker:
        async with self._changed:
            w = self._free_worker(exclude)
            if w is None:
                if self._waiting >= self.config.max_queue:
                    REJECTIONS.labels("queue_full").inc()
                    raise QueueFullError
                self._waiting += 1
                QUEUE_DEPTH.set(self._waiting)
                try:
                    while (w := self._free_worker(exclude)) is None:
                        await asyncio.wait_for(self._changed.wait(), max(0.0, deadline - time.monotonic()))
                except TimeoutError:
                    REJECTIONS.labels("deadline").inc()
                    raise DeadlineError from None
                finally:
                    self._waiting -= 1
                    QUEUE_DEPTH.set(self._waiting)
            w.busy += 1
            IN_FLIGHT.inc()
            return w

    async def _release(self, w: Worker) -> None:
        async with self._changed:
            w.busy -= 1
            IN_FLIGHT.dec()
            self._changed.notify_all()

    async def summarize(self, payload: dict[str, Any], deadline_s: float | None = None) -> dict[str, Any]:
        """Send one document to the least-busy worker; one retry elsewhere if that worker dies meanwhile."""
        start = time.monotonic()
        deadline = start + (deadline_s or self.config.deadline_s)
        tried: set[str] = set()
        try:
            for attempt in range(2):
                w = await self._acquire(tried, deadline)
                try:
                    left = max(0.0, deadline - time.monotonic())
                    # the worker stops open-ended work (abstractive generation) in time for this deadline
                    r = await asyncio.wait_for(self.client.post(f"{w.url}/summarize",
                                                                json={**payload, "deadline_s": round(left, 3)}), left)
                except TimeoutError:
                    REJECTIONS.labels("deadline").inc()
                    raise DeadlineError from None
                except httpx.TransportError:
                    # the connection broke: the worker died or was killed; the supervisor replaces it
                    w.alive = False
                    tried.add(w.url)
                    if attempt == 1:
                        raise NoWorkerError("two workers failed on this request") from None
                    continue
                finally:
                    await self._release(w)
                if r.status_code != 200:
                    raise WorkerError(r.status_code, r.json())
                return dict(r.json())
            raise NoWorkerError("no worker answered")
        finally:
            LATENCY.observe(time.monotonic() - start)

    # --- supervision ---

    async def _supervise(self) -> None:
        while True:
            await asyncio.sleep(self.config.health_interval_s)
            await asyncio.gather(*(self._check(i) for i in range(len(self.workers))))

    async def _check(self, i: int) -> None:
        w = self.workers[i]
        if w.process is not None and w.process.poll() is not None:
            await self._replace(i, "exited")
            return
        try:
            ok = (await self.client.get(f"{w.url}/healthz", timeout=self.config.hang_timeout_s)).status_code == 200
        except httpx.HTTPError:
            ok = False
        if ok:
            w.failures, w.alive = 0, True
            return
        w.failures += 1
        w.alive = False
        if w.process is not None and w.failures >= 2:
            await self._replace(i, "hung")

    async def _replace(self, i: int, why: str) -> None:
        old = self.workers[i]
        self._stop(old)
        RESTARTS.labels(why).inc()
        new = self._spawn()
        new.alive = False
        self.workers[i] = new
        try:
            await self._wait_ready(new)
        except NoWorkerError:
            return  # the next check sees it dead and tries again
        async with self._changed:
            new.alive = True
            self._changed.notify_all()
