"""Running engine calls off the event loop (bounded lanes of native and Python threads), per-request deadlines, and
size limits."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from native.errors import DeadlineExceededError
from native.jobs import Call, Pool
from service.errors import Problem
from service.settings import Concurrency, Limits

T = TypeVar("T")
log = logging.getLogger("gramdex.service")


class Deadline:
    """A request's deadline, started when the request arrives, so time spent queued counts too."""

    __slots__ = ("at",)

    def __init__(self, timeout_ms: float | None, limits: Limits) -> None:
        ms = limits.default_timeout_ms if timeout_ms is None else min(timeout_ms, limits.max_timeout_ms)
        self.at = time.monotonic() + ms / 1000

    def remaining_ms(self) -> float:
        """Milliseconds left; raises when none are, so a call that waited too long in the queue never starts."""
        left = (self.at - time.monotonic()) * 1000
        if left <= 0:
            raise DeadlineExceededError("deadline passed before the query started")
        return left


def _lower_priority(nice: int) -> None:
    """Runs on each new thread of a lane: on Linux the nice value belongs to the thread (who = 0 is the caller).
    A sandbox that refuses the call leaves the thread at the default priority, which is slower but still correct
    (an exception here would break the lane's executor for good)."""
    if nice and sys.platform == "linux":
        try:
            os.setpriority(os.PRIO_PROCESS, 0, nice)
        except OSError as exc:
            log.warning("could not lower the priority of thread %s: %s", threading.current_thread().name, exc)


class Lane:
    """A bounded pool: native threads run engine `Call`s without the GIL, Python threads run other engine work;
    past `threads + max_queue` calls waiting or running it answers 503."""

    def __init__(self, name: str, threads: int, max_queue: int, retry_after_s: int, nice: int = 0) -> None:
        self.name = name
        self.threads = threads
        self.nice = nice
        self.executor = ThreadPoolExecutor(threads, thread_name_prefix=f"gramdex-{name}", initializer=_lower_priority,
                                           initargs=(nice,))
        self.capacity = threads + max_queue
        self.retry_after = str(retry_after_s)
        self.pending = 0  # touched only on the event loop thread
        self._native: NativeRunner | None = None

    async def run(self, work: Call[T] | Callable[[], T]) -> T:
        if self.pending >= self.capacity:
            if isinstance(work, Call):
                work.discard()
            raise Problem("overloaded", f"the {self.name} query pool is full",
                          headers={"Retry-After": self.retry_after})
        self.pending += 1
        try:
            if isinstance(work, Call):
                return await self._runner().run(work)
            return await asyncio.get_running_loop().run_in_executor(self.executor, work)
        finally:
            self.pending -= 1

    def _runner(self) -> NativeRunner:
        loop = asyncio.get_running_loop()
        if self._native is None or self._native.loop is not loop:
            if self._native is not None:
                self._native.close()
            self._native = NativeRunner(self.threads, loop, self.nice)
        return self._native

    def shutdown(self) -> None:
        if self._native is not None:
            self._native.close()
            self._native = None
        self.executor.shutdown(wait=False, cancel_futures=True)


SPIN_S = 50e-6  # how long a lone cheap call is awaited by polling (the C query itself takes ~1-20 us)


class NativeRunner:
    """The engine's native pool wired to an asyncio loop: an eventfd wakes the loop once per batch of finished
    calls, and no Python thread takes the GIL to run a query."""

    def __init__(self, threads: int, loop: asyncio.AbstractEventLoop, nice: int = 0) -> None:
        self.loop = loop
        self._fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self._pool = Pool(threads, self._fd, nice)
        self._waiting: dict[Call[Any], asyncio.Future[Any]] = {}
        loop.add_reader(self._fd, self._collect)

    def run(self, call: Call[T]) -> asyncio.Future[T]:
        future: asyncio.Future[T] = self.loop.create_future()
        self._pool.submit(call)
        self._waiting[call] = future
        if len(self._waiting) == 1:
            # the only call in flight, so the loop has nothing else to do: watching the done list for a few
            # microseconds answers a cheap query without sleeping in epoll and being woken by the eventfd (on this
            # 2-CPU VM that round trip costs ~30 us more than the query). Under load the loop never spins.
            end = time.perf_counter() + SPIN_S
            while not future.done() and time.perf_counter() < end:
                self._take()
        return future

    def _collect(self) -> None:
        try:
            os.eventfd_read(self._fd)
        except BlockingIOError:
            pass
        self._take()

    def _take(self) -> None:
        for call in self._pool.take_done():
            self._settle(call)

    def _settle(self, call: Call[Any]) -> None:
        future = self._waiting.pop(call)
        try:
            result = call.finish()  # also frees what the C call allocated when nobody waits any more
        except Exception as exc:  # noqa: BLE001 - handed to the waiting request
            if not future.done():
                future.set_exception(exc)
        else:
            if not future.done():
                future.set_result(result)

    def close(self) -> None:
        """Stop the threads after the queued calls ran (the eventfd outlives them); their waiters get results."""
        done = self._pool.close()
        if not self.loop.is_closed():
            self.loop.remove_reader(self._fd)
        os.close(self._fd)
        for call in done:
            if self.loop.is_closed():
                self._waiting.pop(call)
                try:
                    call.finish()
                except Exception:  # noqa: BLE001, S110 - nobody is left to tell; finish() only frees memory here
                    pass
            else:
                self._settle(call)


class Pools:
    """`fast` for calls bounded by a few binary searches, `slow` for those whose cost grows with the data."""

    def __init__(self, c: Concurrency) -> None:
        self.fast = Lane("fast", c.fast_threads, c.max_queue, c.retry_after_s)
        self.slow = Lane("slow", c.slow_threads, c.max_queue, c.retry_after_s, c.slow_nice)

    def shutdown(self) -> None:
        self.fast.shutdown()
        self.slow.shutdown()


def too_large(field: str, what: str, value: int, limit: int) -> Problem:
    return Problem("query-too-large", f"{field}: {what} {value} is over the limit of {limit}", field=field,
                   extra={"limit": limit})


def check_max(field: str, value: int | None, limit: int) -> None:
    if value is not None and value > limit:
        raise too_large(field, "value", value, limit)


def check_tokens(field: str, ids: Sequence[int], limits: Limits) -> None:
    if len(ids) > limits.max_query_tokens:
        raise too_large(field, "token count", len(ids), limits.max_query_tokens)


def check_cnf(field: str, cnf: Sequence[Sequence[Sequence[int]]], limits: Limits) -> None:
    if len(cnf) > limits.max_cnf_clauses:
        raise too_large(field, "clause count", len(cnf), limits.max_cnf_clauses)
    for clause in cnf:
        if len(clause) > limits.max_cnf_terms:
            raise too_large(field, "terms in a clause", len(clause), limits.max_cnf_terms)
    total = sum(len(t) for clause in cnf for t in clause)
    if total > limits.max_query_tokens:
        raise too_large(field, "token count", total, limits.max_query_tokens)


def check_text(field: str, text: str, limits: Limits) -> None:
    if len(text) > limits.max_query_chars:
        raise too_large(field, "length in characters", len(text), limits.max_query_chars)
    check_unicode(field, text)


def check_unicode(field: str, text: str) -> None:
    """JSON's \\ud800 escapes decode to lone surrogates, which no tokenizer, and no UTF-8 encoder, can take."""
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise Problem("validation-error", f"{field}: not valid Unicode (lone surrogate at {exc.start})",
                          field=field) from None

