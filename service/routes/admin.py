"""POST /v1/admin/reload: re-read the settings and swap the served indexes without a restart."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from service.reload import reload
from service.schemas import ReloadResponse
from service.state import state

router = APIRouter(prefix="/v1/admin", tags=["admin"])


@router.post("/reload", response_model=ReloadResponse, summary="Reload settings and indexes (admin key)",
             responses={401: {"description": "no admin key"}, 403: {"description": "not an admin key"}})
async def reload_indexes(request: Request) -> JSONResponse:
    svc = state(request)
    client = request.client.host if request.client else ""
    svc.guard.check(request.headers.get("authorization"), client, admin=True)
    return JSONResponse(await reload(svc))
