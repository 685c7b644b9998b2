"""POST /v1/summarize (and /v1/summarize/batch): validation here, work on the worker pool.

The app keeps the pool at `app.state.summarize_pool` (see start_pool / WorkerPool.close). Errors are
application/problem+json: 400 empty or non-text input, 413 too large, 422 impossible budget or mode, 503 (+ Retry-After)
queue full, 504 deadline.
"""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from service.summarize.gateway import DeadlineError, NoWorkerError, QueueFullError, WorkerError, WorkerPool

MAX_TEXT_CHARS = 200_000   # about 30,000 words: the cache model is quadratic in the document's length
MAX_BATCH = 32

router = APIRouter(tags=["summarize"])


class SummarizeRequest(BaseModel):
    text: Any = None
    max_tokens: int | None = Field(default=None, description="hard budget in words and punctuation tokens")
    ratio: float | None = Field(default=None, description="budget as a share of the document's tokens")
    index: str | None = Field(default=None, description="a served word-level index for the critics' P_C")
    mode: Literal["extractive", "compressive"] = "extractive"


class BatchRequest(BaseModel):
    documents: list[SummarizeRequest] = Field(min_length=1, max_length=MAX_BATCH)


class Problem(Exception):
    def __init__(self, status: int, title: str, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status, self.title, self.detail, self.headers = status, title, detail, headers or {}

    def response(self) -> JSONResponse:
        return JSONResponse({"type": "about:blank", "title": self.title, "status": self.status,
                             "detail": self.detail}, status_code=self.status, headers=self.headers,
                            media_type="application/problem+json")


def _validate(req: SummarizeRequest) -> dict[str, Any]:
    if not isinstance(req.text, str):
        raise Problem(400, "text must be a string", f"got {type(req.text).__name__}")
    if not req.text.strip() or not any(c.isalnum() for c in req.text):
        raise Problem(400, "empty document", "text has no words to summarize")
    if len(req.text) > MAX_TEXT_CHARS:
        raise Problem(413, "document too large", f"{len(req.text):,} characters; the limit is {MAX_TEXT_CHARS:,}")
    if (req.max_tokens is None) == (req.ratio is None):
        raise Problem(422, "impossible budget", "give exactly one of max_tokens and ratio")
    if req.max_tokens is not None and req.max_tokens < 1:
        raise Problem(422, "impossible budget", f"max_tokens must be at least 1, not {req.max_tokens}")
    if req.ratio is not None and not 0 < req.ratio <= 1:
        raise Problem(422, "impossible budget", f"ratio must be in (0, 1], not {req.ratio}")
    return req.model_dump(exclude_none=True)


async def _one(pool: WorkerPool, payload: dict[str, Any]) -> dict[str, Any]:
    try:
        return await pool.summarize(payload)
    except QueueFullError:
        raise Problem(503, "summarizer busy", "the queue is full; retry later",
                      {"Retry-After": str(pool.config.retry_after_s)}) from None
    except DeadlineError:
        raise Problem(504, "deadline exceeded", f"no summary within {pool.config.deadline_s} s") from None
    except NoWorkerError as exc:
        raise Problem(503, "no summarizer worker", str(exc), {"Retry-After": str(pool.config.retry_after_s)}) from None
    except WorkerError as exc:
        body = exc.body if isinstance(exc.body, dict) else {}
        raise Problem(exc.status, str(body.get("title", "worker error")), str(body.get("detail", ""))) from None


def _pool(request: Request) -> WorkerPool:
    pool = getattr(request.app.state, "summarize_pool", None)
    if pool is None:
        raise Problem(503, "summarizer not started", "this server runs no summarizer workers")
    return pool


@router.post("/v1/summarize")
async def summarize(body: SummarizeRequest, request: Request) -> Any:
    try:
        return await _one(_pool(request), _validate(body))
    except Problem as p:
        return p.response()


@router.post("/v1/summarize/batch")
async def summarize_batch(body: BatchRequest, request: Request) -> Any:
    try:
        pool = _pool(request)
        payloads = [_validate(d) for d in body.documents]
        return {"results": await asyncio.gather(*(_one(pool, p) for p in payloads))}
    except Problem as p:
        return p.response()
