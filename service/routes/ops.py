"""GET /healthz, /readyz, /metrics: for load balancers and Prometheus, never behind API keys."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from service.metrics import render
from service.state import state

router = APIRouter(tags=["operations"])
READY_TIMEOUT_S = 2.0


@router.get("/healthz", summary="The process is alive")
async def healthz() -> JSONResponse:
    return JSONResponse({"status": "ok"})


@router.get("/readyz", summary="Every configured index is mapped and answers a query",
            responses={503: {"description": "some index is missing or does not answer"}})
async def readyz(request: Request) -> JSONResponse:
    svc = state(request)
    indexes = svc.registry.all()
    checks: dict[str, str] = {}
    for ix in indexes:
        change = ix.changed()
        if change is not None:
            # truncated or rewritten: refused, never probed (the probe could fault); replaced or deleted:
            # the mapped files still answer, but what is served is no longer what is on disk
            checks[ix.name] = f"{'failing' if change[1] else 'stale'}: {change[0]}; reload"
            if change[1]:
                continue
        probe = [ix.engine.eos_token_id & ix.engine.max_token_id]
        try:
            await asyncio.wait_for(svc.call(svc.pools.fast, "ready", ix.name, lambda e=ix.engine, q=probe: e.count(q)),
                                   READY_TIMEOUT_S)
            checks.setdefault(ix.name, "ok")
        except Exception:  # noqa: BLE001 - any failure means not ready; the reason is in the server log
            checks[ix.name] = "failing"
    ready = bool(indexes) and all(v == "ok" or v.startswith("stale") for v in checks.values())
    body: dict[str, object] = {"status": "ready" if ready else "not ready", "indexes": checks}
    unleased = {ix.name: ix.lease_error for ix in indexes if ix.lease_error}
    if unleased:  # guarded by stamps only: a truncation during a query could still fault it
        body["unleased"] = unleased
    if svc.last_reload_error:
        body["reload_error"] = svc.last_reload_error
    return JSONResponse(body, status_code=200 if ready else 503)


@router.get("/metrics", summary="Prometheus metrics", response_class=Response,
            responses={200: {"content": {"text/plain": {}}}})
async def metrics() -> Response:
    data, content_type = render()
    return Response(data, media_type=content_type)
