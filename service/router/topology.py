"""Where each shard of a routed index lives, and the whole index's numbering of shards and documents.

A single engine over all shards numbers shards 0..N-1 and documents by "earlier shards' documents + local
index". Shard servers report, per local shard, its number among the corpus's shards (index.json of a
`gramdex build --workers W` output: worker I holds global shards I, I+W, ...) and its document count; from
those the router rebuilds the single engine's order.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Shard:
    position: int   # the shard's number in the whole index (single engine order)
    group: int      # which shard group holds it
    local: int      # its number on that group's servers
    doc_cnt: int
    tok_cnt: int
    doc_base: int   # global index of its first document
    local_doc_base: int  # its first document's index on its servers


class Topology:
    """The global order of the shards of the groups whose servers have answered (`infos[g]` or None)."""

    def __init__(self, infos: list[dict[str, Any] | None]) -> None:
        self.known = [i for i, info in enumerate(infos) if info is not None]
        entries = []  # (global number, group, local, doc_cnt, tok_cnt)
        for g in self.known:
            for local, s in enumerate(infos[g]["shard_info"]):  # type: ignore[index]
                entries.append((s["global_shard"], g, local, s["doc_cnt"], s["tok_cnt"]))
        numbers = [e[0] for e in entries]
        per_group_increasing = all(
            [e[0] for e in entries if e[1] == g] == sorted(e[0] for e in entries if e[1] == g) for g in self.known)
        if len(set(numbers)) == len(numbers) and per_group_increasing:
            entries.sort(key=lambda e: e[0])
        # else: servers built separately (every one numbers its shards from 0): the configured group order
        local_base: dict[tuple[int, int], int] = {}
        by_group: dict[int, int] = {}
        for _, g, local, doc_cnt, _ in sorted(entries, key=lambda e: (e[1], e[2])):
            local_base[(g, local)] = by_group.get(g, 0)
            by_group[g] = by_group.get(g, 0) + doc_cnt
        shards: list[Shard] = []
        base = 0
        for pos, (_, g, local, doc_cnt, tok_cnt) in enumerate(entries):
            shards.append(Shard(pos, g, local, doc_cnt, tok_cnt, base, local_base[(g, local)]))
            base += doc_cnt
        self.shards = shards
        self.doc_cnt = base
        self.tok_cnt = sum(s.tok_cnt for s in shards)
        self._bases = [s.doc_base for s in shards]
        self._by_local = {(s.group, s.local): s for s in shards}

    def of_group(self, group: int) -> list[Shard]:
        """The group's shards in its local order."""
        return sorted((s for s in self.shards if s.group == group), key=lambda s: s.local)

    def shard(self, group: int, local: int) -> Shard:
        return self._by_local[(group, local)]

    def global_doc_ix(self, group: int, local_shard: int, local_doc_ix: int) -> int:
        s = self._by_local[(group, local_shard)]
        return s.doc_base + local_doc_ix - s.local_doc_base

    def doc_owner(self, doc_ix: int) -> tuple[Shard, int]:
        """The shard holding global document doc_ix (0 <= doc_ix < doc_cnt) and its index on the servers."""
        s = self.shards[bisect_right(self._bases, doc_ix) - 1]
        return s, s.local_doc_base + doc_ix - s.doc_base

    def in_order(self, per_group: dict[int, list[Any]]) -> list[Any]:
        """Per-local-shard lists from each group (e.g. segment_by_shard) as one list in the global order."""
        return [per_group[s.group][s.local] for s in self.shards if s.group in per_group]
