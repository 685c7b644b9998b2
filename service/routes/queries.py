"""POST /v1/indexes/{index}/<query>: n-gram counts, probabilities, next tokens, ∞-gram, search, attribution."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse

from service import inputs
from service.api_route import api_router
from service.documents import document, needles_of
from service.examples import example_responses
from service.limits import Deadline, check_max
from service.schemas import (
    AttributeRequest,
    AttributeResponse,
    CountRequest,
    CountResponse,
    FindRequest,
    FindResponse,
    NtdRequest,
    NtdResponse,
    ProbRequest,
    ProbResponse,
    ScoreRequest,
    ScoreResponse,
    SearchRequest,
    SearchResponse,
)
from service.state import state

router = api_router(prefix="/v1/indexes/{index}", tags=["queries"])


def _ok(body: dict[str, Any]) -> JSONResponse:
    return JSONResponse(body)


def _cnf_params(svc: Any, body: CountRequest) -> tuple[int, int]:
    lim = svc.limits
    check_max("max_clause_freq", body.max_clause_freq, lim.max_clause_freq)
    check_max("max_diff_tokens", body.max_diff_tokens, lim.max_diff_tokens)
    return body.max_clause_freq or 50_000, body.max_diff_tokens or 100


@router.post("/count", response_model=CountResponse, responses=example_responses("count"),
             summary="Occurrences of an n-gram, or of a CNF (AND of ORs within max_diff_tokens)")
async def count(index: str, body: CountRequest, request: Request) -> JSONResponse:
    svc = state(request)
    ix = svc.registry.get(index)
    q = inputs.query(ix, body.query, body.query_ids, svc.limits, allow_cnf=True)
    if q.ids is not None:
        ids = q.ids
        n, ms = await svc.call(svc.pools.fast, "count", index, ix.engine.count_call(ids))
        return _ok({"count": n, "approx": False, "token_ids": ids, "tokens": inputs.tokens(ix, ids),
                    "latency_ms": ms})
    mcf, mdt = _cnf_params(svc, body)
    deadline = Deadline(body.timeout_ms, svc.limits)
    cnf = q.cnf
    r, ms = await svc.call(svc.pools.slow, "count_cnf", index,
                           lambda: ix.engine.count_cnf(cnf, mcf, mdt, deadline.remaining_ms()))
    return _ok({"count": r.count, "approx": r.approx, "token_ids": cnf, "tokens": inputs.tokens(ix, cnf),
                "latency_ms": ms})


@router.post("/find", response_model=FindResponse, responses=example_responses("find"),
             summary="Suffix-array ranges of an n-gram per shard, or match pointers of a CNF")
async def find(index: str, body: FindRequest, request: Request) -> JSONResponse:
    svc = state(request)
    ix = svc.registry.get(index)
    q = inputs.query(ix, body.query, body.query_ids, svc.limits, allow_cnf=True)
    out: dict[str, Any]
    if q.ids is not None:
        ids = q.ids
        f, ms = await svc.call(svc.pools.fast, "find", index, ix.engine.find_call(ids))
        out = {"count": f.cnt, "approx": False, "segment_by_shard": [list(s) for s in f.segment_by_shard]}
    else:
        mcf, mdt = _cnf_params(svc, body)
        deadline = Deadline(body.timeout_ms, svc.limits)
        cnf = q.cnf
        r, ms = await svc.call(svc.pools.slow, "find_cnf", index,
                               lambda: ix.engine.find_cnf(cnf, mcf, mdt, deadline.remaining_ms()))
        out = {"count": r.cnt, "approx": r.approx, "ptrs_by_shard": r.ptrs_by_shard}
    return _ok({**out, "token_ids": q.echo, "tokens": inputs.tokens(ix, q.echo), "latency_ms": ms})


async def _prob(request: Request, index: str, body: ProbRequest, *, infgram: bool) -> JSONResponse:
    svc = state(request)
    ix = svc.registry.get(index)
    prompt = inputs.sequence(ix, "prompt", body.prompt, body.prompt_ids, svc.limits)
    cont = inputs.single_token(ix, body.cont, body.cont_id, svc.limits)
    call = ix.engine.infgram_prob_call(prompt, cont) if infgram else ix.engine.prob_call(prompt, cont)
    r, ms = await svc.call(svc.pools.fast, "infgram_prob" if infgram else "prob", index, call)
    cont_token = inputs.tokens(ix, [cont])
    return _ok({"prompt_ids": prompt, "prompt_tokens": inputs.tokens(ix, prompt), "cont_id": cont,
                "cont_token": cont_token[0] if cont_token else None, "prompt_cnt": r.prompt_cnt,
                "cont_cnt": r.cont_cnt, "prob": r.prob if r.prompt_cnt > 0 else None, "suffix_len": r.suffix_len,
                "latency_ms": ms})


@router.post("/prob", response_model=ProbResponse, responses=example_responses("prob"),
             summary="P(cont | prompt) by n-gram counts")
async def prob(index: str, body: ProbRequest, request: Request) -> JSONResponse:
    return await _prob(request, index, body, infgram=False)


@router.post("/infgram/prob", response_model=ProbResponse, responses=example_responses("infgram_prob"),
             summary="∞-gram P(cont | prompt): backs off to the longest suffix of the prompt that occurs")
async def infgram_prob(index: str, body: ProbRequest, request: Request) -> JSONResponse:
    return await _prob(request, index, body, infgram=True)


async def _ntd(request: Request, index: str, body: NtdRequest, *, infgram: bool) -> JSONResponse:
    svc = state(request)
    ix = svc.registry.get(index)
    prompt = inputs.sequence(ix, "prompt", body.prompt, body.prompt_ids, svc.limits)
    check_max("max_support", body.max_support, svc.limits.max_support)
    support = body.max_support or 1000
    deadline = Deadline(body.timeout_ms, svc.limits)
    make = ix.engine.infgram_ntd_call if infgram else ix.engine.ntd_call
    cheap = not infgram and support <= svc.settings.concurrency.fast_ntd_max_support
    r, ms = await svc.call(svc.pools.fast if cheap else svc.pools.slow, "infgram_ntd" if infgram else "ntd", index,
                           make(prompt, support, deadline.remaining_ms()))
    ranked = sorted(r.counts.items(), key=lambda kv: (-kv[1], kv[0]))
    names = inputs.tokens(ix, [t for t, _ in ranked]) or [None] * len(ranked)
    return _ok({"prompt_ids": prompt, "prompt_tokens": inputs.tokens(ix, prompt), "prompt_cnt": r.prompt_cnt,
                "approx": r.approx, "suffix_len": r.suffix_len,
                "next_tokens": [{"token_id": t, "token": name, "cont_cnt": c, "prob": c / r.prompt_cnt}
                                for (t, c), name in zip(ranked, names, strict=True)],
                "latency_ms": ms})


@router.post("/ntd", response_model=NtdResponse, responses=example_responses("ntd"),
             summary="Next-token distribution after the prompt")
async def ntd(index: str, body: NtdRequest, request: Request) -> JSONResponse:
    return await _ntd(request, index, body, infgram=False)


@router.post("/infgram/ntd", response_model=NtdResponse, responses=example_responses("infgram_ntd"),
             summary="∞-gram next-token distribution (longest occurring suffix of the prompt)")
async def infgram_ntd(index: str, body: NtdRequest, request: Request) -> JSONResponse:
    return await _ntd(request, index, body, infgram=True)


@router.post("/documents/search", response_model=SearchResponse, responses=example_responses("search"),
             summary="Documents holding an n-gram or a CNF, drawn at random, with the matches marked")
async def search(index: str, body: SearchRequest, request: Request) -> JSONResponse:
    svc = state(request)
    ix = svc.registry.get(index)
    lim = svc.limits
    q = inputs.query(ix, body.query, body.query_ids, lim, allow_cnf=True)
    check_max("maxnum", body.maxnum, lim.max_maxnum)
    check_max("max_disp_len", body.max_disp_len, lim.max_disp_len)
    maxnum, disp = body.maxnum or 1, body.max_disp_len or 1000
    if q.ids is not None:
        ids = q.ids
        r, ms = await svc.call(svc.pools.fast, "search_docs", index,
                               lambda: ix.engine.search_docs(ids, maxnum, disp, body.seed))
    else:
        mcf, mdt = _cnf_params(svc, body)
        deadline = Deadline(body.timeout_ms, lim)
        cnf = q.cnf
        r, ms = await svc.call(svc.pools.slow, "search_docs_cnf", index,
                               lambda: ix.engine.search_docs_cnf(cnf, maxnum, disp, mcf, mdt, body.seed,
                                                                 deadline.remaining_ms()))
    needles = needles_of(q.ids, q.cnf)
    return _ok({"count": r.cnt, "approx": r.approx, "idxs": r.idxs,
                "documents": [document(ix, d, needles) for d in r.documents],
                "token_ids": q.echo, "tokens": inputs.tokens(ix, q.echo), "latency_ms": ms})


@router.post("/attribute", response_model=AttributeResponse, responses=example_responses("attribute"),
             summary="Maximal spans of the text that occur verbatim in the corpus, with where they occur")
async def attribute(index: str, body: AttributeRequest, request: Request) -> JSONResponse:
    svc = state(request)
    ix = svc.registry.get(index)
    lim = svc.limits
    ids = inputs.sequence(ix, "query", body.query, body.query_ids, lim)
    check_max("max_locations", body.max_locations, lim.max_locations)
    max_loc = 10 if body.max_locations is None else body.max_locations
    deadline = Deadline(body.timeout_ms, lim)
    engine = ix.engine

    def run() -> list[dict[str, Any]]:
        spans = engine.attribute(ids, body.min_len, max_loc, deadline.remaining_ms())
        return [{"start": sp.start, "end": sp.end, "count": sp.count,
                 "locations": [{"shard": s, "ptr": p, "doc_ix": engine.get_doc_by_ptr(s, p, 1).doc_ix}
                               for s, p in sp.locations]} for sp in spans]

    spans, ms = await svc.call(svc.pools.slow, "attribute", index, run)
    for sp in spans:
        sp["text"] = ix.codec.decode(ids[sp["start"]:sp["end"]]) if ix.codec else None
    return _ok({"spans": spans, "token_ids": ids, "tokens": inputs.tokens(ix, ids), "latency_ms": ms})


@router.post("/score", response_model=ScoreResponse, responses=example_responses("score"),
             summary="∞-gram probability of every token given all the tokens before it")
async def score(index: str, body: ScoreRequest, request: Request) -> JSONResponse:
    svc = state(request)
    ix = svc.registry.get(index)
    ids = inputs.sequence(ix, "query", body.query, body.query_ids, svc.limits)
    deadline = Deadline(body.timeout_ms, svc.limits)
    scores, ms = await svc.call(svc.pools.slow, "score", index,
                                lambda: ix.engine.score(ids, deadline.remaining_ms()))
    names = inputs.tokens(ix, ids) or [None] * len(ids)
    return _ok({"scores": [{"token_id": t, "token": name, "suffix_len": s.suffix_len, "prompt_cnt": s.prompt_cnt,
                            "cont_cnt": s.cont_cnt, "prob": s.prob}
                           for t, name, s in zip(ids, names, scores, strict=True)],
                "token_ids": ids, "tokens": inputs.tokens(ix, ids), "latency_ms": ms})
