"""Typed results, mirroring the response schemas of openapi.yaml (a test compares the fields).

Fields the server adds later are ignored rather than rejected, so an older SDK keeps working against a newer server.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class Result(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Echo(Result):
    token_ids: list[int] | list[list[list[int]]]
    tokens: list[str] | list[list[list[str]]] | None = None
    latency_ms: float


class CountResult(Echo):
    count: int
    approx: bool


class FindResult(Echo):
    count: int
    approx: bool
    segment_by_shard: list[list[int]] | None = None
    ptrs_by_shard: list[list[int]] | None = None


class ProbResult(Result):
    prompt_ids: list[int]
    prompt_tokens: list[str] | None = None
    cont_id: int
    cont_token: str | None = None
    prompt_cnt: int
    cont_cnt: int
    prob: float | None  # None when the prompt never occurs
    suffix_len: int | None = None  # ∞-gram: the length of the prompt suffix used
    latency_ms: float


class NextToken(Result):
    token_id: int
    token: str | None = None
    cont_cnt: int
    prob: float


class NtdResult(Result):
    prompt_ids: list[int]
    prompt_tokens: list[str] | None = None
    prompt_cnt: int
    approx: bool
    suffix_len: int | None = None
    next_tokens: list[NextToken]  # most frequent first
    latency_ms: float


class Span(Result):
    text: str
    match: str | None  # None outside matches; the CNF clause number inside one


class Document(Result):
    doc_ix: int
    doc_len: int
    disp_start: int
    disp_len: int
    needle_offset: int
    metadata: Any
    token_ids: list[int]
    text: str
    spans: list[Span]


class SearchResult(Echo):
    count: int
    approx: bool
    idxs: list[int]
    documents: list[Document]


class Location(Result):
    shard: int
    ptr: int
    doc_ix: int


class AttributedSpan(Result):
    start: int
    end: int
    count: int
    text: str | None = None
    locations: list[Location]


class AttributeResult(Echo):
    spans: list[AttributedSpan]


class TokenScore(Result):
    token_id: int
    token: str | None = None
    suffix_len: int
    prompt_cnt: int
    cont_cnt: int
    prob: float


class ScoreResult(Echo):
    scores: list[TokenScore]


class IndexInfo(Result):
    name: str
    documents: int
    tokens: int
    shards: int
    token_width: int
    eos_token_id: int
    vocab_size: int
    tokenizer: str | None


class SummarySentence(Result):
    index: int       # the sentence's number in the source
    text: str
    start: int       # character offsets of the kept text in the source
    end: int
    pieces: list[list[int]]  # [start, end) character ranges kept (several when compression cut words out)


class SummaryScores(Result):
    saliency: float
    faithfulness: float
    support: float
    tokens: int
    coherence: float | None = None  # in abstractive mode's candidates


class Summary(Result):
    summary: str
    model: str
    budget: int
    sentences: list[SummarySentence]  # empty when an abstractive text won (it has no offsets in the source)
    scores: SummaryScores
    backend: str = "student"  # "student" or "abstractive": which candidate the summary is
    candidates: dict[str, Any] | None = None  # mode abstractive: both candidates with their scores and verdicts
    thresholds: dict[str, float] | None = None  # mode abstractive: what a candidate had to clear
