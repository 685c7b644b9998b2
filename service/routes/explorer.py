"""GET /: the browser explorer, one page with its scripts and styles, served from service/static/ (no CDN, so it
works offline). Public like /healthz: the page holds no data; its queries go to the API with the key typed in it."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

from service.errors import Problem

STATIC = Path(__file__).resolve().parent.parent / "static"
TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
         ".css": "text/css; charset=utf-8"}
# only files that are there when the server starts, by exact name: a request can never reach outside the folder
ASSETS = {p.name: p for p in STATIC.iterdir() if p.suffix in TYPES} if STATIC.is_dir() else {}
NO_CACHE = {"cache-control": "no-cache"}  # revalidate, so an upgraded server's page is never mixed with old scripts

router = APIRouter(include_in_schema=False)


@router.get("/")
async def page() -> FileResponse:
    return _asset("index.html")


@router.get("/static/{name}")
async def asset(name: str) -> FileResponse:
    return _asset(name)


def _asset(name: str) -> FileResponse:
    path = ASSETS.get(name)
    if path is None:
        raise Problem("not-found", f"no explorer asset named {name!r}")
    return FileResponse(path, media_type=TYPES[path.suffix], headers=NO_CACHE)
