"""Each endpoint as a `Call`: the HTTP request to send and how to read its answer. Client and AsyncClient both
send these, so an endpoint is written once."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar
from urllib.parse import quote

from gramdex_client.cnf import CNF
from gramdex_client.models import (
    AttributeResult,
    CountResult,
    Document,
    FindResult,
    IndexInfo,
    NtdResult,
    ProbResult,
    ScoreResult,
    SearchResult,
    Summary,
)

T = TypeVar("T")
Text = str | Sequence[int]          # text, tokenized by the server with the index's tokenizer, or token ids
Query = str | Sequence[int] | CNF   # text may also be a CNF written 'a AND b OR c'


@dataclass(frozen=True)
class Call(Generic[T]):
    method: str
    path: str
    parse: Callable[[Any], T]
    json: dict[str, Any] | None = None
    params: dict[str, Any] | None = None


def _options(**options: Any) -> dict[str, Any]:
    """Leave unset options out, so the server's defaults apply."""
    return {k: v for k, v in options.items() if v is not None}


def _query(query: Query) -> dict[str, Any]:
    if isinstance(query, CNF):
        return query.body()
    return _text("query", query)


def _text(field: str, value: Text) -> dict[str, Any]:
    return {field: value} if isinstance(value, str) else {f"{field}_ids": [int(i) for i in value]}


def _cont(cont: str | int) -> dict[str, Any]:
    return {"cont": cont} if isinstance(cont, str) else {"cont_id": int(cont)}


class Calls:
    """The endpoints; `index` defaults to the client's default index."""

    def __init__(self, default_index: str | None = None) -> None:
        self.default_index = default_index

    def _path(self, index: str | None, tail: str) -> str:
        name = index or self.default_index
        if not name:
            raise ValueError("name an index: index=... here, Client(index=...), or the GRAMDEX_INDEX variable")
        return f"/v1/indexes/{quote(name, safe='')}/{tail}"

    def indexes(self) -> Call[list[IndexInfo]]:
        return Call("GET", "/v1/indexes", lambda d: [IndexInfo.model_validate(i) for i in d["indexes"]])

    def count(self, query: Query, *, index: str | None = None, max_clause_freq: int | None = None,
              max_diff_tokens: int | None = None, timeout_ms: float | None = None) -> Call[CountResult]:
        body = _query(query) | _options(max_clause_freq=max_clause_freq, max_diff_tokens=max_diff_tokens,
                                        timeout_ms=timeout_ms)
        return Call("POST", self._path(index, "count"), CountResult.model_validate, body)

    def find(self, query: Query, *, index: str | None = None, max_clause_freq: int | None = None,
             max_diff_tokens: int | None = None, timeout_ms: float | None = None) -> Call[FindResult]:
        body = _query(query) | _options(max_clause_freq=max_clause_freq, max_diff_tokens=max_diff_tokens,
                                        timeout_ms=timeout_ms)
        return Call("POST", self._path(index, "find"), FindResult.model_validate, body)

    def prob(self, prompt: Text, cont: str | int, *, index: str | None = None) -> Call[ProbResult]:
        return Call("POST", self._path(index, "prob"), ProbResult.model_validate, _text("prompt", prompt) | _cont(cont))

    def infgram_prob(self, prompt: Text, cont: str | int, *, index: str | None = None) -> Call[ProbResult]:
        return Call("POST", self._path(index, "infgram/prob"), ProbResult.model_validate,
                    _text("prompt", prompt) | _cont(cont))

    def ntd(self, prompt: Text, *, index: str | None = None, max_support: int | None = None,
            timeout_ms: float | None = None) -> Call[NtdResult]:
        body = _text("prompt", prompt) | _options(max_support=max_support, timeout_ms=timeout_ms)
        return Call("POST", self._path(index, "ntd"), NtdResult.model_validate, body)

    def infgram_ntd(self, prompt: Text, *, index: str | None = None, max_support: int | None = None,
                    timeout_ms: float | None = None) -> Call[NtdResult]:
        body = _text("prompt", prompt) | _options(max_support=max_support, timeout_ms=timeout_ms)
        return Call("POST", self._path(index, "infgram/ntd"), NtdResult.model_validate, body)

    def search_documents(self, query: Query, *, index: str | None = None, maxnum: int | None = None,
                         max_disp_len: int | None = None, seed: int | None = None,
                         max_clause_freq: int | None = None, max_diff_tokens: int | None = None,
                         timeout_ms: float | None = None) -> Call[SearchResult]:
        body = _query(query) | _options(maxnum=maxnum, max_disp_len=max_disp_len, seed=seed,
                                        max_clause_freq=max_clause_freq, max_diff_tokens=max_diff_tokens,
                                        timeout_ms=timeout_ms)
        return Call("POST", self._path(index, "documents/search"), SearchResult.model_validate, body)

    def get_document(self, doc_ix: int, *, index: str | None = None,
                     max_disp_len: int | None = None) -> Call[Document]:
        return Call("GET", self._path(index, f"documents/{int(doc_ix)}"), Document.model_validate,
                    params=_options(max_disp_len=max_disp_len))

    def attribute(self, text: Text, *, index: str | None = None, min_len: int | None = None,
                  max_locations: int | None = None, timeout_ms: float | None = None) -> Call[AttributeResult]:
        body = _text("query", text) | _options(min_len=min_len, max_locations=max_locations, timeout_ms=timeout_ms)
        return Call("POST", self._path(index, "attribute"), AttributeResult.model_validate, body)

    def score(self, text: Text, *, index: str | None = None, timeout_ms: float | None = None) -> Call[ScoreResult]:
        body = _text("query", text) | _options(timeout_ms=timeout_ms)
        return Call("POST", self._path(index, "score"), ScoreResult.model_validate, body)

    def summarize(self, text: str, *, max_tokens: int | None = None, ratio: float | None = None,
                  index: str | None = None, mode: Literal["extractive", "compressive", "abstractive"] = "extractive",
                  ) -> Call[Summary]:
        """`index` here is optional and independent of the client's default index: one of the server's word-level
        summarizer indexes (setting summarizer.indexes) for the critics; without it the server's summarizer.index,
        else the model's own word statistics. `abstractive` needs a server with an abstractive model; `backend` in
        the answer says which text won."""
        return Call("POST", "/v1/summarize", Summary.model_validate,
                    _summary_request(text, max_tokens, ratio, index, mode))

    def summarize_batch(self, texts: Sequence[str], *, max_tokens: int | None = None, ratio: float | None = None,
                        index: str | None = None,
                        mode: Literal["extractive", "compressive", "abstractive"] = "extractive",
                        ) -> Call[list[Summary]]:
        """Up to 32 texts in one request, each with the same options (`ratio` adapts the budget to each text's
        length); the summaries come back in the texts' order. A problem with one text fails the whole batch and
        names it: `field` is `documents[K].<field>`."""
        if isinstance(texts, str):
            raise TypeError("texts must be a sequence of texts, not one text")
        body = {"documents": [_summary_request(t, max_tokens, ratio, index, mode) for t in texts]}
        return Call("POST", "/v1/summarize/batch",
                    lambda raw: [Summary.model_validate(r) for r in raw["results"]], body)


def _summary_request(text: str, max_tokens: int | None, ratio: float | None, index: str | None,
                     mode: str) -> dict[str, Any]:
    if (max_tokens is None) == (ratio is None):
        raise ValueError("give exactly one of max_tokens and ratio")
    return {"text": text, "mode": mode} | _options(max_tokens=max_tokens, ratio=ratio, index=index)
