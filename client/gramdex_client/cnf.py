"""A CNF query (an AND of ORs of n-grams) built from text or token ids, sent as the server expects it.

    all_of(any_of("cat", "dog"), "mat")      -> {"query": "cat OR dog AND mat"}
    all_of(any_of([5, 6], [7]), [9])         -> {"query_ids": [[[5, 6], [7]], [[9]]]}
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

Term = str | Sequence[int]


@dataclass(frozen=True)
class AnyOf:
    """One clause: any of its terms."""

    terms: tuple[Term, ...]


@dataclass(frozen=True)
class CNF:
    """All of its clauses, each clause any of its terms; every term text, or every term token ids."""

    clauses: tuple[AnyOf, ...]

    def body(self) -> dict[str, Any]:
        terms = [t for clause in self.clauses for t in clause.terms]
        if all(isinstance(t, str) for t in terms):
            return {"query": " AND ".join(" OR ".join(str(t) for t in c.terms) for c in self.clauses)}
        return {"query_ids": [[[int(i) for i in t] for t in c.terms] for c in self.clauses]}


def any_of(*terms: Term) -> AnyOf:
    if not terms:
        raise ValueError("any_of needs at least one term")
    for t in terms:
        if isinstance(t, str) and (not t.strip() or " AND " in t or " OR " in t):
            raise ValueError(f"a text term must be non-empty and hold no ' AND ' / ' OR ': {t!r}")
        if not isinstance(t, str) and not t:
            raise ValueError("a token-id term must not be empty")
    return AnyOf(tuple(terms))


def all_of(*clauses: Term | AnyOf) -> CNF:
    if not clauses:
        raise ValueError("all_of needs at least one clause")
    cnf = CNF(tuple(c if isinstance(c, AnyOf) else any_of(c) for c in clauses))
    kinds = {isinstance(t, str) for clause in cnf.clauses for t in clause.terms}
    if len(kinds) > 1:
        raise ValueError("a CNF's terms must be all text or all token ids")
    return cnf
