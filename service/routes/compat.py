"""POST /: the JSON body of infini-gram's public API, answered with its field names (and real status codes).

Errors are problem+json with an extra `error` member, so clients that test `'error' in result` keep working.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from service import inputs
from service.api_route import api_router
from service.documents import compat_document, needles_of
from service.errors import Problem
from service.limits import Deadline, check_max
from service.registry import LoadedIndex
from service.state import ServiceState, state

router = api_router(tags=["infini-gram compatible"])
QUERY_TYPES = ("count", "prob", "ntd", "infgram_prob", "infgram_ntd", "search_docs", "find")


class CompatRequest(BaseModel):
    # infini-gram clients send bookkeeping fields of their own (engine, source, timestamp): accept them
    model_config = ConfigDict(extra="allow", json_schema_extra={"examples": [
        {"index": "demo", "query_type": "count", "query": "the cat"},
        {"index": "demo", "query_type": "ntd", "query_ids": [259, 318], "max_support": 100},
        {"index": "demo", "query_type": "search_docs", "query": "cat AND mat", "maxnum": 1, "max_disp_len": 10}]})
    index: str | None = Field(default=None, description="index name (`corpus` is the old name)")
    corpus: str | None = None
    query_type: str = Field(description=", ".join(QUERY_TYPES))
    query: str | None = None
    query_ids: list[int] | list[list[list[int]]] | None = None
    max_support: int | None = Field(default=None, gt=0)
    maxnum: int | None = Field(default=None, gt=0)
    max_disp_len: int | None = Field(default=None, gt=0)
    max_clause_freq: int | None = Field(default=None, gt=0)
    max_diff_tokens: int | None = Field(default=None, gt=0)
    timeout_ms: float | None = Field(default=None, gt=0)


@router.post("/", summary="infini-gram API compatible query",
             responses={200: {"content": {"application/json": {"example": {
                 "count": 120, "approx": False, "latency": 0.02, "token_ids": [259, 318],
                 "tokens": ["Ġthe", "Ġcat"]}}}}})
async def compat(body: CompatRequest, request: Request) -> JSONResponse:
    svc = state(request)
    name = body.index if body.index is not None else body.corpus
    if name is None:
        raise Problem("validation-error", "index: missing required field", field="index")
    ix = svc.registry.get(name)
    if body.query_type not in QUERY_TYPES:
        raise Problem("invalid-query", f"invalid query_type {body.query_type!r}; one of {', '.join(QUERY_TYPES)}",
                      field="query_type")
    cnf_ok = body.query_type in ("count", "search_docs", "find")
    q = inputs.query(ix, body.query, body.query_ids, svc.limits, allow_cnf=cnf_ok)
    result, ms = await _run(svc, ix, body, q)
    result.update(latency=ms, token_ids=q.echo, tokens=inputs.tokens(ix, q.echo))
    return JSONResponse(result)


async def _run(svc: ServiceState, ix: LoadedIndex, body: CompatRequest,
               q: inputs.Query) -> tuple[dict[str, Any], float]:
    e, lim, name, qt = ix.engine, svc.limits, ix.name, body.query_type
    deadline = Deadline(body.timeout_ms, lim)
    mcf, mdt = body.max_clause_freq or 50_000, body.max_diff_tokens or 100
    check_max("max_clause_freq", body.max_clause_freq, lim.max_clause_freq)
    check_max("max_diff_tokens", body.max_diff_tokens, lim.max_diff_tokens)
    fast, slow = svc.pools.fast, svc.pools.slow
    if q.cnf is not None:
        cnf = q.cnf
        if qt == "count":
            r, ms = await svc.call(slow, "count_cnf", name, lambda: e.count_cnf(cnf, mcf, mdt, deadline.remaining_ms()))
            return {"count": r.count, "approx": r.approx}, ms
        if qt == "find":
            f, ms = await svc.call(slow, "find_cnf", name, lambda: e.find_cnf(cnf, mcf, mdt, deadline.remaining_ms()))
            return {"cnt": f.cnt, "approx": f.approx, "ptrs_by_shard": f.ptrs_by_shard}, ms
        return await _search(svc, ix, body, q)
    ids = q.ids or []
    if qt == "count":
        n, ms = await svc.call(fast, "count", name, lambda: e.count(ids))
        return {"count": n, "approx": False}, ms
    if qt == "find":
        f, ms = await svc.call(fast, "find", name, lambda: e.find(ids))
        return {"cnt": f.cnt, "segment_by_shard": [list(s) for s in f.segment_by_shard]}, ms
    if qt in ("prob", "infgram_prob"):
        if not ids:
            raise Problem("invalid-query", "prob needs a non-empty query (the last token is the continuation)",
                          field="query")
        fn = e.prob if qt == "prob" else e.infgram_prob
        r, ms = await svc.call(fast, qt, name, lambda: fn(ids[:-1], ids[-1]))
        out: dict[str, Any] = {"prompt_cnt": r.prompt_cnt, "cont_cnt": r.cont_cnt, "prob": r.prob}
        if r.suffix_len is not None:
            prompt = ids[:-1]
            out.update(suffix_len=r.suffix_len, longest_suffix=_decode(ix, prompt[len(prompt) - r.suffix_len:]))
        return out, ms
    if qt in ("ntd", "infgram_ntd"):
        check_max("max_support", body.max_support, lim.max_support)
        support = body.max_support or 1000
        ntd_fn = e.ntd if qt == "ntd" else e.infgram_ntd
        n_r, ms = await svc.call(slow, qt, name, lambda: ntd_fn(ids, support, deadline.remaining_ms()))
        out = {"prompt_cnt": n_r.prompt_cnt, "approx": n_r.approx, "result_by_token_id": {
            t: {"cont_cnt": c, "prob": c / n_r.prompt_cnt, "token": _decode(ix, [t])} for t, c in n_r.counts.items()}}
        if n_r.suffix_len is not None:
            out.update(suffix_len=n_r.suffix_len, longest_suffix=_decode(ix, ids[len(ids) - n_r.suffix_len:]))
        return out, ms
    return await _search(svc, ix, body, q)


async def _search(svc: ServiceState, ix: LoadedIndex, body: CompatRequest,
                  q: inputs.Query) -> tuple[dict[str, Any], float]:
    e, lim, name = ix.engine, svc.limits, ix.name
    if body.query_type != "search_docs":
        raise Problem("invalid-query", f"{body.query_type} does not take a CNF query", field="query")
    check_max("maxnum", body.maxnum, lim.max_maxnum)
    check_max("max_disp_len", body.max_disp_len, lim.max_disp_len)
    maxnum, disp = body.maxnum or 1, body.max_disp_len or 1000
    mcf, mdt = body.max_clause_freq or 50_000, body.max_diff_tokens or 100
    deadline = Deadline(body.timeout_ms, lim)
    if q.cnf is not None:
        cnf = q.cnf
        r, ms = await svc.call(svc.pools.slow, "search_docs_cnf", name,
                              lambda: e.search_docs_cnf(cnf, maxnum, disp, mcf, mdt, 0, deadline.remaining_ms()))
    else:
        ids = q.ids or []
        r, ms = await svc.call(svc.pools.fast, "search_docs", name, lambda: e.search_docs(ids, maxnum, disp))
    needles = needles_of(q.ids, q.cnf)
    message = "0 occurrences found" if r.cnt == 0 else (
        f"{'Approximately ' if r.approx else ''}{r.cnt} occurrences found. "
        f"Displaying the documents of occurrences #{r.idxs}")
    return {"cnt": r.cnt, "approx": r.approx, "idxs": r.idxs, "message": message,
            "documents": [compat_document(ix, d, needles) for d in r.documents]}, ms


def _decode(ix: LoadedIndex, ids: list[int]) -> str:
    return ix.codec.decode(ids) if ix.codec is not None else ""
