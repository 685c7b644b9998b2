"""Documents as the API shows them: decoded text, parsed metadata, matches marked."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from native.results import Document
from service.registry import LoadedIndex


def metadata(raw: str) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


def mark(ids: Sequence[int], needles: Sequence[tuple[Sequence[int], str]]) -> list[tuple[list[int], str | None]]:
    """Split ids into runs, labelling every occurrence of each needle (the first needle wins an overlap)."""
    labels: list[str | None] = [None] * len(ids)
    for needle, label in needles:
        n = len(needle)
        if n == 0:
            continue
        first = needle[0]
        i = 0
        while i + n <= len(ids):
            if ids[i] == first and list(ids[i:i + n]) == list(needle) and all(x is None for x in labels[i:i + n]):
                labels[i:i + n] = [label] * n
                i += n
            else:
                i += 1
    runs: list[tuple[list[int], str | None]] = []
    for tok, label in zip(ids, labels, strict=True):
        if runs and runs[-1][1] == label:
            runs[-1][0].append(tok)
        else:
            runs.append(([tok], label))
    return runs


def needles_of(ids: list[int] | None, cnf: list[list[list[int]]] | None) -> list[tuple[list[int], str]]:
    if ids is not None:
        return [(ids, "0")]
    return [(term, str(c)) for c, clause in enumerate(cnf or []) for term in clause]


def decode(index: LoadedIndex, ids: Sequence[int]) -> str:
    return index.codec.decode(list(ids)) if index.codec is not None else ""


def document(index: LoadedIndex, doc: Document, needles: Sequence[tuple[Sequence[int], str]]) -> dict[str, Any]:
    runs = mark(doc.token_ids, needles)
    return {"doc_ix": doc.doc_ix, "doc_len": doc.doc_len, "disp_start": doc.disp_start, "disp_len": doc.disp_len,
            "needle_offset": doc.needle_offset, "metadata": metadata(doc.metadata), "token_ids": doc.token_ids,
            "text": decode(index, doc.token_ids),
            "spans": [{"text": decode(index, run), "match": label} for run, label in runs]}


def compat_document(index: LoadedIndex, doc: Document, needles: Sequence[tuple[Sequence[int], str]]) -> dict[str, Any]:
    """infini-gram API's document: its fields, and spans as [text, label] pairs."""
    return {"doc_ix": doc.doc_ix, "doc_len": doc.doc_len, "disp_len": doc.disp_len,
            "needle_offset": doc.needle_offset, "metadata": doc.metadata, "token_ids": doc.token_ids,
            "blocked": False,
            "spans": [[decode(index, run), label] for run, label in mark(doc.token_ids, needles)]}
