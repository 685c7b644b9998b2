"""Request and response bodies of the /v1 API. Token-id upper bounds depend on the index and are checked there."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

TokenId = Annotated[int, Field(ge=0)]
Ids = list[TokenId]
Cnf = list[list[list[TokenId]]]
Timeout = Annotated[float | None, Field(default=None, gt=0, description="deadline in ms, capped by the server's")]


class Strict(BaseModel):
    # strict: JSON true is not the number 1 (it would count token id 1), and "5" is not 5; an unknown field is a
    # typo, not something to ignore. Subclasses' model_config merges with this one.
    model_config = ConfigDict(extra="forbid", strict=True)


class CountRequest(Strict):
    query: str | None = Field(default=None, description="text; 'a AND b OR c' is a CNF (OR binds tighter)")
    query_ids: Ids | Cnf | None = Field(default=None, description="token ids, or a CNF as a triply nested list")
    max_clause_freq: int | None = Field(default=None, gt=0)
    max_diff_tokens: int | None = Field(default=None, gt=0)
    timeout_ms: Timeout = None
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"query": "the cat"}, {"query_ids": [259, 318]}, {"query": "cat AND mat OR hat"}]})


class FindRequest(CountRequest):
    pass


class ProbRequest(Strict):
    prompt: str | None = None
    prompt_ids: Ids | None = None
    cont: str | None = Field(default=None, description="text of exactly one token")
    cont_id: TokenId | None = None
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"prompt": "the cat", "cont": "sat"}, {"prompt_ids": [259, 318], "cont_id": 301}]})


class NtdRequest(Strict):
    prompt: str | None = None
    prompt_ids: Ids | None = None
    max_support: int | None = Field(default=None, gt=0)
    timeout_ms: Timeout = None
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"prompt": "the cat"}, {"prompt_ids": [259], "max_support": 100}]})


class SearchRequest(CountRequest):
    maxnum: int | None = Field(default=None, gt=0, description="documents to draw (with replacement)")
    max_disp_len: int | None = Field(default=None, gt=0, description="tokens shown per document")
    seed: int = Field(default=0, ge=0, description="draws are deterministic for a seed")
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"query": "the cat", "maxnum": 2, "max_disp_len": 20}, {"query": "cat AND mat"}]})


class AttributeRequest(Strict):
    query: str | None = None
    query_ids: Ids | None = None
    min_len: int = Field(default=1, ge=0, description="shortest span reported, in tokens")
    max_locations: int | None = Field(default=None, ge=0, description="occurrences listed per span")
    timeout_ms: Timeout = None
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"query": "the cat sat on the mat", "min_len": 2, "max_locations": 3}]})


class ScoreRequest(Strict):
    query: str | None = None
    query_ids: Ids | None = None
    timeout_ms: Timeout = None
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"query": "the cat sat on the mat"}]})


class ReloadRequest(Strict):
    pass


# --- responses (documented shapes; the handlers build these dicts directly) ---

class Echo(BaseModel):
    token_ids: list[int] | list[list[list[int]]]
    tokens: list[str] | list[list[list[str]]] | None = None
    latency_ms: float


class CountResponse(Echo):
    count: int
    approx: bool


class FindResponse(Echo):
    count: int
    approx: bool
    segment_by_shard: list[list[int]] | None = Field(default=None, description="[lo, hi) ranks per shard")
    ptrs_by_shard: list[list[int]] | None = Field(default=None, description="CNF: match pointers per shard")


class ProbResponse(BaseModel):
    prompt_ids: list[int]
    prompt_tokens: list[str] | None = None
    cont_id: int
    cont_token: str | None = None
    prompt_cnt: int
    cont_cnt: int
    prob: float | None = Field(description="null when the prompt never occurs")
    suffix_len: int | None = Field(default=None, description="∞-gram: length of the prompt suffix used")
    latency_ms: float


class NextToken(BaseModel):
    token_id: int
    token: str | None = None
    cont_cnt: int
    prob: float


class NtdResponse(BaseModel):
    prompt_ids: list[int]
    prompt_tokens: list[str] | None = None
    prompt_cnt: int
    approx: bool
    suffix_len: int | None = None
    next_tokens: list[NextToken] = Field(description="most frequent first")
    latency_ms: float


class Span(BaseModel):
    text: str
    match: str | None = Field(description="null outside matches; the CNF clause number inside one")


class DocumentOut(BaseModel):
    doc_ix: int
    doc_len: int
    disp_start: int = Field(description="token offset of the window in the document")
    disp_len: int
    needle_offset: int
    metadata: Any
    token_ids: list[int]
    text: str
    spans: list[Span]


class SearchResponse(Echo):
    count: int
    approx: bool
    idxs: list[int]
    documents: list[DocumentOut]


class Location(BaseModel):
    shard: int
    ptr: int
    doc_ix: int


class AttributedSpan(BaseModel):
    start: int
    end: int
    count: int
    text: str | None = None
    locations: list[Location]


class AttributeResponse(Echo):
    spans: list[AttributedSpan]


class TokenScoreOut(BaseModel):
    token_id: int
    token: str | None = None
    suffix_len: int
    prompt_cnt: int
    cont_cnt: int
    prob: float


class ScoreResponse(Echo):
    scores: list[TokenScoreOut]


class IndexInfo(BaseModel):
    name: str
    documents: int
    tokens: int
    shards: int
    token_width: int
    eos_token_id: int
    vocab_size: int
    tokenizer: str | None


class IndexList(BaseModel):
    indexes: list[IndexInfo]


class ReloadResponse(BaseModel):
    added: list[str]
    removed: list[str]
    reloaded: list[str]
    indexes: list[str]


class ProblemOut(BaseModel):
    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None
    field: str | None = None
