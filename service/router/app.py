"""`gramdex serve --router`: the /v1 query API over shard servers (settings [router]), with the service's
errors, keys, limits and metrics; /readyz is ready when every shard group has a replica that is."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.responses import JSONResponse

from service import errors
from service.api_route import api_router, declare_bearer
from service.app import API_VERSION, PROBLEM_RESPONSES, summarizer_lifetime
from service.documents import document
from service.errors import Problem
from service.limits import check_max
from service.metrics import MetricsMiddleware
from service.request_gate import RequestGate
from service.router import queries
from service.router.queries import fetch_documents
from service.router.shards import ShardDown
from service.router.state import RouterState, router_state
from service.routes.ops import healthz, metrics
from service.settings import Settings, load_settings
from service.summarize.router import router as summarize_router

READY_TIMEOUT_S = 2.0
indexes = api_router(prefix="/v1/indexes", tags=["indexes"])
ops = APIRouter(tags=["operations"])


@indexes.get("", summary="The routed indexes, sizes summed over their shard groups")
async def list_indexes(request: Request) -> JSONResponse:
    rs = router_state(request)
    for ix in rs.indexes.values():
        if not ix.complete:
            await ix.discover(rs.shards)
    return JSONResponse({"indexes": [ix.describe() for ix in rs.indexes.values()]})


@indexes.get("/{index}/documents/{doc_ix}", summary="One document by its index in the whole index")
async def get_document(request: Request, index: str, doc_ix: int,
                       max_disp_len: int = Query(default=1000, gt=0), allow_partial: bool = False) -> JSONResponse:
    rs = router_state(request)
    f = await rs.fanout(index, allow_partial)
    check_max("max_disp_len", max_disp_len, rs.limits.max_disp_len)
    t = f.topology
    if f.missing:  # the numbering of documents needs every group's document counts
        f.note([], force=True)
    if not 0 <= doc_ix < t.doc_cnt:
        raise Problem("unknown-document", f"index {index!r} has documents 0 to {t.doc_cnt - 1}", field="doc_ix")
    shard, local = t.doc_owner(doc_ix)
    (doc,) = await fetch_documents(f, [(shard, {"doc_ix": local})], max_disp_len)
    if doc is None:
        f.note([], force=True)
    return JSONResponse(document(f.ix, doc, []))  # type: ignore[arg-type]


async def _group_ready(rs: RouterState, ix: Any, g: Any) -> str:
    """ok when some replica's /readyz says ready within the timeout."""
    for url in g.urls:
        try:
            r = await asyncio.wait_for(rs.shards.client.get(f"{url}/readyz"), READY_TIMEOUT_S)
        except (Exception, asyncio.TimeoutError):  # noqa: BLE001 - unreachable or slow: try the next replica
            continue
        if r.status_code == 200 and r.json().get("indexes", {}).get(g.remote_index, "").startswith(("ok", "stale")):
            return "ok"
    return "unavailable"


@ops.get("/readyz", summary="Every shard group of every routed index has a ready replica",
         responses={503: {"description": "some shard group has no ready replica"}})
async def readyz(request: Request) -> JSONResponse:
    rs = router_state(request)
    checks: dict[str, dict[str, str]] = {}
    for ix in rs.indexes.values():
        states = await asyncio.gather(*(_group_ready(rs, ix, g) for g in ix.groups))
        checks[ix.name] = {g.name: s for g, s in zip(ix.groups, states, strict=True)}
        if not ix.complete and all(s == "ok" for s in states):
            with contextlib.suppress(ShardDown):
                await ix.discover(rs.shards)
    ready = bool(checks) and all(s == "ok" for groups in checks.values() for s in groups.values())
    return JSONResponse({"status": "ready" if ready else "not ready", "indexes": checks},
                        status_code=200 if ready else 503)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or load_settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        rs = RouterState(settings)
        app.state.service = rs
        for ix in rs.indexes.values():  # learn the layouts now; groups down now are asked again on use
            with contextlib.suppress(ShardDown, Problem):
                await ix.discover(rs.shards)
        async with summarizer_lifetime(app, settings):  # summaries need no shard: the router's own workers
            yield
        await rs.shards.close()

    app = FastAPI(title="gramdex router", version=API_VERSION, lifespan=lifespan,
                  description="The gramdex /v1 API over shard servers: answers equal one server holding all shards.")
    errors.install(app)
    declare_bearer(app)
    app.include_router(indexes, responses=PROBLEM_RESPONSES)  # these routers' routes check API keys
    app.include_router(queries.router, responses=PROBLEM_RESPONSES)
    app.include_router(summarize_router, responses=PROBLEM_RESPONSES)
    app.add_api_route("/healthz", healthz, methods=["GET"], tags=["operations"])
    app.add_api_route("/metrics", metrics, methods=["GET"], tags=["operations"])
    app.include_router(ops)
    app.add_middleware(RequestGate, limits=lambda: settings.limits)
    app.add_middleware(MetricsMiddleware, known_index=lambda name: name in settings.router.indexes)
    return app
