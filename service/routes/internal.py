"""POST /v1/internal/indexes/{index}/...: what a router needs from a shard server to merge exact answers.

Token ids only (the router tokenizes), local shard numbers and local document indexes (the router maps them to
the whole index's), no rendering. Not in the public contract (include_in_schema=False): these are for
`gramdex serve --router`, and they change with it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response
from pydantic import Field, model_validator

from native.results import Document
from service.api_route import api_router
from service.errors import Problem
from service.limits import Deadline, check_cnf, check_max, check_tokens
from service.registry import LoadedIndex
from service.schemas import Cnf, Ids, Strict, Timeout
from service.state import ServiceState, state

router = api_router(prefix="/v1/internal/indexes/{index}", include_in_schema=False)
MAX_BATCH = 4096  # queries per batched call (score asks two per token)


class CountsIn(Strict):
    queries: Annotated[list[Ids], Field(max_length=MAX_BATCH)]
    timeout_ms: Timeout = None


class IdsIn(Strict):
    ids: Ids
    timeout_ms: Timeout = None


class NtdIn(Strict):
    prompt: Ids
    unit: int = Field(gt=0, description="sampling unit fixed by the whole index's prompt count")
    timeout_ms: Timeout = None


class CnfIn(Strict):
    cnf: Cnf
    shards_total: int = Field(gt=0)
    max_clause_freq: int = Field(gt=0)
    max_diff_tokens: int = Field(gt=0)
    ptrs: bool = True
    timeout_ms: Timeout = None


class DocRequest(Strict):
    shard: int | None = Field(default=None, ge=0)
    rank: int | None = Field(default=None, ge=0)
    ptr: int | None = Field(default=None, ge=0)
    doc_ix: int | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _one_kind(self) -> DocRequest:
        kinds = (self.shard is not None and (self.rank is None) != (self.ptr is None),
                 self.doc_ix is not None and self.shard is None)
        if sum(kinds) != 1:
            raise ValueError("give shard with rank or ptr, or doc_ix")
        return self


class DocsIn(Strict):
    requests: Annotated[list[DocRequest], Field(max_length=1000)]
    max_disp_len: int = Field(gt=0)


class LocateIn(Strict):
    queries: Annotated[list[Ids], Field(max_length=MAX_BATCH)]
    max_locations: int = Field(ge=0)
    timeout_ms: Timeout = None


def _index(request: Request, index: str) -> tuple[ServiceState, LoadedIndex]:
    svc = state(request)
    return svc, svc.registry.get(index)


def _check_batch(svc: ServiceState, queries: list[list[int]]) -> None:
    for q in queries:
        check_tokens("queries", q, svc.limits)


def _global_shards(ix: LoadedIndex) -> list[int]:
    """Each local shard's number among all shards of the corpus (index.json of a `--workers` build), so a router
    can order shards held by different servers as one engine over all of them would."""
    e = ix.engine
    m = e.manifest
    if m is not None and len(m.shards) == e.num_shards and len(e.index_dirs) == 1:
        return [s.global_shard for s in m.shards]
    return list(range(e.num_shards))


def tokenizer_path(ix: LoadedIndex) -> Path | None:
    """The file the server's codec was loaded from (as registry.open_index chose it)."""
    if ix.settings.tokenizer is not None:
        return Path(ix.settings.tokenizer)
    m = ix.engine.manifest
    if m is not None and m.tokenizer_file:
        return Path(ix.settings.path) / m.tokenizer_file
    return None


@router.get("")
async def info(request: Request, index: str) -> JSONResponse:
    _, ix = _index(request, index)
    e = ix.engine
    path = tokenizer_path(ix)
    return JSONResponse({**ix.describe(), "max_token_id": e.max_token_id,
                         "shard_info": [{"global_shard": g, "doc_cnt": s.doc_cnt, "tok_cnt": s.tok_cnt}
                                        for g, s in zip(_global_shards(ix), e.shards, strict=True)],
                         "codec": "hf" if path is not None else ("bytes" if ix.codec is not None else None),
                         "tokenizer_file": path.name if path is not None else None,
                         "add_prefix_space": getattr(ix.codec, "add_prefix_space", None)})


@router.get("/tokenizer")
async def tokenizer(request: Request, index: str) -> Response:
    _, ix = _index(request, index)
    path = tokenizer_path(ix)
    if path is None:
        raise Problem("text-unsupported", f"index {index!r} has no tokenizer file", field="index")
    return Response(path.read_bytes(), media_type="application/octet-stream")


@router.post("/count")
async def count(request: Request, index: str, body: CountsIn) -> JSONResponse:
    svc, ix = _index(request, index)
    _check_batch(svc, body.queries)
    deadline = Deadline(body.timeout_ms, svc.limits)
    counts, ms = await svc.call(svc.pools.fast, "part_count", index,
                                lambda: ix.engine.count_many(body.queries, deadline.remaining_ms()))
    return JSONResponse({"counts": counts, "latency_ms": ms})


@router.post("/find")
async def find(request: Request, index: str, body: IdsIn) -> JSONResponse:
    svc, ix = _index(request, index)
    check_tokens("ids", body.ids, svc.limits)
    f, ms = await svc.call(svc.pools.fast, "part_find", index, lambda: ix.engine.find(body.ids))
    return JSONResponse({"cnt": f.cnt, "segment_by_shard": [list(s) for s in f.segment_by_shard], "latency_ms": ms})


@router.post("/longest_suffix")
async def longest_suffix(request: Request, index: str, body: IdsIn) -> JSONResponse:
    svc, ix = _index(request, index)
    check_tokens("ids", body.ids, svc.limits)
    n, ms = await svc.call(svc.pools.fast, "part_suffix", index, lambda: ix.engine.longest_suffix(body.ids))
    return JSONResponse({"suffix_len": n, "latency_ms": ms})


@router.post("/ntd")
async def ntd(request: Request, index: str, body: NtdIn) -> JSONResponse:
    svc, ix = _index(request, index)
    check_tokens("prompt", body.prompt, svc.limits)
    if body.unit & (body.unit - 1):
        raise Problem("invalid-query", "unit must be a power of two", field="unit")
    deadline = Deadline(body.timeout_ms, svc.limits)
    r, ms = await svc.call(svc.pools.slow, "part_ntd", index,
                           lambda: ix.engine.ntd_with_unit(body.prompt, body.unit, deadline.remaining_ms()))
    return JSONResponse({"prompt_cnt": r.prompt_cnt, "approx": r.approx, "counts": list(r.counts.items()),
                         "latency_ms": ms})


@router.post("/cnf")
async def cnf(request: Request, index: str, body: CnfIn) -> JSONResponse:
    svc, ix = _index(request, index)
    check_cnf("cnf", body.cnf, svc.limits)
    check_max("max_clause_freq", body.max_clause_freq, svc.limits.max_clause_freq)
    check_max("max_diff_tokens", body.max_diff_tokens, svc.limits.max_diff_tokens)
    deadline = Deadline(body.timeout_ms, svc.limits)
    (r, totals), ms = await svc.call(
        svc.pools.slow, "part_cnf", index,
        lambda: ix.engine.find_cnf_part(body.cnf, body.shards_total, body.max_clause_freq, body.max_diff_tokens,
                                        deadline.remaining_ms()))
    return JSONResponse({"cnt": r.cnt, "approx": r.approx, "clause_counts": totals,
                         "ptrs_by_shard": r.ptrs_by_shard if body.ptrs else None, "latency_ms": ms})


def _doc_out(d: Document) -> dict[str, Any]:
    return {"shard": d.shard, "doc_ix": d.doc_ix, "doc_len": d.doc_len, "disp_start": d.disp_start,
            "disp_len": d.disp_len, "needle_offset": d.needle_offset, "token_ids": d.token_ids,
            "metadata": d.metadata}


@router.post("/documents")
async def documents(request: Request, index: str, body: DocsIn) -> JSONResponse:
    svc, ix = _index(request, index)
    check_max("max_disp_len", body.max_disp_len, svc.limits.max_disp_len)
    e = ix.engine

    def run() -> list[dict[str, Any]]:
        out = []
        for q in body.requests:
            if q.doc_ix is not None:
                d = e.get_doc_by_ix(q.doc_ix, body.max_disp_len)
            elif q.rank is not None:
                d = e.get_doc_by_rank(q.shard, q.rank, body.max_disp_len)  # type: ignore[arg-type]
            else:
                d = e.get_doc_by_ptr(q.shard, q.ptr, body.max_disp_len)  # type: ignore[arg-type]
            out.append(_doc_out(d))
        return out

    docs, ms = await svc.call(svc.pools.fast, "part_documents", index, run)
    return JSONResponse({"documents": docs, "latency_ms": ms})


@router.post("/prefixes")
async def prefixes(request: Request, index: str, body: IdsIn) -> JSONResponse:
    """For every start l, the end of the longest prefix of ids[l:] that occurs here (l when none does)."""
    svc, ix = _index(request, index)
    check_tokens("ids", body.ids, svc.limits)
    deadline = Deadline(body.timeout_ms, svc.limits)
    spans, ms = await svc.call(svc.pools.slow, "part_prefixes", index,
                               lambda: ix.engine.attribute(body.ids, 0, 0, deadline.remaining_ms(), maximal=False))
    ends = list(range(len(body.ids)))
    for sp in spans:
        ends[sp.start] = sp.end
    return JSONResponse({"ends": ends, "latency_ms": ms})


@router.post("/locate")
async def locate(request: Request, index: str, body: LocateIn) -> JSONResponse:
    """Count and the first max_locations occurrences (local shard order, then rank order) of each n-gram, as
    attribution lists them."""
    svc, ix = _index(request, index)
    _check_batch(svc, body.queries)
    check_max("max_locations", body.max_locations, svc.limits.max_locations)
    deadline = Deadline(body.timeout_ms, svc.limits)
    e = ix.engine

    def run() -> list[dict[str, Any]]:
        out = []
        for q in body.queries:
            deadline.remaining_ms()
            f = e.find(q)
            locs: list[list[int]] = []
            for s, (lo, hi) in enumerate(f.segment_by_shard):
                for rank in range(lo, min(hi, lo + body.max_locations - len(locs))):
                    ptr = e.rank_to_ptr(s, rank)
                    locs.append([s, ptr, e.get_doc_by_ptr(s, ptr, 1).doc_ix])
            out.append({"count": f.cnt, "locations": locs})
        return out

    results, ms = await svc.call(svc.pools.slow, "part_locate", index, run)
    return JSONResponse({"results": results, "latency_ms": ms})


@router.post("/score")
async def score(request: Request, index: str, body: IdsIn) -> JSONResponse:
    """The longest occurring suffix of ids[:i] here, for every i."""
    svc, ix = _index(request, index)
    check_tokens("ids", body.ids, svc.limits)
    deadline = Deadline(body.timeout_ms, svc.limits)
    scores, ms = await svc.call(svc.pools.slow, "part_score", index,
                                lambda: ix.engine.score(body.ids, deadline.remaining_ms()))
    return JSONResponse({"suffix_lens": [s.suffix_len for s in scores], "latency_ms": ms})
