"""Applying settings: which indexes to serve (the demo index when none is configured), and reloads."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from pydantic import ValidationError

from service.errors import Problem
from service.registry import IndexLoadError
from service.settings import IndexSettings, Settings, load_settings
from service.state import ServiceState

log = logging.getLogger("gramdex.service")


def index_configs(settings: Settings) -> dict[str, IndexSettings]:
    if settings.indexes or not settings.demo:
        return dict(settings.indexes)
    from service.demo_index import demo_index

    return {"demo": IndexSettings(path=demo_index())}


async def reload(svc: ServiceState) -> dict[str, Any]:
    """Re-read the settings sources and swap indexes, keys and limits; on failure nothing changes."""
    try:
        settings = await asyncio.to_thread(load_settings)
        changes = await asyncio.to_thread(svc.registry.load, index_configs(settings))
    except ValidationError as exc:
        svc.last_reload_error = f"invalid settings: {exc.error_count()} error(s)"
        log.error("reload: invalid settings: %s", exc)
        raise Problem("reload-failed", svc.last_reload_error) from None
    except (IndexLoadError, OSError, ValueError) as exc:
        svc.last_reload_error = str(exc) if isinstance(exc, IndexLoadError) else type(exc).__name__
        log.error("reload failed: %s", getattr(exc, "cause", exc))
        raise Problem("reload-failed", svc.last_reload_error) from None
    svc.settings = settings
    svc.guard.configure(settings)
    svc.last_reload_error = None
    log.warning("reloaded: %s", changes)
    return {**changes, "indexes": svc.registry.names()}
