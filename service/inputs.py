"""Turning a request's text or ids into what the engine takes, with the index's tokenizer and the limits."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from service.errors import Problem
from service.limits import check_cnf, check_text, check_tokens
from service.registry import LoadedIndex
from service.settings import Limits


@dataclass(frozen=True, slots=True)
class Query:
    ids: list[int] | None          # a plain n-gram
    cnf: list[list[list[int]]] | None  # or an AND of ORs of n-grams

    @property
    def echo(self) -> list[int] | list[list[list[int]]]:
        return self.ids if self.ids is not None else self.cnf  # type: ignore[return-value]


def _require_codec(index: LoadedIndex, field: str) -> Any:
    if index.codec is None:
        raise Problem("text-unsupported", f"index {index.name!r} has no tokenizer; send {field}_ids instead",
                      field=field)
    return index.codec


def _check_range(index: LoadedIndex, field: str, ids: Sequence[int]) -> None:
    top = index.engine.max_token_id
    for i in ids:
        if i > top:
            raise Problem("validation-error", f"{field}: token id {i} is over this index's maximum {top}",
                          field=field)


def one_of(text: Any, ids: Any, field: str, *, required: bool = True) -> None:
    if text is not None and ids is not None:
        raise Problem("validation-error", f"give either {field} or {field}_ids, not both", field=field)
    if required and text is None and ids is None:
        raise Problem("validation-error", f"give {field} (text) or {field}_ids (token ids)", field=field)


def encode(index: LoadedIndex, field: str, text: str, limits: Limits) -> list[int]:
    check_text(field, text, limits)
    ids = _require_codec(index, field).encode(text)
    check_tokens(field, ids, limits)
    return list(ids)


def sequence(index: LoadedIndex, field: str, text: str | None, ids: list[int] | None, limits: Limits) -> list[int]:
    """An n-gram from `field` (text) or `field_ids`."""
    one_of(text, ids, field)
    if text is not None:
        return encode(index, field, text, limits)
    assert ids is not None
    check_tokens(f"{field}_ids", ids, limits)
    _check_range(index, f"{field}_ids", ids)
    return ids


def is_cnf_ids(ids: Any) -> bool:
    return bool(ids) and isinstance(ids[0], list)


def query(index: LoadedIndex, text: str | None, ids: Any, limits: Limits, *, allow_cnf: bool) -> Query:
    """`query` / `query_ids`; text with ' AND ' / ' OR ' (and ids nested three deep) is a CNF."""
    one_of(text, ids, "query")
    if text is not None:
        if allow_cnf and (" AND " in text or " OR " in text):
            check_text("query", text, limits)
            codec = _require_codec(index, "query")
            cnf = [[list(codec.encode(term)) for term in clause.split(" OR ")] for clause in text.split(" AND ")]
            if any(not term for clause in cnf for term in clause):
                raise Problem("invalid-query", "query: every AND/OR term must have some text", field="query")
            check_cnf("query", cnf, limits)
            return Query(None, cnf)
        return Query(encode(index, "query", text, limits), None)
    if is_cnf_ids(ids):
        if not allow_cnf:
            raise Problem("validation-error", "query_ids: this endpoint takes a flat list of token ids",
                          field="query_ids")
        if any(not clause or any(not term for term in clause) for clause in ids):
            raise Problem("invalid-query", "query_ids: CNF clauses and terms must not be empty", field="query_ids")
        check_cnf("query_ids", ids, limits)
        for clause in ids:
            for term in clause:
                _check_range(index, "query_ids", term)
        return Query(None, ids)
    check_tokens("query_ids", ids, limits)
    _check_range(index, "query_ids", ids)
    return Query(list(ids), None)


def single_token(index: LoadedIndex, text: str | None, token_id: int | None, limits: Limits) -> int:
    """`cont` (text that must be one token) or `cont_id`."""
    if text is not None and token_id is not None:
        raise Problem("validation-error", "give either cont or cont_id, not both", field="cont")
    if text is None and token_id is None:
        raise Problem("validation-error", "give cont (text of one token) or cont_id", field="cont")
    if text is not None:
        ids = encode(index, "cont", text, limits)
        if len(ids) != 1:
            raise Problem("invalid-query", f"cont: {text!r} is {len(ids)} tokens, not one; send cont_id",
                          field="cont")
        return ids[0]
    assert token_id is not None
    _check_range(index, "cont_id", [token_id])
    return token_id


def tokens(index: LoadedIndex, ids: Any) -> Any:
    """The token strings of ids (or of a CNF), when the index has a tokenizer."""
    if index.codec is None:
        return None
    if ids and isinstance(ids[0], list):
        return [[index.codec.tokens(term) for term in clause] for clause in ids]
    return index.codec.tokens(ids)
