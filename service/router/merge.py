"""Exact merges of shard servers' parts into the answer one engine over all shards gives (see
/work/shared/reference/infini-gram-semantics.md, "Multi-shard")."""

from __future__ import annotations

import random
from typing import Any

from service.router.topology import Topology


def sampling_unit(total_cnt: int, max_support: int) -> int:
    """ntd's unit for the whole index: the smallest power of two with total_cnt <= unit * max_support."""
    unit = 1
    while total_cnt > unit * max_support:
        unit *= 2
    return unit


def add_counts(parts: list[dict[int, int]]) -> dict[int, int]:
    merged: dict[int, int] = {}
    for part in parts:
        for tok, cnt in part.items():
            merged[tok] = merged.get(tok, 0) + cnt
    return merged


def merge_cnf(topology: Topology, answers: dict[int, dict[str, Any]], n_clauses: int
              ) -> tuple[int, bool, list[list[int]]]:
    """(count, approx, ptrs by global shard). A clause absent from every shard: no match anywhere (a part cannot
    know that alone, so it went on with the other clauses)."""
    totals = [sum(a["clause_counts"][c] for a in answers.values()) for c in range(n_clauses)]
    if 0 in totals:
        return 0, False, []
    cnt = sum(a["cnt"] for a in answers.values())
    approx = any(a["approx"] for a in answers.values())
    ptrs = topology.in_order({g: a["ptrs_by_shard"] for g, a in answers.items()}) \
        if all(a["ptrs_by_shard"] is not None for a in answers.values()) else []
    return cnt, approx, ptrs


def draw_ranks(seed: int, total: int, maxnum: int) -> list[int]:
    """The global match indexes a single engine draws for a seed (random.Random(seed).randrange, in order)."""
    rng = random.Random(seed)
    return [rng.randrange(total) for _ in range(maxnum)]


def draw_picks(seed: int, n: int, maxnum: int) -> list[int]:
    return draw_ranks(seed, n, maxnum)


def locate_rank(segments: list[tuple[int, list[int]]], idx: int) -> tuple[int, int]:
    """Global match index -> (position in `segments`, rank), walking shards in the global order."""
    at = idx
    for pos, (_, (lo, hi)) in enumerate(segments):  # type: ignore[misc]
        if at < hi - lo:
            return pos, lo + at
        at -= hi - lo
    raise ValueError(f"match index {idx} is past the matches")


def maximal_spans(ends: list[int], min_len: int) -> list[tuple[int, int]]:
    """Attribution's maximal spans from the longest occurring prefix end of every start (as the engine keeps
    them: a span whose end goes past the last kept one, at least min_len long, non-empty)."""
    spans = []
    last_end = 0
    for start, end in enumerate(ends):
        if end > last_end and end - start >= min_len and end > start:
            spans.append((start, end))
            last_end = end
    return spans


def first_locations(topology: Topology, per_group: dict[int, list[list[int]]], limit: int) -> list[list[int]]:
    """The first `limit` occurrences in the global shard order (then rank order), as [position, ptr, doc_ix].

    Every group listed its first `limit` in its local order, which follows the global order, so the global
    first `limit` are among them."""
    by_shard: dict[tuple[int, int], list[list[int]]] = {}
    for g, locs in per_group.items():
        for local, ptr, doc_ix in locs:
            by_shard.setdefault((g, local), []).append([ptr, topology.global_doc_ix(g, local, doc_ix)])
    out: list[list[int]] = []
    for s in topology.shards:
        for ptr, doc_ix in by_shard.get((s.group, s.local), []):
            if len(out) == limit:
                return out
            out.append([s.position, ptr, doc_ix])
    return out
