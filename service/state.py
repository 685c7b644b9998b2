"""What one worker process serves: settings, indexes, pools, key guard; and the one way to call the engine."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from fastapi import Request

from native.errors import GramdexError
from native.jobs import Call
from service.auth import Guard
from service.errors import from_engine
from service.limits import Lane, Pools
from service.metrics import observe_engine, pending
from service.registry import Registry
from service.settings import Settings

T = TypeVar("T")


class ServiceState:
    def __init__(self, settings: Settings, registry: Registry) -> None:
        self.settings = settings
        self.registry = registry
        self.pools = Pools(settings.concurrency)
        self.guard = Guard(settings)
        self.last_reload_error: str | None = None

    @property
    def limits(self):  # noqa: ANN201 - the Limits model
        return self.settings.limits

    async def call(self, lane: Lane, op: str, index: str, work: Call[T] | Callable[[], T]) -> tuple[T, float]:
        """Run an engine call in the lane's pool (a prepared `Call` on its native threads, anything else on its
        Python threads); returns the result and the milliseconds it ran (queueing excluded)."""
        timing: list[float] = []

        def timed() -> T:
            start = time.perf_counter()
            try:
                return work()  # type: ignore[operator]
            finally:
                timing.append(time.perf_counter() - start)

        queued = pending(lane.name)
        queued.inc()
        try:
            result = await lane.run(work if isinstance(work, Call) else timed)
        except GramdexError as exc:
            raise from_engine(exc) from None
        finally:
            queued.dec()
            if isinstance(work, Call) and work.run_seconds:  # not when refused before it ran (full lane, deadline)
                timing.append(work.run_seconds)
            if timing:
                observe_engine(op, index, timing[0])
        return result, timing[0] * 1000


def state(request: Request) -> ServiceState:
    return request.app.state.service  # type: ignore[no-any-return]
