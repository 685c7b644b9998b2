"""Talking to shard servers: one shared httpx.AsyncClient, replicas tried in turn, per-shard timeouts, and the
shard servers' own errors passed on unchanged."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from service.errors import PROBLEMS, TYPE_PREFIX, Problem
from service.settings import Router, RouterIndex

log = logging.getLogger("gramdex.router")
# a replica that answers these is skipped for another (the others mean the query itself is at fault)
FAILOVER_STATUSES = {502, 503}


class ShardDown(Exception):
    """No replica of a shard group answered."""

    def __init__(self, group: Group, reasons: list[str]) -> None:
        super().__init__(f"{group.name}: " + "; ".join(reasons))
        self.group = group
        self.reasons = reasons


@dataclass
class Group:
    index: int
    name: str
    urls: list[str]
    remote_index: str   # the index's name on the shard servers
    down_until: dict[str, float] = field(default_factory=dict)
    _turn: itertools.count = field(default_factory=itertools.count)  # type: ignore[type-arg]

    def order(self) -> list[str]:
        """Replicas to try: in turn (spreads load), those that failed lately last."""
        n = len(self.urls)
        start = next(self._turn) % n
        urls = self.urls[start:] + self.urls[:start]
        now = time.monotonic()
        return sorted(urls, key=lambda u: self.down_until.get(u, 0) > now)


def groups_of(name: str, cfg: RouterIndex) -> list[Group]:
    return [Group(i, g.name or f"shard-group-{i}", [u.rstrip("/") for u in g.urls], cfg.name or name)
            for i, g in enumerate(cfg.shards)]


def _problem_of(response: httpx.Response) -> Problem:
    """The shard server's problem (a 400, a 504 deadline...) as the router's own."""
    try:
        body = response.json()
        slug = str(body.get("type", "")).removeprefix(TYPE_PREFIX)
        detail = str(body.get("detail", ""))
    except ValueError:
        slug, detail = "", ""
    if slug not in PROBLEMS:
        return Problem("internal", f"a shard server answered {response.status_code}")
    extra = {k: v for k, v in body.items() if k in ("errors", "limit")}
    return Problem(slug, detail, field=body.get("field"), extra=extra)


class Shards:
    """The shared client and the calls a router makes to shard groups."""

    def __init__(self, settings: Router) -> None:
        self.settings = settings
        headers = {"authorization": f"Bearer {settings.api_key}"} if settings.api_key else {}
        limits = httpx.Limits(max_connections=settings.max_connections,
                              max_keepalive_connections=settings.max_connections)
        self.client = httpx.AsyncClient(headers=headers, limits=limits,
                                        timeout=httpx.Timeout(settings.shard_timeout_s,
                                                              connect=settings.connect_timeout_s))

    async def close(self) -> None:
        await self.client.aclose()

    async def call(self, group: Group, method: str, path: str, body: Any = None) -> httpx.Response:
        """One request to the group, on the next replica when one is down, slow (timeout) or overloaded."""
        reasons = []
        timeout = self.settings.shard_timeout_s
        if isinstance(body, dict) and body.get("timeout_ms"):
            # a query allowed to run longer than the shard timeout is not a shard failure: its own deadline (the
            # shard server answers 504 at it) plus a second for the answer to come back
            timeout = max(timeout, body["timeout_ms"] / 1000 + 1)
        for url in group.order():
            try:
                r = await self.client.request(method, f"{url}{path}", json=body,
                                              timeout=httpx.Timeout(timeout, connect=self.settings.connect_timeout_s))
            except httpx.TimeoutException:
                reasons.append(f"{url} timed out")
            except httpx.TransportError as exc:
                reasons.append(f"{url} unreachable ({type(exc).__name__})")
            else:
                if r.status_code < 400:
                    group.down_until.pop(url, None)
                    return r
                if r.status_code not in FAILOVER_STATUSES:
                    raise _problem_of(r)
                reasons.append(f"{url} answered {r.status_code}")
            group.down_until[url] = time.monotonic() + self.settings.down_cooldown_s
            log.warning("shard server %s failed: %s", url, reasons[-1])
        raise ShardDown(group, reasons)

    async def post(self, group: Group, op: str, body: Any) -> dict[str, Any]:
        r = await self.call(group, "POST", f"/v1/internal/indexes/{group.remote_index}/{op}", body)
        return r.json()  # type: ignore[no-any-return]

    async def fan(self, groups: Sequence[Group], op: str,
                  body: Any | Callable[[Group], Any]) -> tuple[dict[int, dict[str, Any]], list[ShardDown]]:
        """The same call on every group at once: answers by group index, and the groups that are down.

        Any other error (a shard's 4xx or 504) is raised: the query itself failed, not a shard."""
        results = await asyncio.gather(*(self.post(g, op, body(g) if callable(body) else body) for g in groups),
                                       return_exceptions=True)
        answers: dict[int, dict[str, Any]] = {}
        down: list[ShardDown] = []
        for g, res in zip(groups, results, strict=True):
            if isinstance(res, ShardDown):
                down.append(res)
            elif isinstance(res, BaseException):
                raise res
            else:
                answers[g.index] = res
        return answers, down
