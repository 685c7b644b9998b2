"""RFC 9457 problem details: one stable `type` per kind of error, never a stack trace or a file path."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from native.errors import DeadlineExceededError, GramdexError, IndexFormatError, InvalidQueryError

PROBLEM_JSON = "application/problem+json"
TYPE_PREFIX = "urn:gramdex:problem:"
log = logging.getLogger("gramdex.service")

# slug -> (HTTP status, title). The slugs are part of the API contract: clients branch on them.
PROBLEMS: dict[str, tuple[int, str]] = {
    "invalid-json": (400, "The request body is not valid JSON"),
    "invalid-query": (400, "The query is malformed"),
    "text-unsupported": (400, "This index has no tokenizer; send token ids"),
    "unauthorized": (401, "A valid API key is required"),
    "forbidden": (403, "This API key may not do that"),
    "unknown-index": (404, "Unknown index"),
    "unknown-document": (404, "Unknown document"),
    "not-found": (404, "No such endpoint"),
    "method-not-allowed": (405, "Method not allowed"),
    "body-too-large": (413, "The request body is over the size limit"),
    "query-too-large": (413, "The query is over a configured limit"),
    "headers-too-large": (431, "The request headers are over the size limit"),
    "unsupported-media-type": (415, "Send application/json"),
    "validation-error": (422, "A field is missing, of the wrong type or out of range"),
    "impossible-budget": (422, "The summary budget cannot be met"),
    "rate-limited": (429, "Too many requests for this API key"),
    "internal": (500, "Internal error"),
    "reload-failed": (500, "The new settings could not be applied; the previous ones stay in force"),
    "index-unavailable": (503, "The index cannot answer"),
    "overloaded": (503, "The server is saturated; retry later"),
    "summarizer-unavailable": (503, "No summarizer worker can answer now; retry later"),
    "deadline-exceeded": (504, "The query ran past its deadline and was stopped"),
}


class Problem(Exception):
    def __init__(self, slug: str, detail: str, *, field: str | None = None, headers: dict[str, str] | None = None,
                 extra: dict[str, Any] | None = None) -> None:
        super().__init__(detail)
        self.slug = slug
        self.status, self.title = PROBLEMS[slug]
        self.detail = detail
        self.field = field
        self.headers = headers or {}
        self.extra = extra or {}

    def body(self, instance: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"type": TYPE_PREFIX + self.slug, "title": self.title, "status": self.status,
                                "detail": self.detail}
        if instance:
            body["instance"] = instance
            if instance == "/":
                body["error"] = self.detail  # infini-gram clients look for `error` in the body
        if self.field:
            body["field"] = self.field
        body.update(self.extra)
        return body


def problem_response(p: Problem, request: Request | None = None) -> JSONResponse:
    if request is not None:
        request.state.problem = p.slug  # for the error metric
    return JSONResponse(p.body(request.url.path if request is not None else None), status_code=p.status,
                        headers=p.headers, media_type=PROBLEM_JSON)


def from_engine(exc: GramdexError, field: str | None = None) -> Problem:
    """Engine errors carry messages that may name files: only query errors pass their message on."""
    if isinstance(exc, DeadlineExceededError):
        return Problem("deadline-exceeded", "the engine stopped the query at its deadline (timeout_ms)",
                       field="timeout_ms")
    if isinstance(exc, InvalidQueryError):
        return Problem("invalid-query", str(exc), field=field)
    if isinstance(exc, IndexFormatError):
        log.error("index format error: %s", exc)
        return Problem("index-unavailable", "the index files are damaged or inconsistent")
    log.error("engine error: %s", exc)
    return Problem("index-unavailable", "the index could not answer")


def _field(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path")]
    return ".".join(parts) or "body"


def install(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        return problem_response(exc, request)

    @app.exception_handler(GramdexError)
    async def _engine(request: Request, exc: GramdexError) -> JSONResponse:
        return problem_response(from_engine(exc), request)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = list(exc.errors())
        if any(e.get("type") == "json_invalid" for e in errors):
            return problem_response(Problem("invalid-json", "the body could not be parsed as JSON"), request)
        details = [{"field": _field(e.get("loc", ())), "message": str(e.get("msg", ""))} for e in errors]
        first = details[0] if details else {"field": "body", "message": "invalid request"}
        p = Problem("validation-error", f"{first['field']}: {first['message']}", field=first["field"],
                    extra={"errors": details})
        return problem_response(p, request)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # FastAPI raises a bare 400 when the body is not decodable at all (invalid UTF-8, nesting too deep)
        slug = {400: "invalid-json", 404: "not-found", 405: "method-not-allowed", 413: "body-too-large",
                415: "unsupported-media-type"}.get(exc.status_code, "invalid-query")
        headers = dict(exc.headers or {})
        return problem_response(Problem(slug, str(exc.detail), headers=headers), request)

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s", request.url.path)
        return problem_response(Problem("internal", "an internal error occurred; it has been logged"), request)
