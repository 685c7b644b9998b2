"""The router's POST /v1/indexes/{index}/<query>: the service's queries, fanned out to the shard groups and
merged into the answer one server over all shards gives (same bodies; `allow_partial` added)."""

from __future__ import annotations

import time
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse
from pydantic import Field

from native.results import Document
from service import inputs
from service.api_route import api_router
from service.documents import document, needles_of
from service.errors import Problem
from service.limits import Deadline, check_max
from service.router.merge import (
    add_counts,
    draw_ranks,
    first_locations,
    locate_rank,
    maximal_spans,
    merge_cnf,
    sampling_unit,
)
from service.router.state import Fanout, RemoteIndex, router_state
from service.router.topology import Shard
from service.schemas import (
    AttributeRequest,
    CountRequest,
    FindRequest,
    NtdRequest,
    ProbRequest,
    ScoreRequest,
    SearchRequest,
)

router = api_router(prefix="/v1/indexes/{index}", tags=["queries"])
PARTIAL = Field(default=False, description="router: answer from the shard groups that are up, flagged partial, "
                                           "instead of 503 when one is down")


class RCount(CountRequest):
    allow_partial: bool = PARTIAL


class RFind(FindRequest):
    allow_partial: bool = PARTIAL


class RProb(ProbRequest):
    allow_partial: bool = PARTIAL


class RNtd(NtdRequest):
    allow_partial: bool = PARTIAL


class RSearch(SearchRequest):
    allow_partial: bool = PARTIAL


class RAttribute(AttributeRequest):
    allow_partial: bool = PARTIAL


class RScore(ScoreRequest):
    allow_partial: bool = PARTIAL


class Timer:
    def __init__(self) -> None:
        self.start = time.perf_counter()

    def ms(self) -> float:
        return (time.perf_counter() - self.start) * 1000


async def _open(request: Request, index: str, allow_partial: bool) -> tuple[Fanout, RemoteIndex, Timer]:
    timer = Timer()
    f = await router_state(request).fanout(index, allow_partial)
    return f, f.ix, timer


def _cnf_params(request: Request, body: CountRequest) -> tuple[int, int]:
    lim = router_state(request).limits
    check_max("max_clause_freq", body.max_clause_freq, lim.max_clause_freq)
    check_max("max_diff_tokens", body.max_diff_tokens, lim.max_diff_tokens)
    return body.max_clause_freq or 50_000, body.max_diff_tokens or 100


async def _counts(f: Fanout, queries: list[list[int]], deadline: Deadline | None = None) -> list[int]:
    body: dict[str, Any] = {"queries": queries}
    if deadline is not None:
        body["timeout_ms"] = deadline.remaining_ms()
    answers = await f.fan("count", body)
    return [sum(a["counts"][i] for a in answers.values()) for i in range(len(queries))]


async def _cnf(request: Request, f: Fanout, cnf: list[list[list[int]]], body: CountRequest, *,
               ptrs: bool) -> tuple[int, bool, list[list[int]]]:
    mcf, mdt = _cnf_params(request, body)
    deadline = Deadline(body.timeout_ms, router_state(request).limits)
    # the clause budget is split over every shard of the whole index, as one engine over all of them does
    answers = await f.fan("cnf", {"cnf": cnf, "shards_total": len(f.topology.shards), "max_clause_freq": mcf,
                                  "max_diff_tokens": mdt, "ptrs": ptrs, "timeout_ms": deadline.remaining_ms()})
    return merge_cnf(f.topology, answers, len(cnf))


def _query(request: Request, ix: RemoteIndex, body: CountRequest) -> inputs.Query:
    return inputs.query(ix, body.query, body.query_ids, router_state(request).limits, allow_cnf=True)  # type: ignore[arg-type]


@router.post("/count", summary="Occurrences of an n-gram, or of a CNF (summed over the shard groups)")
async def count(index: str, body: RCount, request: Request) -> JSONResponse:
    f, ix, timer = await _open(request, index, body.allow_partial)
    q = _query(request, ix, body)
    if q.ids is not None:
        (n,) = await _counts(f, [q.ids])
        approx = False
    else:
        n, approx, _ = await _cnf(request, f, q.cnf, body, ptrs=False)  # type: ignore[arg-type]
    return JSONResponse(f.flag({"count": n, "approx": approx, "token_ids": q.echo,
                                "tokens": inputs.tokens(ix, q.echo), "latency_ms": timer.ms()}))  # type: ignore[arg-type]


async def _segments(f: Fanout, ids: list[int]) -> list[tuple[Shard, tuple[int, int]]]:
    answers = await f.fan("find", {"ids": ids})
    return [(s, tuple(answers[s.group]["segment_by_shard"][s.local]))  # type: ignore[misc]
            for s in f.topology.shards if s.group in answers]


@router.post("/find", summary="Suffix-array ranges per shard (global shard order), or CNF match pointers")
async def find(index: str, body: RFind, request: Request) -> JSONResponse:
    f, ix, timer = await _open(request, index, body.allow_partial)
    q = _query(request, ix, body)
    out: dict[str, Any]
    if q.ids is not None:
        segs = await _segments(f, q.ids)
        out = {"count": sum(hi - lo for _, (lo, hi) in segs), "approx": False,
               "segment_by_shard": [list(r) for _, r in segs]}
    else:
        n, approx, ptrs = await _cnf(request, f, q.cnf, body, ptrs=True)  # type: ignore[arg-type]
        out = {"count": n, "approx": approx, "ptrs_by_shard": ptrs}
    return JSONResponse(f.flag({**out, "token_ids": q.echo, "tokens": inputs.tokens(ix, q.echo),  # type: ignore[arg-type]
                                "latency_ms": timer.ms()}))


async def _longest_suffix(f: Fanout, prompt: list[int]) -> int:
    """The whole index's longest occurring suffix: a string occurs somewhere iff it occurs in some shard."""
    answers = await f.fan("longest_suffix", {"ids": prompt})
    return max(a["suffix_len"] for a in answers.values())


async def _prob(request: Request, index: str, body: RProb, *, infgram: bool) -> JSONResponse:
    f, ix, timer = await _open(request, index, body.allow_partial)
    lim = router_state(request).limits
    prompt = inputs.sequence(ix, "prompt", body.prompt, body.prompt_ids, lim)  # type: ignore[arg-type]
    cont = inputs.single_token(ix, body.cont, body.cont_id, lim)  # type: ignore[arg-type]
    suffix_len = None
    used = prompt
    if infgram:
        suffix_len = await _longest_suffix(f, prompt)
        used = prompt[len(prompt) - suffix_len:]
    prompt_cnt, cont_cnt = await _counts(f, [used, [*used, cont]])
    cont_token = inputs.tokens(ix, [cont])  # type: ignore[arg-type]
    return JSONResponse(f.flag({
        "prompt_ids": prompt, "prompt_tokens": inputs.tokens(ix, prompt), "cont_id": cont,  # type: ignore[arg-type]
        "cont_token": cont_token[0] if cont_token else None, "prompt_cnt": prompt_cnt, "cont_cnt": cont_cnt,
        "prob": cont_cnt / prompt_cnt if prompt_cnt > 0 else None, "suffix_len": suffix_len,
        "latency_ms": timer.ms()}))


@router.post("/prob", summary="P(cont | prompt) by n-gram counts")
async def prob(index: str, body: RProb, request: Request) -> JSONResponse:
    return await _prob(request, index, body, infgram=False)


@router.post("/infgram/prob", summary="∞-gram P(cont | prompt) over the globally longest occurring suffix")
async def infgram_prob(index: str, body: RProb, request: Request) -> JSONResponse:
    return await _prob(request, index, body, infgram=True)


async def _ntd(request: Request, index: str, body: RNtd, *, infgram: bool) -> JSONResponse:
    f, ix, timer = await _open(request, index, body.allow_partial)
    lim = router_state(request).limits
    prompt = inputs.sequence(ix, "prompt", body.prompt, body.prompt_ids, lim)  # type: ignore[arg-type]
    check_max("max_support", body.max_support, lim.max_support)
    support = body.max_support or 1000
    deadline = Deadline(body.timeout_ms, lim)
    suffix_len = None
    used = prompt
    if infgram:
        suffix_len = await _longest_suffix(f, prompt)
        used = prompt[len(prompt) - suffix_len:]
    # two rounds: every part must sample with the unit the whole index's prompt count gives
    (prompt_cnt,) = await _counts(f, [used], deadline)
    unit = sampling_unit(prompt_cnt, support)
    answers = await f.fan("ntd", {"prompt": used, "unit": unit, "timeout_ms": deadline.remaining_ms()})
    counts = add_counts([dict((t, c) for t, c in a["counts"]) for a in answers.values()])
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    names = inputs.tokens(ix, [t for t, _ in ranked]) or [None] * len(ranked)  # type: ignore[arg-type]
    return JSONResponse(f.flag({
        "prompt_ids": prompt, "prompt_tokens": inputs.tokens(ix, prompt), "prompt_cnt": prompt_cnt,  # type: ignore[arg-type]
        "approx": unit > 1, "suffix_len": suffix_len,
        "next_tokens": [{"token_id": t, "token": name, "cont_cnt": c, "prob": c / prompt_cnt}
                        for (t, c), name in zip(ranked, names, strict=True)],
        "latency_ms": timer.ms()}))


@router.post("/ntd", summary="Next-token distribution after the prompt")
async def ntd(index: str, body: RNtd, request: Request) -> JSONResponse:
    return await _ntd(request, index, body, infgram=False)


@router.post("/infgram/ntd", summary="∞-gram next-token distribution (globally longest occurring suffix)")
async def infgram_ntd(index: str, body: RNtd, request: Request) -> JSONResponse:
    return await _ntd(request, index, body, infgram=True)


async def fetch_documents(f: Fanout, wanted: list[tuple[Shard, dict[str, int]]], max_disp_len: int
                          ) -> list[Document | None]:
    """Documents by (shard, request on its servers), in order; None for a shard whose group is down (partial)."""
    by_group: dict[int, list[int]] = {}
    for i, (s, _) in enumerate(wanted):
        by_group.setdefault(s.group, []).append(i)
    out: list[Document | None] = [None] * len(wanted)
    for g, positions in by_group.items():
        if g in f.missing:
            continue
        answer = await f.one(f.ix.groups[g], "documents",
                             {"requests": [wanted[i][1] for i in positions], "max_disp_len": max_disp_len})
        if answer is None:
            continue
        for i, d in zip(positions, answer["documents"], strict=True):
            out[i] = Document(wanted[i][0].position, f.topology.global_doc_ix(g, d["shard"], d["doc_ix"]),
                              d["doc_len"], d["disp_start"], d["disp_len"], d["needle_offset"], d["token_ids"],
                              d["metadata"])
    return out


@router.post("/documents/search", summary="Documents holding an n-gram or a CNF, drawn as one server would draw")
async def search(index: str, body: RSearch, request: Request) -> JSONResponse:
    f, ix, timer = await _open(request, index, body.allow_partial)
    lim = router_state(request).limits
    q = _query(request, ix, body)
    check_max("maxnum", body.maxnum, lim.max_maxnum)
    check_max("max_disp_len", body.max_disp_len, lim.max_disp_len)
    maxnum, disp = body.maxnum or 1, body.max_disp_len or 1000
    cnt, approx, idxs = 0, False, []
    wanted: list[tuple[Shard, dict[str, int]]] = []
    if q.ids is not None:
        segs = await _segments(f, q.ids)
        cnt = sum(hi - lo for _, (lo, hi) in segs)
        if cnt:
            # the same draws as one engine: global match indexes, then the shard holding each
            idxs = draw_ranks(body.seed, cnt, maxnum)
            for idx in idxs:
                pos, rank = locate_rank(segs, idx)  # type: ignore[arg-type]
                s = segs[pos][0]
                wanted.append((s, {"shard": s.local, "rank": rank}))
    else:
        cnt, approx, ptrs = await _cnf(request, f, q.cnf, body, ptrs=True)  # type: ignore[arg-type]
        live = [s for s in f.topology.shards if s.group not in f.missing]
        flat = [(s, p) for s, shard_ptrs in zip(live, ptrs, strict=False) for p in shard_ptrs]
        if cnt == 0 or not flat:
            cnt, approx = 0, False
        else:
            picks = draw_ranks(body.seed, len(flat), maxnum)
            idxs = [int(i / len(flat) * cnt) for i in picks]
            wanted = [(flat[i][0], {"shard": flat[i][0].local, "ptr": flat[i][1]}) for i in picks]
    docs = await fetch_documents(f, wanted, disp)
    needles = needles_of(q.ids, q.cnf)
    return JSONResponse(f.flag({
        "count": cnt, "approx": approx, "idxs": idxs,
        "documents": [document(ix, d, needles) for d in docs if d is not None],  # type: ignore[arg-type]
        "token_ids": q.echo, "tokens": inputs.tokens(ix, q.echo), "latency_ms": timer.ms()}))  # type: ignore[arg-type]


@router.post("/attribute", summary="Maximal spans occurring verbatim anywhere in the index, with locations")
async def attribute(index: str, body: RAttribute, request: Request) -> JSONResponse:
    f, ix, timer = await _open(request, index, body.allow_partial)
    lim = router_state(request).limits
    ids = inputs.sequence(ix, "query", body.query, body.query_ids, lim)  # type: ignore[arg-type]
    check_max("max_locations", body.max_locations, lim.max_locations)
    max_loc = 10 if body.max_locations is None else body.max_locations
    deadline = Deadline(body.timeout_ms, lim)
    # round 1: per start, the longest prefix occurring on each group; the whole index's is the longest of them
    answers = await f.fan("prefixes", {"ids": ids, "timeout_ms": deadline.remaining_ms()})
    ends = [max(a["ends"][i] for a in answers.values()) for i in range(len(ids))]
    spans = maximal_spans(ends, body.min_len)
    out = []
    if spans:
        # round 2: counts and first locations of the kept spans on every group
        located = await f.fan("locate", {"queries": [ids[s:e] for s, e in spans], "max_locations": max_loc,
                                         "timeout_ms": deadline.remaining_ms()})
        for k, (start, end) in enumerate(spans):
            locs = first_locations(f.topology, {g: a["results"][k]["locations"] for g, a in located.items()},
                                   max_loc)
            out.append({"start": start, "end": end, "count": sum(a["results"][k]["count"] for a in located.values()),
                        "locations": [{"shard": s, "ptr": p, "doc_ix": d} for s, p, d in locs],
                        "text": ix.codec.decode(ids[start:end]) if ix.codec else None})
    return JSONResponse(f.flag({"spans": out, "token_ids": ids, "tokens": inputs.tokens(ix, ids),  # type: ignore[arg-type]
                                "latency_ms": timer.ms()}))


@router.post("/score", summary="∞-gram probability of every token given all the tokens before it")
async def score(index: str, body: RScore, request: Request) -> JSONResponse:
    f, ix, timer = await _open(request, index, body.allow_partial)
    lim = router_state(request).limits
    ids = inputs.sequence(ix, "query", body.query, body.query_ids, lim)  # type: ignore[arg-type]
    deadline = Deadline(body.timeout_ms, lim)
    # round 1: each position's longest occurring context on each group; round 2: its counts everywhere
    answers = await f.fan("score", {"ids": ids, "timeout_ms": deadline.remaining_ms()})
    lens = [max(a["suffix_lens"][i] for a in answers.values()) for i in range(len(ids))]
    wanted: dict[tuple[int, int], int] = {}  # (start, end) of ids -> query number
    for i, m in enumerate(lens):
        wanted.setdefault((i - m, i), len(wanted))
        wanted.setdefault((i - m, i + 1), len(wanted))
    if len(wanted) > 4096:
        raise Problem("query-too-large", "query: too many tokens for a routed score", field="query")
    counts = await _counts(f, [ids[s:e] for s, e in wanted], deadline) if wanted else []
    names = inputs.tokens(ix, ids) or [None] * len(ids)  # type: ignore[arg-type]
    scores = []
    for i, (t, name, m) in enumerate(zip(ids, names, lens, strict=True)):
        p, c = counts[wanted[(i - m, i)]], counts[wanted[(i - m, i + 1)]]
        scores.append({"token_id": t, "token": name, "suffix_len": m, "prompt_cnt": p, "cont_cnt": c,
                       "prob": c / p if p else 0.0})
    return JSONResponse(f.flag({"scores": scores, "token_ids": ids, "tokens": inputs.tokens(ix, ids),  # type: ignore[arg-type]
                                "latency_ms": timer.ms()}))
