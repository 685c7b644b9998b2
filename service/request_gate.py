"""The checks every request passes before the app reads its body, in one pass over its headers: 431 for headers over
their limit (the HTTP parser itself sets none), 413 for a body that says (Content-Length) or turns out (chunked) to
be over the limit, 415 for a body declared as anything but JSON (a request without Content-Type is read as JSON)."""

from __future__ import annotations

import json
from collections.abc import Callable

from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service import errors
from service.settings import Limits

_BODY_METHODS = ("POST", "PUT", "PATCH")


def _json_media(value: bytes) -> bool:
    media = value.split(b";", 1)[0].strip().lower()
    return media == b"application/json" or media.endswith(b"+json")


class RequestGate:
    def __init__(self, app: ASGIApp, limits: Callable[[], Limits]) -> None:
        self.app = app
        self.limits = limits  # the current limits: they change on reload

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limits = self.limits()
        max_body = limits.max_body_bytes
        header_bytes = 0
        declared: bytes | None = None
        chunked = False
        too_long = False
        bad_media: bytes | None = None
        for name, value in scope["headers"]:
            header_bytes += len(name) + len(value) + 4
            if name == b"content-length":
                declared = value
                too_long = too_long or (value.isdigit() and int(value) > max_body)
            elif name == b"transfer-encoding":
                chunked = True
            elif name == b"content-type" and scope["method"] in _BODY_METHODS and not _json_media(value):
                bad_media = value
        problem = None
        if header_bytes > limits.max_header_bytes:
            problem = errors.Problem("headers-too-large", f"the headers are over {limits.max_header_bytes} bytes")
        elif too_long:
            problem = errors.Problem("body-too-large", f"the body is over {max_body} bytes")
        elif bad_media is not None:
            media = bad_media.split(b";", 1)[0].strip().lower().decode("latin-1")
            problem = errors.Problem("unsupported-media-type", f"send application/json, not {media}")
        if problem is not None:
            await send_problem(send, problem, scope["path"])
            return
        if declared is not None and not chunked:
            # the HTTP parser delivers at most Content-Length bytes, checked above
            await self.app(scope, receive, send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > max_body:
                raise StarletteHTTPException(413, f"the body is over {max_body} bytes")
            return message

        await self.app(scope, counted, send)


async def send_problem(send: Send, p: errors.Problem, path: str) -> None:
    body = json.dumps(p.body(path)).encode()
    await send({"type": "http.response.start", "status": p.status,
                "headers": [(b"content-type", errors.PROBLEM_JSON.encode()),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
