"""Typed results of engine queries."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class ShardInfo:
    tok_cnt: int
    ds_size: int
    doc_cnt: int
    ptr_size: int
    has_metadata: bool


@dataclass(frozen=True, slots=True)
class FindResult:
    cnt: int
    segment_by_shard: list[tuple[int, int]]


@dataclass(frozen=True, slots=True)
class CountResult:
    count: int
    approx: bool


@dataclass(frozen=True, slots=True)
class ProbResult:
    prompt_cnt: int
    cont_cnt: int
    prob: float
    suffix_len: int | None = None


@dataclass(frozen=True, slots=True)
class NtdResult:
    prompt_cnt: int
    counts: dict[int, int]
    approx: bool
    suffix_len: int | None = None

    @property
    def probs(self) -> dict[int, float]:
        return {tok: cnt / self.prompt_cnt for tok, cnt in self.counts.items()}


@dataclass(frozen=True, slots=True)
class CnfResult:
    cnt: int
    approx: bool
    ptrs_by_shard: list[list[int]]


@dataclass(frozen=True, slots=True)
class Document:
    shard: int
    doc_ix: int
    doc_len: int
    disp_start: int
    disp_len: int
    needle_offset: int
    token_ids: list[int]
    metadata: str


@dataclass(frozen=True, slots=True)
class SearchResult:
    cnt: int
    approx: bool
    idxs: list[int]
    documents: list[Document] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Span:
    start: int
    end: int
    count: int
    locations: list[tuple[int, int]]


@dataclass(frozen=True, slots=True)
class TokenScore:
    suffix_len: int
    prompt_cnt: int
    cont_cnt: int
    prob: float
