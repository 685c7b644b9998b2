"""`Client` (blocking) and `AsyncClient` (asyncio) on httpx: the same endpoints, the same retry policy."""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar

import httpx

from gramdex_client.calls import Call, Calls
from gramdex_client.config import Config, Retry, parse_retry_after, resolve
from gramdex_client.errors import TransportError, error_for

P = ParamSpec("P")
T = TypeVar("T")
# failures before the server saw the request, or where it dropped the connection: safe to send again. A read
# timeout is not among them: the query may be slow, and sending it again would double the server's work
RETRYABLE = (httpx.ConnectError, httpx.ConnectTimeout, httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError,
             httpx.PoolTimeout)


@dataclass(frozen=True)
class Verdict(Generic[T]):
    """What to do with one attempt's outcome: wait and retry, or return a value, or raise."""

    wait: float | None = None
    value: T | None = None
    error: Exception | None = None

    def result(self) -> T:
        if self.error is not None:
            raise self.error
        return self.value  # type: ignore[return-value]


class _Base:
    def __init__(self, base_url: str | None = None, *, api_key: str | None = None, timeout: float | None = None,
                 retry: Retry | int | None = None, index: str | None = None) -> None:
        """Each argument left out comes from the environment: GRAMDEX_URL (default http://127.0.0.1:8000),
        GRAMDEX_API_KEY, GRAMDEX_TIMEOUT (seconds, default 30), GRAMDEX_MAX_RETRIES (default 3), GRAMDEX_INDEX
        (the index used when a call names none). `retry` is a Retry policy or a number of retries."""
        self.config: Config = resolve(base_url, api_key, timeout, retry, index)
        self.calls = Calls(self.config.index)
        headers = {"user-agent": "gramdex-client/0.1"}
        if self.config.api_key:
            headers["authorization"] = f"Bearer {self.config.api_key}"
        self.http = self._open(base_url=self.config.base_url, headers=headers, timeout=self.config.timeout_s)

    def _open(self, **options: Any) -> Any:
        raise NotImplementedError

    def _judge(self, call: Call[T], attempt: int, response: httpx.Response | None = None,
               failure: httpx.HTTPError | None = None) -> Verdict[T]:
        retry = self.config.retry
        may_retry = attempt < retry.max_retries
        if failure is not None:
            if isinstance(failure, RETRYABLE) and may_retry:
                return Verdict(wait=retry.delay(attempt))
            return Verdict(error=TransportError(f"{call.method} {self.config.base_url}{call.path}: {failure!r}"))
        assert response is not None
        if response.is_success:
            return Verdict(value=call.parse(response.json()))
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        if response.status_code in retry.statuses and may_retry:
            return Verdict(wait=retry.delay(attempt, retry_after))
        try:
            body: Any = response.json()
        except ValueError:
            body = response.text
        return Verdict(error=error_for(response.status_code, body, retry_after))


class _SyncEndpoint(Generic[P, T]):
    """`Client.count = _sync(Calls.count)`: the call's signature, answered by sending it."""

    def __init__(self, build: Callable[Concatenate[Calls, P], Call[T]]) -> None:
        self.build = build

    def __get__(self, client: Client, owner: type | None = None) -> Callable[P, T]:
        @functools.wraps(self.build)
        def send(*args: P.args, **kwargs: P.kwargs) -> T:
            return client.send(self.build(client.calls, *args, **kwargs))
        return send


class _AsyncEndpoint(Generic[P, T]):
    def __init__(self, build: Callable[Concatenate[Calls, P], Call[T]]) -> None:
        self.build = build

    def __get__(self, client: AsyncClient, owner: type | None = None) -> Callable[P, Awaitable[T]]:
        @functools.wraps(self.build)
        async def send(*args: P.args, **kwargs: P.kwargs) -> T:
            return await client.send(self.build(client.calls, *args, **kwargs))
        return send


class Client(_Base):
    """Blocking client. Use as a context manager, or call close()."""

    http: httpx.Client

    def _open(self, **options: Any) -> httpx.Client:
        return httpx.Client(**options)

    def send(self, call: Call[T]) -> T:
        attempt = 0
        while True:
            try:
                verdict = self._judge(call, attempt, response=self.http.request(
                    call.method, call.path, json=call.json, params=call.params))
            except httpx.HTTPError as exc:
                verdict = self._judge(call, attempt, failure=exc)
            if verdict.wait is None:
                return verdict.result()
            time.sleep(verdict.wait)
            attempt += 1

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    indexes = _SyncEndpoint(Calls.indexes)
    count = _SyncEndpoint(Calls.count)
    find = _SyncEndpoint(Calls.find)
    prob = _SyncEndpoint(Calls.prob)
    infgram_prob = _SyncEndpoint(Calls.infgram_prob)
    ntd = _SyncEndpoint(Calls.ntd)
    infgram_ntd = _SyncEndpoint(Calls.infgram_ntd)
    search_documents = _SyncEndpoint(Calls.search_documents)
    get_document = _SyncEndpoint(Calls.get_document)
    attribute = _SyncEndpoint(Calls.attribute)
    score = _SyncEndpoint(Calls.score)
    summarize = _SyncEndpoint(Calls.summarize)
    summarize_batch = _SyncEndpoint(Calls.summarize_batch)


class AsyncClient(_Base):
    """asyncio client: `async with AsyncClient() as c: await c.count(...)`."""

    http: httpx.AsyncClient

    def _open(self, **options: Any) -> httpx.AsyncClient:
        return httpx.AsyncClient(**options)

    async def send(self, call: Call[T]) -> T:
        attempt = 0
        while True:
            try:
                verdict = self._judge(call, attempt, response=await self.http.request(
                    call.method, call.path, json=call.json, params=call.params))
            except httpx.HTTPError as exc:
                verdict = self._judge(call, attempt, failure=exc)
            if verdict.wait is None:
                return verdict.result()
            await asyncio.sleep(verdict.wait)
            attempt += 1

    async def aclose(self) -> None:
        await self.http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    indexes = _AsyncEndpoint(Calls.indexes)
    count = _AsyncEndpoint(Calls.count)
    find = _AsyncEndpoint(Calls.find)
    prob = _AsyncEndpoint(Calls.prob)
    infgram_prob = _AsyncEndpoint(Calls.infgram_prob)
    ntd = _AsyncEndpoint(Calls.ntd)
    infgram_ntd = _AsyncEndpoint(Calls.infgram_ntd)
    search_documents = _AsyncEndpoint(Calls.search_documents)
    get_document = _AsyncEndpoint(Calls.get_document)
    attribute = _AsyncEndpoint(Calls.attribute)
    score = _AsyncEndpoint(Calls.score)
    summarize = _AsyncEndpoint(Calls.summarize)
    summarize_batch = _AsyncEndpoint(Calls.summarize_batch)
