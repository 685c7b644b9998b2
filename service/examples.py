"""Request and response examples shown in the OpenAPI document (tests run every one against a real server)."""

from __future__ import annotations

from typing import Any

RESPONSES: dict[str, dict[str, Any]] = {}


def example_responses(name: str) -> dict[int | str, dict[str, Any]]:
    body = RESPONSES.get(name)
    if body is None:
        return {}
    return {200: {"content": {"application/json": {"example": body}}}}
