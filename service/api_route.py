"""The route class of the key-protected API: the route checks the API key itself, and reads a JSON body into its
model with one pydantic call. Both replace per-request FastAPI machinery that cost more than the query: as a
dependency, the key check cost FastAPI's dependency resolution (about a quarter of a cheap query's event-loop time),
and FastAPI's body path (json.loads, then validation field by field) another third. The contract is unchanged: the
routes still declare their body models and name the bearer scheme."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any, get_type_hints

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError

BEARER = "HTTPBearer"
BEARER_SCHEME = {"type": "http", "description": "an API key, when the server is configured with keys",
                 "scheme": "bearer"}
Handler = Callable[[Request], Coroutine[Any, Any, Response]]


def authorize(request: Request) -> None:
    """Raises the 401 or 429 problem for a request its key (or its address) may not make now."""
    svc = getattr(request.app.state, "service", None)  # the service's or the router's state: both carry a Guard
    guard = svc.guard if svc is not None else None  # none: an app with no key settings (one mounting a router alone)
    if guard is not None and (guard.keys or guard.anonymous_rate is not None):  # keys may carry rate limits
        guard.check(request.headers.get("authorization"), request.client.host if request.client else "")


class ApiRoute(APIRoute):
    """Key-protected. Routers using it must be included without dependencies: the direct body path (endpoints taking
    only string path parameters, one model body and the request, and returning a Response) would not run them."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        kwargs["openapi_extra"] = {"security": [{BEARER: []}], **(kwargs.get("openapi_extra") or {})}
        super().__init__(path, endpoint, **kwargs)

    def get_route_handler(self) -> Handler:
        handler = _direct_body(self) or super().get_route_handler()

        async def guarded(request: Request) -> Response:
            authorize(request)
            return await handler(request)

        return guarded


def _direct_body(route: APIRoute) -> Handler | None:
    """A handler validating the raw body with the model's own JSON parser, for endpoints of the shape
    `(path strings..., body: Model, request) -> Response`; FastAPI's handler still answers every body that fails
    (so errors, and bodies only Python's json module accepts, such as lone surrogate escapes, read as before)."""
    d = route.dependant
    body = d.body_params[0] if len(d.body_params) == 1 else None
    model = getattr(body, "field_info", None) and body.field_info.annotation  # type: ignore[union-attr]
    try:
        returns = get_type_hints(route.endpoint).get("return")
    except (NameError, TypeError):  # a hint only a type checker can resolve: FastAPI's own handler then
        return None
    plain = (body is not None and isinstance(model, type) and issubclass(model, BaseModel)
             and isinstance(returns, type) and issubclass(returns, Response)
             and d.request_param_name is not None and not (d.query_params or d.header_params or d.cookie_params
                                                            or d.dependencies or route.dependencies)
             and all(p.field_info.annotation is str and not p.field_info.metadata for p in d.path_params)
             and d.response_param_name is None and d.background_tasks_param_name is None)
    if not plain:
        return None
    fallback = APIRoute.get_route_handler(route)
    endpoint, body_name, request_name = route.dependant.call, body.name, d.request_param_name  # type: ignore[union-attr]
    path_names = [p.name for p in d.path_params]
    validate = model.model_validate_json  # type: ignore[union-attr]

    async def direct(request: Request) -> Response:
        try:
            value = validate(await request.body())  # the body stays cached on the request for the fallback
        except ValidationError:
            return await fallback(request)
        kwargs = {name: request.path_params[name] for name in path_names}
        return await endpoint(**kwargs, **{body_name: value, request_name: request})  # type: ignore[misc, no-any-return]

    return direct


def api_router(**kwargs: Any) -> APIRouter:
    return APIRouter(route_class=ApiRoute, **kwargs)


def declare_bearer(app: FastAPI) -> None:
    """Adds the bearer scheme the routes' `security` names to the app's OpenAPI document (FastAPI declares schemes
    only for security dependencies)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            schema.setdefault("components", {}).setdefault("securitySchemes", {})[BEARER] = BEARER_SCHEME
        return app.openapi_schema  # type: ignore[return-value]

    app.openapi = openapi  # type: ignore[method-assign]
