"""The FastAPI application: routers, error handlers, middleware, and the index registry's lifetime."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import sys
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI

from service import errors, file_leases
from service.api_route import declare_bearer
from service.metrics import MetricsMiddleware
from service.registry import Registry
from service.reload import index_configs, reload
from service.request_gate import RequestGate
from service.routes import admin, compat, explorer, indexes, internal, ops, queries
from service.schemas import ProblemOut
from service.settings import Limits, Settings, load_settings
from service.state import ServiceState
from service.summarize.gateway import PoolConfig, WorkerPool
from service.summarize.router import router as summarize_router

log = logging.getLogger("gramdex.service")
API_VERSION = "1.0.0"
_problem = {"model": ProblemOut,
            "content": {errors.PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/ProblemOut"}}},
            "description": "RFC 9457 problem details; `type` is urn:gramdex:problem:<slug>, one per kind of error: "
                           + ", ".join(f"{slug} ({status})" for slug, (status, _) in errors.PROBLEMS.items())}
PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {"4XX": _problem, "5XX": _problem}
def create_app(settings: Settings | None = None) -> FastAPI:
    """The app for the given settings; without, the settings this process's environment names (uvicorn workers)."""
    settings = settings or load_settings()
    registry = Registry()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        # the lease-break handler before the first lease: without one, SIGIO would kill the process
        leasing = file_leases.watcher.start(loop, settings.limits.max_timeout_ms / 1000)
        await asyncio.to_thread(registry.load, index_configs(settings))
        sys.setswitchinterval(settings.concurrency.gil_switch_interval_ms / 1000)
        svc = ServiceState(settings, registry)
        app.state.service = svc
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            # SIGHUP reloads like POST /v1/admin/reload (with several workers uvicorn restarts them instead)
            loop.add_signal_handler(signal.SIGHUP, lambda: loop.create_task(_reload_quietly(svc)))
        freeze_heap()
        async with summarizer_lifetime(app, settings):
            yield
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.remove_signal_handler(signal.SIGHUP)
        svc.pools.shutdown()
        registry.close()
        if leasing:
            file_leases.watcher.stop()

    app = FastAPI(title="gramdex", version=API_VERSION, lifespan=lifespan,
                  description="n-gram, ∞-gram and document queries over suffix-array indexes. Errors are RFC 9457 "
                              "problem details (application/problem+json) with a stable `type` per error.")
    errors.install(app)
    declare_bearer(app)
    app.include_router(indexes.router, responses=PROBLEM_RESPONSES)  # these routers' routes check API keys
    app.include_router(queries.router, responses=PROBLEM_RESPONSES)
    app.include_router(compat.router, responses=PROBLEM_RESPONSES)
    app.include_router(internal.router)  # for routers; not in the contract
    app.include_router(summarize_router, responses=PROBLEM_RESPONSES)
    app.include_router(admin.router, responses=PROBLEM_RESPONSES)
    app.include_router(ops.router)
    app.include_router(explorer.router)
    app.add_middleware(RequestGate, limits=lambda: _limits(app))
    app.add_middleware(MetricsMiddleware, known_index=registry.has)
    return app


def freeze_heap() -> None:
    """Move what startup allocated (modules, schemas, tokenizer tables) out of the collector's sight: a full
    collection otherwise walks it all, a ~50 ms pause of the event loop every few thousand requests."""
    gc.collect()
    gc.freeze()


def _limits(app: FastAPI) -> Limits:
    svc = getattr(app.state, "service", None)
    return svc.limits if svc is not None else Settings().limits


@contextlib.asynccontextmanager
async def summarizer_lifetime(app: FastAPI, settings: Settings) -> AsyncIterator[None]:
    """The summarizer workers for the app's lifetime, started in the background: the API answers at once and
    /v1/summarize says 503 until they are up."""
    app.state.summarize_pool = None
    starting = asyncio.create_task(_start_summarizer(app, settings))
    try:
        yield
    finally:
        starting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await starting
        if app.state.summarize_pool is not None:
            await app.state.summarize_pool.close()


async def _start_summarizer(app: FastAPI, settings: Settings) -> None:
    s = settings.summarizer
    if s.workers == 0 and not s.urls:
        return
    config = PoolConfig(local_workers=s.workers, urls=list(s.urls), model=s.model, deadline_s=s.deadline_s,
                        max_queue=s.max_queue, abstractive_model=s.abstractive_model, indexes=dict(s.indexes),
                        default_index=s.index)
    try:
        app.state.summarize_pool = await WorkerPool.start(config)
    except Exception:  # the API keeps serving; /v1/summarize answers 503 and the log says why
        log.exception("the summarizer workers did not start")


async def _reload_quietly(svc: ServiceState) -> None:
    try:
        await reload(svc)
    except errors.Problem as p:
        log.error("SIGHUP reload failed: %s", p.detail)
