"""A summarizer gateway for tests: the /v1/summarize router over a real WorkerPool (real worker processes),
served by uvicorn on a free loopback port in a thread."""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from fastapi import FastAPI

from service import errors
from service.summarize.gateway import PoolConfig, WorkerPool
from service.summarize.router import router
from service_support.fixtures import free_port


class Gateway:
    def __init__(self, config: PoolConfig) -> None:
        self._holder: dict[str, WorkerPool] = {}

        @asynccontextmanager
        async def lifespan(app: FastAPI) -> AsyncIterator[None]:
            app.state.summarize_pool = self._holder["pool"] = await WorkerPool.start(config)
            yield
            await app.state.summarize_pool.close()

        app = FastAPI(lifespan=lifespan)
        errors.install(app)
        app.include_router(router)
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self._server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 60
        while not self._server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        assert self._server.started, "the gateway did not start"

    @property
    def pool(self) -> WorkerPool:
        return self._holder["pool"]

    def close(self) -> None:
        self._server.should_exit = True
        self._thread.join(30)
