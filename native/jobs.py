"""Queries as data (`Call`, over the C core's gd_job) and the pool of native threads that runs them (`Pool`).

A `Call` runs on the calling thread (`run()`) or on a `Pool`, whose threads execute the C query without the
GIL; the pool announces finished calls by writing to a file descriptor (an eventfd), so an asyncio loop
collects them with one wake-up per batch instead of one thread hand-off per call.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from native._gramdex import ffi, lib
from native.errors import (
    DeadlineExceededError,
    EngineIOError,
    GramdexError,
    IndexFormatError,
    InvalidQueryError,
)

T = TypeVar("T")

_ERRORS: dict[int, type[GramdexError]] = {
    lib.GD_E_NOMEM: GramdexError,
    lib.GD_E_IO: EngineIOError,
    lib.GD_E_FORMAT: IndexFormatError,
    lib.GD_E_INVALID: InvalidQueryError,
    lib.GD_E_DEADLINE: DeadlineExceededError,
}


def raise_status(status: int, err: Any) -> None:
    """Raise the exception for a failed C call (`err` is its gd_error)."""
    if status != lib.GD_OK:
        message = ffi.string(err.message).decode("utf-8", "replace")
        raise _ERRORS.get(status, GramdexError)(message)


class Call(Generic[T]):
    """One prepared query: the gd_job, the buffers it points to, and how to turn its outputs into a result."""

    __slots__ = ("job", "_keep", "_result", "_release", "_on_done")

    def __init__(self, job: Any, keep: tuple[Any, ...], result: Callable[[Any], T],
                 release: Callable[[Any], None] | None = None) -> None:
        self.job = job
        self._keep = keep  # the engine handle and the input/output buffers live as long as the job
        self._result = result
        self._release = release
        self._on_done: Callable[[], None] | None = None

    def when_done(self, fn: Callable[[], None]) -> None:
        """Call fn once the call is finished or discarded (e.g. to keep its index mapped until then)."""
        self._on_done = fn

    def run(self) -> T:
        """Run on this thread (the GIL is released for the C part)."""
        lib.gd_job_run(self.job)
        return self.finish()

    def finish(self) -> T:
        """The result of the finished job, or its error raised; frees what the C call allocated either way."""
        try:
            if self.job.status:
                raise_status(self.job.status, self.job.err)
            return self._result(self.job)
        finally:
            if self._release is not None:
                self._release(self.job)
            self._done()

    def discard(self) -> None:
        """Give up a call that was never run or submitted."""
        self._done()

    def _done(self) -> None:
        fn, self._on_done = self._on_done, None
        if fn is not None:
            fn()

    @property
    def run_seconds(self) -> float:
        return int(self.job.run_ns) / 1e9


class Pool:
    """`threads` native threads running Calls; finished ones are announced on `notify_fd` (8-byte writes). `nice`
    (0-19) lowers the threads' scheduling priority (Linux)."""

    def __init__(self, threads: int, notify_fd: int, nice: int = 0) -> None:
        out = ffi.new("gd_pool **")
        err = ffi.new("gd_error *")
        raise_status(lib.gd_pool_open(threads, notify_fd, nice, out, err), err)
        self._pool: Any = out[0]
        self._running: dict[int, Call[Any]] = {}  # keeps every submitted call's memory alive until it is taken
        self._tags = itertools.count(1)
        self._done = ffi.new("gd_job *[]", 64)

    def submit(self, call: Call[Any]) -> None:
        if self._pool is None:
            raise GramdexError("the pool is closed")
        tag = next(self._tags)
        call.job.tag = tag
        self._running[tag] = call
        err = ffi.new("gd_error *")
        status = lib.gd_pool_submit(self._pool, call.job, err)
        if status != lib.GD_OK:
            del self._running[tag]
            raise_status(status, err)

    def take_done(self) -> list[Call[Any]]:
        """Every call finished since the last take (call `finish()` on each)."""
        done: list[Call[Any]] = []
        if self._pool is None:
            return done
        while True:
            n = lib.gd_pool_take_done(self._pool, self._done, len(self._done))
            done.extend(self._running.pop(int(self._done[i].tag)) for i in range(n))
            if n < len(self._done):
                return done

    def close(self) -> list[Call[Any]]:
        """Run what is queued, stop the threads; returns the calls finished and not yet taken."""
        if self._pool is None:
            return []
        pool, self._pool = self._pool, None
        lib.gd_pool_close(pool)  # every queued job has run when it returns
        done = list(self._running.values())
        self._running.clear()
        return done
