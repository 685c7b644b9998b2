"""The API's route class reads a JSON body with one pydantic call: for every body, valid or not, the answer must be
the one FastAPI's own handler gives for the same endpoint (and the key check must run before either)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient

from service import errors
from service.api_route import _direct_body, api_router
from service.auth import Guard
from service.schemas import CountRequest, NtdRequest
from service.settings import ApiKey, Settings


def _routes(router: APIRouter) -> APIRouter:
    async def count(index: str, body: CountRequest, request: Request) -> JSONResponse:
        return JSONResponse({"index": index, "body": repr(body)})  # repr: a timeout of 1e400 is inf

    async def ntd(index: str, body: NtdRequest, request: Request) -> JSONResponse:
        return JSONResponse({"index": index, "body": repr(body)})

    async def untyped(index: str, body: NtdRequest, request: Request) -> dict[str, Any]:
        return {"index": index, "prompt": body.prompt}  # not a Response: FastAPI's handler serialises it

    router.add_api_route("/v1/{index}/count", count, methods=["POST"])
    router.add_api_route("/v1/{index}/ntd", ntd, methods=["POST"])
    router.add_api_route("/v1/{index}/untyped", untyped, methods=["POST"])
    return router


def _app(router: APIRouter, keys: list[ApiKey] | None = None) -> FastAPI:
    app = FastAPI()
    errors.install(app)
    app.include_router(_routes(router))
    app.state.service = SimpleNamespace(guard=Guard(Settings(demo=False, api_keys=keys or [])))
    return app


BODIES: list[bytes] = [
    b'{"query": "the cat"}', b'{"query_ids": [1, 2, 3]}', b'{"query_ids": [[[1], [2]], [[3]]]}',
    b'{"query": "a", "query": "b"}',                 # duplicate keys: the last wins in both parsers
    b'{"query_ids": [1.0, 2]}', b'{"query_ids": ["1"]}', b'{"timeout_ms": 1e400}', b'{"timeout_ms": NaN}',
    b'{"query_ids": [123456789012345678901234567890]}', b'{"query": "\\ud800"}', b'{"query": "caf\\u00e9"}',
    b'{"nope": 1}', b'{"query_ids": [-1]}', b"", b"null", b"[]", b'"text"', b"{", b"\xff\xfe", b"[" * 5000,
    b'{"max_clause_freq": 0}', b'{"query": 5}', b'{"prompt": "x"}',
]


@pytest.mark.parametrize("path", ["/v1/demo/count", "/v1/demo/ntd", "/v1/demo/untyped"])
def test_direct_body_answers_as_fastapi_does(path: str) -> None:
    fast, plain = TestClient(_app(api_router())), TestClient(_app(APIRouter()))
    for body in BODIES:
        a = fast.post(path, content=body, headers={"content-type": "application/json"})
        b = plain.post(path, content=body, headers={"content-type": "application/json"})
        assert (a.status_code, a.json()) == (b.status_code, b.json()), body


def test_direct_path_is_taken_only_for_its_shape() -> None:
    taken = {r.path: _direct_body(r) is not None for r in _routes(api_router()).routes}
    assert taken == {"/v1/{index}/count": True, "/v1/{index}/ntd": True, "/v1/{index}/untyped": False}


def test_key_is_checked_before_the_body_is_read() -> None:
    client = TestClient(_app(api_router(), [ApiKey(name="c", key="client-key-0123")]))
    r = client.post("/v1/demo/count", content=b"{", headers={"content-type": "application/json"})
    assert r.status_code == 401 and r.json()["type"].endswith(":unauthorized")
    ok = client.post("/v1/demo/count", json={"query": "x"}, headers={"authorization": "Bearer client-key-0123"})
    assert ok.status_code == 200 and "query='x'" in ok.json()["body"]


def test_an_endpoint_whose_hints_do_not_resolve_keeps_fastapis_handler() -> None:
    router = api_router()

    async def odd(index: str, body: CountRequest, request: Request) -> JSONResponse:
        return JSONResponse({"index": index})

    odd.__annotations__["return"] = "OnlyForTypeCheckers"  # as under `if TYPE_CHECKING:` imports
    router.add_api_route("/v1/{index}/odd", odd, methods=["POST"])
    assert _direct_body(router.routes[0]) is None
    app = FastAPI()
    app.include_router(router)
    assert TestClient(app).post("/v1/demo/odd", json={"query": "x"}).json() == {"index": "demo"}
