"""Running engine calls off the event loop: bounded thread pools, per-request deadlines, and size limits."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from native.errors import DeadlineExceededError
from service.errors import Problem
from service.settings import Concurrency, Limits

T = TypeVar("T")


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


class Lane:
    """A thread pool with a bounded backlog: past `threads + max_queue` waiting calls it answers 503."""

    def __init__(self, name: str, threads: int, max_queue: int, retry_after_s: int, inline: bool = False) -> None:
        self.name = name
        self.inline = inline
        self.executor = ThreadPoolExecutor(threads, thread_name_prefix=f"gramdex-{name}")
        self.capacity = threads + max_queue
        self.retry_after = str(retry_after_s)
        self.pending = 0  # touched only on the event loop thread

    async def run(self, fn: Callable[[], T]) -> T:
        if self.pending >= self.capacity:
            raise Problem("overloaded", f"the {self.name} query pool is full",
                          headers={"Retry-After": self.retry_after})
        if self.inline:
            return fn()
        self.pending += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self.executor, fn)
        finally:
            self.pending -= 1

    def shutdown(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)


class Pools:
    """`fast` for calls bounded by a few binary searches, `slow` for those whose cost grows with the data."""

    def __init__(self, c: Concurrency) -> None:
        self.fast = Lane("fast", c.fast_threads, c.max_queue, c.retry_after_s, c.inline_fast)
        self.slow = Lane("slow", c.slow_threads, c.max_queue, c.retry_after_s)

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
    if not text.isascii():
        try:  # JSON's \ud800 escapes decode to lone surrogates, which the tokenizer cannot take
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise Problem("validation-error", f"{field}: not valid Unicode (lone surrogate at {exc.start})",
                          field=field) from None

