"""Typed exceptions for the API's RFC 9457 problem details: one class per problem `type`, grouped by HTTP status.

Catch a status group (`NotFoundError`, `ServiceUnavailableError`, ...) or one exact problem (`UnknownIndexError`).
A problem whose `type` this SDK does not know (a newer server, or the summarizer's `about:blank`) becomes the class
of its status group, so `except` clauses keep working.
"""

from __future__ import annotations

from typing import Any

TYPE_PREFIX = "urn:gramdex:problem:"


class GramdexClientError(Exception):
    """Anything this SDK raises."""


class TransportError(GramdexClientError):
    """The server could not be reached (after the retries the policy allows)."""


class ApiError(GramdexClientError):
    """The server answered with an error status."""

    status: int = 0

    def __init__(self, status: int, title: str, detail: str, *, type: str = "about:blank", field: str | None = None,
                 instance: str | None = None, retry_after: float | None = None,
                 body: dict[str, Any] | None = None) -> None:
        super().__init__(f"{status} {title}: {detail}" if detail else f"{status} {title}")
        self.status = status
        self.title = title
        self.detail = detail
        self.type = type
        self.field = field
        self.instance = instance
        self.retry_after = retry_after  # seconds, from Retry-After
        self.body = body or {}

    @property
    def slug(self) -> str | None:
        """The problem's short name (`unknown-index`), or None for a type outside gramdex's namespace."""
        return self.type.removeprefix(TYPE_PREFIX) if self.type.startswith(TYPE_PREFIX) else None


class ClientError(ApiError):
    """A 4xx: the request must change before it can succeed."""


class ServerError(ApiError):
    """A 5xx."""


class BadRequestError(ClientError):
    status = 400


class InvalidJsonError(BadRequestError):
    pass


class InvalidQueryError(BadRequestError):
    pass


class TextUnsupportedError(BadRequestError):
    pass


class UnauthorizedError(ClientError):
    status = 401


class ForbiddenError(ClientError):
    status = 403


class NotFoundError(ClientError):
    status = 404


class UnknownIndexError(NotFoundError):
    pass


class UnknownDocumentError(NotFoundError):
    pass


class MethodNotAllowedError(ClientError):
    status = 405


class PayloadTooLargeError(ClientError):
    status = 413


class BodyTooLargeError(PayloadTooLargeError):
    pass


class QueryTooLargeError(PayloadTooLargeError):
    pass


class UnsupportedMediaTypeError(ClientError):
    status = 415


class ValidationError(ClientError):
    status = 422


class ImpossibleBudgetError(ValidationError):
    """The summary's budget (max_tokens or ratio) cannot be met."""


class RateLimitedError(ClientError):
    status = 429


class HeadersTooLargeError(ClientError):
    status = 431


class InternalError(ServerError):
    status = 500


class ReloadFailedError(InternalError):
    pass


class ServiceUnavailableError(ServerError):
    status = 503


class IndexUnavailableError(ServiceUnavailableError):
    pass


class OverloadedError(ServiceUnavailableError):
    pass


class SummarizerUnavailableError(ServiceUnavailableError):
    pass


class DeadlineExceededError(ServerError):
    status = 504


# the server's problem slugs (service/errors.py PROBLEMS); a test checks that both lists agree
BY_SLUG: dict[str, type[ApiError]] = {
    "invalid-json": InvalidJsonError,
    "invalid-query": InvalidQueryError,
    "text-unsupported": TextUnsupportedError,
    "unauthorized": UnauthorizedError,
    "forbidden": ForbiddenError,
    "unknown-index": UnknownIndexError,
    "unknown-document": UnknownDocumentError,
    "not-found": NotFoundError,
    "method-not-allowed": MethodNotAllowedError,
    "body-too-large": BodyTooLargeError,
    "query-too-large": QueryTooLargeError,
    "unsupported-media-type": UnsupportedMediaTypeError,
    "validation-error": ValidationError,
    "impossible-budget": ImpossibleBudgetError,
    "headers-too-large": HeadersTooLargeError,
    "rate-limited": RateLimitedError,
    "internal": InternalError,
    "reload-failed": ReloadFailedError,
    "index-unavailable": IndexUnavailableError,
    "overloaded": OverloadedError,
    "summarizer-unavailable": SummarizerUnavailableError,
    "deadline-exceeded": DeadlineExceededError,
}
BY_STATUS: dict[int, type[ApiError]] = {c.status: c for c in (
    BadRequestError, UnauthorizedError, ForbiddenError, NotFoundError, MethodNotAllowedError, PayloadTooLargeError,
    UnsupportedMediaTypeError, ValidationError, RateLimitedError, HeadersTooLargeError, InternalError,
    ServiceUnavailableError, DeadlineExceededError)}


def error_for(status: int, body: Any, retry_after: float | None = None) -> ApiError:
    """The exception for an error response; `body` is its parsed JSON (or anything else when it was not JSON)."""
    problem = body if isinstance(body, dict) else {}
    ptype = str(problem.get("type", "about:blank"))
    cls = BY_SLUG.get(ptype.removeprefix(TYPE_PREFIX)) if ptype.startswith(TYPE_PREFIX) else None
    cls = cls or BY_STATUS.get(status) or (ClientError if status < 500 else ServerError)
    detail = problem.get("detail")
    if detail is None and not problem:
        detail = str(body)[:500]  # not a problem document (a proxy's page): show its start
    return cls(status, str(problem.get("title", "HTTP error")), str(detail or ""), type=ptype,
               field=problem.get("field"), instance=problem.get("instance"), retry_after=retry_after, body=problem)
