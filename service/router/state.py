"""The router's view of each routed index (its groups, their shards, the tokenizer), and one query's fan-out
with its missing shards."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from fastapi import Request

from service.auth import Guard
from service.errors import Problem
from service.router.shards import Group, ShardDown, Shards, groups_of
from service.router.topology import Topology
from service.settings import Settings
from service.tokenization import BytesCodec, Codec, HFCodec


class RemoteIndex:
    """A routed index. Each group's layout is asked once (GET /v1/internal/indexes/{index}) and kept: replicas
    serve the same files, so the layout changes only with a new deployment (restart the router)."""

    def __init__(self, name: str, groups: list[Group]) -> None:
        self.name = name
        self.groups = groups
        self.infos: list[dict[str, Any] | None] = [None] * len(groups)
        self.topology = Topology(self.infos)
        self.codec: Codec | None = None
        self.engine = SimpleNamespace(max_token_id=2**32 - 1)  # what service.inputs reads; set from the servers
        self._lock = asyncio.Lock()
        self._tmp: tempfile.TemporaryDirectory[str] | None = None

    @property
    def complete(self) -> bool:
        return all(i is not None for i in self.infos)

    async def discover(self, shards: Shards) -> list[ShardDown]:
        """Ask the groups not yet known for their layout; returns the groups still down."""
        async with self._lock:
            missing = [g for g in self.groups if self.infos[g.index] is None]
            if not missing:
                return []
            results = await asyncio.gather(
                *(shards.call(g, "GET", f"/v1/internal/indexes/{g.remote_index}") for g in missing),
                return_exceptions=True)
            down = []
            for g, r in zip(missing, results, strict=True):
                if isinstance(r, ShardDown):
                    down.append(r)
                elif isinstance(r, BaseException):
                    raise r
                else:
                    self.infos[g.index] = r.json()
            first = next((i for i in self.infos if i is not None), None)
            if first is not None:
                self.engine.max_token_id = first["max_token_id"]
                if self.codec is None and first["codec"] is not None:
                    try:
                        self.codec = await self._load_codec(shards, first)
                    except ShardDown as d:  # asked again on the next query
                        down.append(d)
            self.topology = Topology(self.infos)
            return down

    @property
    def ready(self) -> bool:
        """Layout known for some group, and the tokenizer loaded when the servers have one."""
        first = next((i for i in self.infos if i is not None), None)
        return first is not None and (first["codec"] is None or self.codec is not None)

    async def _load_codec(self, shards: Shards, info: dict[str, Any]) -> Codec:
        """The shard servers' own tokenizer file, so text is tokenized here exactly as they would."""
        if info["codec"] == "bytes":
            return BytesCodec()
        g = self.groups[self.infos.index(info)]
        r = await shards.call(g, "GET", f"/v1/internal/indexes/{g.remote_index}/tokenizer")
        self._tmp = tempfile.TemporaryDirectory(prefix="gramdex-router-")
        path = Path(self._tmp.name) / info["tokenizer_file"]
        path.write_bytes(r.content)
        return await asyncio.to_thread(HFCodec, path, info["add_prefix_space"])

    def describe(self) -> dict[str, Any]:
        first = next((i for i in self.infos if i is not None), {})
        t = self.topology
        return {"name": self.name, "documents": t.doc_cnt, "tokens": t.tok_cnt, "shards": len(t.shards),
                "token_width": first.get("token_width"), "eos_token_id": first.get("eos_token_id"),
                "vocab_size": first.get("vocab_size"), "tokenizer": first.get("tokenizer")}


class RouterState:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.guard = Guard(settings)
        self.shards = Shards(settings.router)
        self.indexes = {name: RemoteIndex(name, groups_of(name, cfg)) for name, cfg in settings.router.indexes.items()}

    @property
    def limits(self):  # noqa: ANN201 - the Limits model
        return self.settings.limits

    async def fanout(self, name: str, allow_partial: bool) -> Fanout:
        ix = self.indexes.get(name)
        if ix is None:
            raise Problem("unknown-index", f"no index named {name!r} is served here", field="index")
        f = Fanout(self.shards, ix, allow_partial)
        if not ix.complete or not ix.ready:
            f.note(await ix.discover(self.shards))
        if not ix.ready:
            raise Problem("index-unavailable", f"index {name!r}: no shard group has answered yet",
                          extra={"missing_shards": [g.name for g in ix.groups]})
        return f


class Fanout:
    """One query's calls to the groups of an index. A group that is down fails the query (503 naming it) unless
    the request allows a partial answer; then it is left out of this and every later round."""

    def __init__(self, shards: Shards, ix: RemoteIndex, allow_partial: bool) -> None:
        self.shards = shards
        self.ix = ix
        self.allow_partial = allow_partial
        self.missing: dict[int, str] = {g.index: g.name for g in ix.groups if ix.infos[g.index] is None}

    @property
    def topology(self) -> Topology:
        return self.ix.topology

    @property
    def live(self) -> list[Group]:
        return [g for g in self.ix.groups if g.index not in self.missing]

    def note(self, down: list[ShardDown], *, force: bool = False) -> None:
        for d in down:
            self.missing[d.group.index] = d.group.name
        if self.missing and (force or not self.allow_partial or not self.live):
            names = [self.missing[i] for i in sorted(self.missing)]
            raise Problem("index-unavailable",
                          f"index {self.ix.name!r}: shard group(s) {', '.join(names)} did not answer (no replica "
                          "reachable in time)", extra={"missing_shards": names})

    async def fan(self, op: str, body: Any) -> dict[int, dict[str, Any]]:
        answers, down = await self.shards.fan(self.live, op, body)
        self.note(down)
        return answers

    async def one(self, group: Group, op: str, body: Any) -> dict[str, Any] | None:
        """A call to one group (documents); None when it is down and partial answers are allowed."""
        try:
            return await self.shards.post(group, op, body)
        except ShardDown as d:
            self.note([d])
            return None

    def flag(self, body: dict[str, Any]) -> dict[str, Any]:
        """The answer, marked partial when the request allowed that (unmarked otherwise: as a single server's)."""
        if self.allow_partial:
            body["partial"] = bool(self.missing)
            body["missing_shards"] = [self.missing[i] for i in sorted(self.missing)]
        return body


def router_state(request: Request) -> RouterState:
    return request.app.state.service  # type: ignore[no-any-return]
