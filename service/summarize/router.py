"""POST /v1/summarize (and /v1/summarize/batch): validation here, work on the worker pool.

The app keeps the pool at `app.state.summarize_pool` (see start_pool / WorkerPool.close). Errors are
application/problem+json: 400 empty or non-text input, 413 too large, 422 impossible budget or mode (mode "abstractive"
on workers without an abstractive model: validation-error on `mode`), 503 (+ Retry-After) queue full, 504 deadline.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse

from service.api_route import api_router
from service.errors import PROBLEMS, Problem
from service.examples import example_responses
from service.limits import check_unicode
from service.summarize.gateway import DeadlineError, NoWorkerError, QueueFullError, WorkerError, WorkerPool
from service.summarize.schemas import BatchRequest, BatchResponse, SummarizeRequest, SummarizeResponse

# The cache model's per-sentence counts are dense in (tokens x sentences): memory and time grow with the square of
# the length. At 60,000 characters (~11,000 words, the longest PubMed paper of the dev set is 57,047) one document
# took 0.70-0.96 s and peaked at 448-471 MB on 2 shared cores, inside the 10 s deadline.
MAX_TEXT_CHARS = 60_000
router = api_router(tags=["summarize"])


def _validate(req: SummarizeRequest) -> dict[str, Any]:
    if not isinstance(req.text, str):
        raise Problem("invalid-query", f"text must be a string, not {type(req.text).__name__}", field="text")
    check_unicode("text", req.text)   # the worker gets the text as UTF-8 JSON
    if not req.text.strip() or not any(c.isalnum() for c in req.text):
        raise Problem("invalid-query", "text has no words to summarize", field="text")
    if len(req.text) > MAX_TEXT_CHARS:
        raise Problem("query-too-large", f"text: {len(req.text):,} characters; the limit is {MAX_TEXT_CHARS:,}",
                      field="text", extra={"limit": MAX_TEXT_CHARS})
    if (req.max_tokens is None) == (req.ratio is None):
        raise Problem("impossible-budget", "give exactly one of max_tokens and ratio", field="max_tokens")
    if req.max_tokens is not None and req.max_tokens < 1:
        raise Problem("impossible-budget", f"max_tokens must be at least 1, not {req.max_tokens}", field="max_tokens")
    if req.ratio is not None and not 0 < req.ratio <= 1:
        raise Problem("impossible-budget", f"ratio must be in (0, 1], not {req.ratio}", field="ratio")
    return req.model_dump(exclude_none=True)


_WORKER_SLUGS = {400: "invalid-query", 404: "unknown-index", 413: "query-too-large", 422: "impossible-budget"}


async def _one(pool: WorkerPool, payload: dict[str, Any]) -> dict[str, Any]:
    retry = {"Retry-After": str(pool.config.retry_after_s)}
    try:
        return await pool.summarize(payload)
    except QueueFullError:
        raise Problem("overloaded", "the summarizer queue is full; retry later", headers=retry) from None
    except DeadlineError:
        raise Problem("deadline-exceeded", f"no summary within {pool.config.deadline_s} s") from None
    except NoWorkerError as exc:
        raise Problem("summarizer-unavailable", str(exc), headers=retry) from None
    except WorkerError as exc:
        body = exc.body if isinstance(exc.body, dict) else {}
        slug = body.get("slug")
        if not isinstance(slug, str) or slug not in PROBLEMS or PROBLEMS[slug][0] != exc.status:
            slug = _WORKER_SLUGS.get(exc.status, "summarizer-unavailable")
        field = body.get("field")
        raise Problem(slug, str(body.get("detail", "the worker refused the document")),
                      field=field if isinstance(field, str) else None,
                      headers=retry if slug == "summarizer-unavailable" else None) from None


def _pool(request: Request) -> WorkerPool:
    pool = getattr(request.app.state, "summarize_pool", None)
    if pool is None:
        raise Problem("summarizer-unavailable", "no summarizer worker is running yet",
                      headers={"Retry-After": "1"})
    return pool


@router.post("/v1/summarize", response_model=SummarizeResponse, responses=example_responses("summarize"),
             summary="A summary of the text within the budget, with its sentences' offsets and the critics' scores")
async def summarize(body: SummarizeRequest, request: Request) -> JSONResponse:
    payload = _validate(body)   # a bad request is the caller's to fix whether or not a worker is up
    return JSONResponse(await _one(_pool(request), payload))


@router.post("/v1/summarize/batch", response_model=BatchResponse, responses=example_responses("summarize_batch"),
             summary="Summaries of up to 32 documents, in order")
async def summarize_batch(body: BatchRequest, request: Request) -> JSONResponse:
    payloads = []
    for k, d in enumerate(body.documents):
        try:
            payloads.append(_validate(d))
        except Problem as p:
            raise _of_document(k, p) from None
    pool = _pool(request)
    return JSONResponse({"results": await asyncio.gather(*(_nth(pool, k, p) for k, p in enumerate(payloads)))})


async def _nth(pool: WorkerPool, k: int, payload: dict[str, Any]) -> dict[str, Any]:
    try:
        return await _one(pool, payload)
    except Problem as p:
        raise _of_document(k, p) from None


def _of_document(k: int, p: Problem) -> Problem:
    """A batch's problem with one of its documents names the document; a full queue or a missing worker is the
    whole service's and stays as it is."""
    if p.status >= 500:
        return p
    field = f"documents[{k}]" + (f".{p.field}" if p.field else "")
    return Problem(p.slug, f"documents[{k}]: {p.detail}", field=field, headers=p.headers, extra=p.extra)
