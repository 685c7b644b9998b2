"""GET /v1/indexes and GET /v1/indexes/{index}/documents/{doc_ix}."""

from __future__ import annotations

from fastapi import Query, Request
from fastapi.responses import JSONResponse

from service.api_route import api_router
from service.documents import document
from service.errors import Problem
from service.examples import example_responses
from service.limits import check_max
from service.schemas import DocumentOut, IndexList
from service.state import state

router = api_router(prefix="/v1/indexes", tags=["indexes"])


@router.get("", response_model=IndexList, responses=example_responses("indexes"),
            summary="The served indexes with their sizes and tokenizers")
async def list_indexes(request: Request) -> JSONResponse:
    return JSONResponse({"indexes": [ix.describe() for ix in state(request).registry.all()]})


@router.get("/{index}/documents/{doc_ix}", response_model=DocumentOut, responses=example_responses("document"),
            summary="One document by its index, decoded, from its start")
async def get_document(request: Request, index: str, doc_ix: int,
                       max_disp_len: int = Query(default=1000, gt=0, description="tokens shown")) -> JSONResponse:
    svc = state(request)
    ix = svc.registry.get(index)
    check_max("max_disp_len", max_disp_len, svc.limits.max_disp_len)
    if not 0 <= doc_ix < ix.engine.doc_cnt:
        raise Problem("unknown-document", f"index {index!r} has documents 0 to {ix.engine.doc_cnt - 1}",
                      field="doc_ix")
    doc, _ = await svc.call(svc.pools.fast, "get_doc", index, lambda: ix.engine.get_doc_by_ix(doc_ix, max_disp_len))
    return JSONResponse(document(ix, doc, []))
