"""The gramdex query engine: a typed Python face over the C core (cffi, API mode).

Every call releases the GIL for its C part, so threads can query one engine concurrently.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from native._gramdex import ffi, lib
from native.errors import GramdexError, IndexFormatError, InvalidQueryError
from native.jobs import Call
from native.jobs import raise_status as _raise
from native.manifest import MANIFEST_FILE, Manifest, check_file_sizes, read_manifest
from native.results import (
    CnfResult,
    CountResult,
    Document,
    FindResult,
    NtdResult,
    ProbResult,
    SearchResult,
    ShardInfo,
    Span,
    TokenScore,
)

PathLike = str | os.PathLike[str]
Cnf = Sequence[Sequence[Sequence[int]]]

def _deadline(timeout_ms: float | None) -> int:
    if timeout_ms is None:
        return 0
    if timeout_ms <= 0:
        raise InvalidQueryError(f"timeout_ms must be positive, not {timeout_ms}")
    return time.monotonic_ns() + int(timeout_ms * 1_000_000)


def _ids(ids: Sequence[int], what: str) -> Any:
    try:
        return ffi.new("uint32_t[]", ids if isinstance(ids, (list, tuple)) else list(ids))
    except (OverflowError, TypeError) as exc:
        raise InvalidQueryError(f"{what} must be a list of non-negative integers below 2^32: {exc}") from None


def _positive(value: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0 or value >= 2**63:
        raise InvalidQueryError(f"{what} must be a positive integer, not {value!r}")
    return value


def _nonneg(value: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0 or value >= 2**63:
        raise InvalidQueryError(f"{what} must be a non-negative integer, not {value!r}")
    return value


def _read_manifest(directory: Path) -> Manifest | None:
    if not (directory / MANIFEST_FILE).exists():
        return None
    manifest = read_manifest(directory)
    check_file_sizes(directory, manifest)
    return manifest


def _shard_texts(directory: Path) -> list[Path]:
    """tokenized.0, tokenized.1, ... up to the first gap, as the C core opens them."""
    paths = []
    while (directory / f"tokenized.{len(paths)}").exists():
        paths.append(directory / f"tokenized.{len(paths)}")
    return paths


def _read_cnt(j: Any) -> int:
    return int(j.cnt)


def _read_prob(j: Any) -> ProbResult:
    p = j.prob
    return ProbResult(int(p.prompt_cnt), int(p.cont_cnt), float(p.prob), None)


def _read_infgram_prob(j: Any) -> ProbResult:
    p = j.prob
    return ProbResult(int(p.prompt_cnt), int(p.cont_cnt), float(p.prob), int(p.suffix_len))


def _read_ntd(j: Any, infgram: bool = False) -> NtdResult:
    out = j.ntd
    counts = {int(e.token): int(e.count) for e in out.entries[0:out.n_entries]}
    return NtdResult(int(out.prompt_cnt), counts, bool(out.approx), int(out.suffix_len) if infgram else None)


def _read_infgram_ntd(j: Any) -> NtdResult:
    return _read_ntd(j, infgram=True)


def _free_ntd(j: Any) -> None:
    lib.gd_free(j.ntd.entries)


class Engine:
    """n-gram queries over one or more index directories (each with shards 0, 1, ...)."""

    def __init__(self, index_dir: PathLike | Sequence[PathLike], *, token_width: int | None = None,
                 eos_token_id: int | None = None, vocab_size: int | None = None) -> None:
        dirs = [Path(index_dir)] if isinstance(index_dir, (str, os.PathLike)) else [Path(d) for d in index_dir]
        if not dirs:
            raise InvalidQueryError("index_dir must name at least one directory")
        manifests = [_read_manifest(d) if d.is_dir() else None for d in dirs]
        self.manifest: Manifest | None = next((m for m in manifests if m), None)
        m = self.manifest
        self.token_width = int(token_width or (m.token_width if m else 2))
        self.eos_token_id = int(eos_token_id if eos_token_id is not None else (m.eos_token_id if m else 0))
        self.vocab_size = int(vocab_size or (m.vocab_size if m else 2 ** (8 * self.token_width) - 1))
        for d, other in zip(dirs, manifests, strict=True):
            if other and other.token_width != self.token_width:
                raise IndexFormatError(f"{d / MANIFEST_FILE}: token width {other.token_width} differs from "
                                       f"{self.token_width}")
        self._dirs_c = [ffi.new("char[]", os.fsencode(d)) for d in dirs]
        out = ffi.new("gd_engine **")
        err = ffi.new("gd_error *")
        status = lib.gd_engine_open(self._dirs_c, len(dirs), self.token_width, self.eos_token_id & 0xFFFFFFFF,
                                    out, err)
        _raise(status, err)
        self._engine = ffi.gc(out[0], lib.gd_engine_close)
        self.num_shards = int(lib.gd_num_shards(self._engine))
        self.shards = [self.shard_info(s) for s in range(self.num_shards)]
        self.tok_cnt = sum(s.tok_cnt for s in self.shards)
        self.doc_cnt = sum(s.doc_cnt for s in self.shards)
        self.max_token_id = 2 ** (8 * self.token_width) - 1
        self._doc_base = [sum(s.doc_cnt for s in self.shards[:i]) for i in range(self.num_shards)]
        self.index_dirs = dirs
        self._shard_paths = [path for d in dirs for path in _shard_texts(d)]

    def close(self) -> None:
        """Unmap the index now instead of at garbage collection."""
        engine, self._engine = self._engine, None
        if engine is not None:
            ffi.release(engine)

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _handle(self) -> Any:
        if self._engine is None:
            raise GramdexError("engine is closed")
        return self._engine

    def shard_info(self, s: int) -> ShardInfo:
        _nonneg(s, "shard")
        info = ffi.new("gd_shard_info *")
        err = ffi.new("gd_error *")
        _raise(lib.gd_shard_info_get(self._handle(), s, info, err), err)
        return ShardInfo(int(info.tok_cnt), int(info.ds_size), int(info.doc_cnt), int(info.ptr_size),
                         bool(info.has_metadata))

    # --- counting ---

    def _job(self, op: int, q: Any, cont: int = 0, param: int = 0, deadline_ns: int = 0,
             ranges: Any = ffi.NULL) -> Any:
        # positional, in gd_job's field order (a dict or attribute stores cost a third more per call)
        return ffi.new("gd_job *", [op, self._handle(), q, len(q), cont, param, deadline_ns, ranges])

    def find_call(self, ids: Sequence[int]) -> Call[FindResult]:
        q = _ids(ids, "ids")
        ranges = ffi.new("gd_range[]", self.num_shards)

        def result(j: Any) -> FindResult:
            return FindResult(int(j.cnt), [(int(r.lo), int(r.hi)) for r in ranges])

        return Call(self._job(lib.GD_OP_FIND, q, ranges=ranges), (self._engine, q, ranges), result)

    def count_call(self, ids: Sequence[int]) -> Call[int]:
        q = _ids(ids, "ids")
        ranges = ffi.new("gd_range[]", self.num_shards)
        return Call(self._job(lib.GD_OP_FIND, q, ranges=ranges), (self._engine, q, ranges), _read_cnt)

    def find(self, ids: Sequence[int]) -> FindResult:
        return self.find_call(ids).run()

    def count(self, ids: Sequence[int]) -> int:
        q = _ids(ids, "ids")
        cnt = lib.gd_count(self._handle(), q, len(q))
        return cnt if cnt >= 0 else self.find(ids).cnt  # find raises the error with its message

    def count_many(self, queries: Sequence[Sequence[int]], timeout_ms: float | None = None) -> list[int]:
        flat: list[int] = []
        starts, lens = [], []
        for query in queries:
            starts.append(len(flat))
            lens.append(len(query))
            flat.extend(query)
        ids = _ids(flat, "queries")
        counts = ffi.new("uint64_t[]", len(lens))
        err = ffi.new("gd_error *")
        _raise(lib.gd_count_batch(self._handle(), ids, ffi.new("size_t[]", starts), ffi.new("size_t[]", lens),
                                  len(lens), counts, _deadline(timeout_ms), err), err)
        return [int(c) for c in counts]

    def prob(self, prompt: Sequence[int], cont: int) -> ProbResult:
        return self._prob_call(lib.GD_OP_PROB, prompt, cont).run()

    def infgram_prob(self, prompt: Sequence[int], cont: int) -> ProbResult:
        return self._prob_call(lib.GD_OP_INFGRAM_PROB, prompt, cont).run()

    def prob_call(self, prompt: Sequence[int], cont: int) -> Call[ProbResult]:
        return self._prob_call(lib.GD_OP_PROB, prompt, cont)

    def infgram_prob_call(self, prompt: Sequence[int], cont: int) -> Call[ProbResult]:
        return self._prob_call(lib.GD_OP_INFGRAM_PROB, prompt, cont)

    def _prob_call(self, op: int, prompt: Sequence[int], cont: int) -> Call[ProbResult]:
        q = _ids(prompt, "prompt")
        if isinstance(cont, bool) or not isinstance(cont, int) or not 0 <= cont <= self.max_token_id:
            raise InvalidQueryError(f"cont must be an integer in [0, {self.max_token_id}], not {cont!r}")
        return Call(self._job(op, q, cont=cont), (self._engine, q),
                    _read_infgram_prob if op == lib.GD_OP_INFGRAM_PROB else _read_prob)

    def ntd(self, prompt: Sequence[int], max_support: int = 1000, timeout_ms: float | None = None) -> NtdResult:
        return self._ntd_call(lib.GD_OP_NTD, prompt, max_support, "max_support", timeout_ms).run()

    def infgram_ntd(self, prompt: Sequence[int], max_support: int = 1000,
                    timeout_ms: float | None = None) -> NtdResult:
        return self._ntd_call(lib.GD_OP_INFGRAM_NTD, prompt, max_support, "max_support", timeout_ms).run()

    def ntd_with_unit(self, prompt: Sequence[int], unit: int, timeout_ms: float | None = None) -> NtdResult:
        """ntd sampling one rank per `unit` ranks (a power of two; 1 = exact), as one part of a larger index
        whose total prompt count fixed the unit."""
        return self._ntd_call(lib.GD_OP_NTD_WITH_UNIT, prompt, unit, "unit", timeout_ms).run()

    def ntd_call(self, prompt: Sequence[int], max_support: int = 1000,
                 timeout_ms: float | None = None) -> Call[NtdResult]:
        return self._ntd_call(lib.GD_OP_NTD, prompt, max_support, "max_support", timeout_ms)

    def infgram_ntd_call(self, prompt: Sequence[int], max_support: int = 1000,
                         timeout_ms: float | None = None) -> Call[NtdResult]:
        return self._ntd_call(lib.GD_OP_INFGRAM_NTD, prompt, max_support, "max_support", timeout_ms)

    def longest_suffix(self, prompt: Sequence[int]) -> int:
        """Length of the longest suffix of `prompt` that occurs in this index (0 if none does)."""
        q = _ids(prompt, "prompt")
        return Call(self._job(lib.GD_OP_LONGEST_SUFFIX, q), (self._engine, q), _read_cnt).run()

    def _ntd_call(self, op: int, prompt: Sequence[int], param: int, what: str,
                  timeout_ms: float | None) -> Call[NtdResult]:
        q = _ids(prompt, "prompt")
        job = self._job(op, q, param=_positive(param, what), deadline_ns=_deadline(timeout_ms))
        return Call(job, (self._engine, q), _read_infgram_ntd if op == lib.GD_OP_INFGRAM_NTD else _read_ntd,
                    _free_ntd)

    # --- CNF ---

    def find_cnf(self, cnf: Cnf, max_clause_freq: int = 50000, max_diff_tokens: int = 100,
                 timeout_ms: float | None = None) -> CnfResult:
        return self._find_cnf(cnf, max_clause_freq, max_diff_tokens, timeout_ms, with_ptrs=True)

    def find_cnf_part(self, cnf: Cnf, shards_total: int, max_clause_freq: int = 50000, max_diff_tokens: int = 100,
                      timeout_ms: float | None = None) -> tuple[CnfResult, list[int]]:
        """find_cnf as one part of an index of `shards_total` shards: the clause budget is split over all of
        them, a clause absent here does not end the query, and each clause's count here comes back too, so
        that a router can apply the whole index's rules (a clause absent everywhere: no match)."""
        _positive(shards_total, "shards_total")
        totals = ffi.new("uint64_t[]", max(len(cnf) if isinstance(cnf, Sequence) else 0, 1))
        result = self._find_cnf(cnf, max_clause_freq, max_diff_tokens, timeout_ms, with_ptrs=True,
                                part=(shards_total, totals))
        return result, [int(t) for t in totals[0:len(cnf)]]

    def _find_cnf(self, cnf: Cnf, max_clause_freq: int, max_diff_tokens: int, timeout_ms: float | None, *,
                  with_ptrs: bool, part: tuple[int, Any] | None = None) -> CnfResult:
        _positive(max_clause_freq, "max_clause_freq")
        _positive(max_diff_tokens, "max_diff_tokens")
        keep, query = self._cnf(cnf)
        out = ffi.new("gd_cnf_result *")
        err = ffi.new("gd_error *")
        if part is None:
            status = lib.gd_find_cnf(self._handle(), query, max_clause_freq, max_diff_tokens, out,
                                     _deadline(timeout_ms), err)
        else:
            status = lib.gd_find_cnf_part(self._handle(), query, max_clause_freq, max_diff_tokens, part[0], part[1],
                                          out, _deadline(timeout_ms), err)
        del keep
        try:
            _raise(status, err)
            ptrs_by_shard: list[list[int]] = []
            if with_ptrs and out.ptrs_per_shard != ffi.NULL:
                at = 0
                for s in range(self.num_shards):
                    n = int(out.ptrs_per_shard[s])
                    ptrs_by_shard.append([int(p) for p in out.ptrs[at:at + n]])
                    at += n
        finally:
            lib.gd_free(out.ptrs)
            lib.gd_free(out.ptrs_per_shard)
        return CnfResult(int(out.cnt), bool(out.approx), ptrs_by_shard)

    def count_cnf(self, cnf: Cnf, max_clause_freq: int = 50000, max_diff_tokens: int = 100,
                  timeout_ms: float | None = None) -> CountResult:
        # a count needs no Python list of every match (hundreds of thousands for frequent clauses)
        r = self._find_cnf(cnf, max_clause_freq, max_diff_tokens, timeout_ms, with_ptrs=False)
        return CountResult(r.cnt, r.approx)

    @staticmethod
    def _cnf(cnf: Cnf) -> tuple[list[Any], Any]:
        """Flatten a CNF into the C layout; the first element keeps the buffers alive."""
        if isinstance(cnf, (str, bytes)) or not isinstance(cnf, Sequence) or not cnf:
            raise InvalidQueryError("cnf must be a non-empty list of clauses, each a non-empty list of terms")
        tokens: list[int] = []
        term_start, term_len, clause_start, clause_len = [], [], [], []
        for c, clause in enumerate(cnf):
            if isinstance(clause, (str, bytes)) or not isinstance(clause, Sequence) or not clause:
                raise InvalidQueryError(f"cnf clause {c} must be a non-empty list of terms")
            clause_start.append(len(term_len))
            clause_len.append(len(clause))
            for term in clause:
                if isinstance(term, (str, bytes)) or not isinstance(term, Sequence) or not term:
                    raise InvalidQueryError(f"cnf clause {c} has an empty or malformed term")
                term_start.append(len(tokens))
                term_len.append(len(term))
                tokens.extend(term)
        keep = [_ids(tokens, "cnf tokens"), ffi.new("size_t[]", term_start), ffi.new("size_t[]", term_len),
                ffi.new("size_t[]", clause_start), ffi.new("size_t[]", clause_len)]
        query = ffi.new("gd_cnf *", {"tokens": keep[0], "term_start": keep[1], "term_len": keep[2],
                                     "n_terms": len(term_len), "clause_start": keep[3], "clause_len": keep[4],
                                     "n_clauses": len(clause_len)})
        keep.append(query)
        return keep, query

    # --- documents ---

    def _doc(self, doc: Any) -> Document:
        try:
            meta = ffi.unpack(doc.metadata, doc.metadata_len).decode("utf-8", "replace") \
                if doc.metadata != ffi.NULL else ""
            return Document(int(doc.shard), int(doc.doc_ix), int(doc.doc_len), int(doc.disp_start),
                            int(doc.disp_len), int(doc.needle_offset), list(doc.token_ids[0:doc.disp_len]), meta)
        finally:
            lib.gd_doc_release(doc)

    def get_doc_by_ptr(self, s: int, ptr: int, max_disp_len: int = 1000) -> Document:
        _positive(max_disp_len, "max_disp_len")
        _nonneg(s, "shard")
        _nonneg(ptr, "ptr")
        doc = ffi.new("gd_doc *")
        err = ffi.new("gd_error *")
        _raise(lib.gd_doc_by_ptr(self._handle(), s, ptr, max_disp_len, doc, err), err)
        return self._doc(doc)

    def rank_to_ptr(self, s: int, rank: int) -> int:
        _nonneg(s, "shard")
        _nonneg(rank, "rank")
        ptr = ffi.new("uint64_t *")
        err = ffi.new("gd_error *")
        _raise(lib.gd_rank_to_ptr(self._handle(), s, rank, ptr, err), err)
        return int(ptr[0])

    def get_doc_context(self, s: int, ptr: int, needle_len: int, max_ctx_len: int) -> Document:
        """The needle at ptr (needle_len tokens) with up to max_ctx_len tokens on each side."""
        for name, value in (("shard", s), ("ptr", ptr), ("needle_len", needle_len), ("max_ctx_len", max_ctx_len)):
            _nonneg(value, name)
        doc = ffi.new("gd_doc *")
        err = ffi.new("gd_error *")
        _raise(lib.gd_doc_window(self._handle(), s, ptr, max_ctx_len, needle_len + max_ctx_len, doc, err), err)
        return self._doc(doc)

    def unigram_counts(self, s: int) -> dict[int, int]:
        """Occurrences of every token id in shard s (the separator included), by one pass over its text."""
        self.shard_info(s)
        dtype = {1: "<u1", 2: "<u2", 4: "<u4"}[self.token_width]
        tokens = np.memmap(self._shard_paths[s], dtype=dtype, mode="r")
        if self.token_width <= 2:
            counts = np.bincount(tokens, minlength=self.max_token_id + 1)
            return {int(i): int(counts[i]) for i in np.flatnonzero(counts)}
        ids, counts = np.unique(tokens, return_counts=True)
        return {int(i): int(c) for i, c in zip(ids, counts, strict=True)}

    def get_doc_by_rank(self, s: int, rank: int, max_disp_len: int = 1000) -> Document:
        return self.get_doc_by_ptr(s, self.rank_to_ptr(s, rank), max_disp_len)

    def get_doc_by_ix(self, doc_ix: int, max_disp_len: int = 1000) -> Document:
        _positive(max_disp_len, "max_disp_len")
        _nonneg(doc_ix, "doc_ix")
        doc = ffi.new("gd_doc *")
        err = ffi.new("gd_error *")
        _raise(lib.gd_doc_by_ix(self._handle(), doc_ix, max_disp_len, doc, err), err)
        return self._doc(doc)

    def search_docs(self, ids: Sequence[int], maxnum: int = 1, max_disp_len: int = 1000,
                    seed: int = 0) -> SearchResult:
        """Up to `maxnum` matches drawn uniformly with replacement (deterministic for a seed)."""
        _positive(maxnum, "maxnum")
        _positive(max_disp_len, "max_disp_len")
        found = self.find(ids)
        if found.cnt == 0:
            return SearchResult(0, False, [], [])
        rng = random.Random(seed)
        idxs = [rng.randrange(found.cnt) for _ in range(maxnum)]
        docs = []
        for idx in idxs:
            at = idx
            for s, (lo, hi) in enumerate(found.segment_by_shard):
                if at < hi - lo:
                    docs.append(self.get_doc_by_rank(s, lo + at, max_disp_len))
                    break
                at -= hi - lo
        return SearchResult(found.cnt, False, idxs, docs)

    def search_docs_cnf(self, cnf: Cnf, maxnum: int = 1, max_disp_len: int = 1000, max_clause_freq: int = 50000,
                        max_diff_tokens: int = 100, seed: int = 0, timeout_ms: float | None = None) -> SearchResult:
        _positive(maxnum, "maxnum")
        _positive(max_disp_len, "max_disp_len")
        found = self.find_cnf(cnf, max_clause_freq, max_diff_tokens, timeout_ms)
        flat = [(s, p) for s, ptrs in enumerate(found.ptrs_by_shard) for p in ptrs]
        if found.cnt == 0 or not flat:
            return SearchResult(0, False, [], [])
        rng = random.Random(seed)
        picks = [rng.randrange(len(flat)) for _ in range(maxnum)]
        idxs = [int(i / len(flat) * found.cnt) for i in picks]
        docs = [self.get_doc_by_ptr(*flat[i], max_disp_len) for i in picks]
        return SearchResult(found.cnt, found.approx, idxs, docs)

    # --- beyond n-gram counts ---

    def attribute(self, ids: Sequence[int], min_len: int = 1, max_locations: int = 10,
                  timeout_ms: float | None = None, *, maximal: bool = True) -> list[Span]:
        """Maximal spans of `ids` that occur verbatim in the corpus, with counts and locations.

        With maximal=False: the longest occurring span from every start position.
        """
        _nonneg(min_len, "min_len")
        _nonneg(max_locations, "max_locations")
        q = _ids(ids, "ids")
        out = ffi.new("gd_attribution *")
        err = ffi.new("gd_error *")
        status = lib.gd_attribute(self._handle(), q, len(q), min_len, max_locations, int(maximal), out,
                                  _deadline(timeout_ms), err)
        try:
            _raise(status, err)
            spans = []
            for sp in out.spans[0:out.n_spans]:
                locs = out.locations[sp.first_location:sp.first_location + sp.n_locations]
                spans.append(Span(int(sp.start), int(sp.end), int(sp.count),
                                  [(int(loc.shard), int(loc.ptr)) for loc in locs]))
        finally:
            lib.gd_free(out.spans)
            lib.gd_free(out.locations)
        return spans

    def score(self, ids: Sequence[int], timeout_ms: float | None = None) -> list[TokenScore]:
        """∞-gram probability of every token given all tokens before it, in one pass."""
        q = _ids(ids, "ids")
        out = ffi.new("gd_token_score[]", max(len(q), 1))
        err = ffi.new("gd_error *")
        _raise(lib.gd_score(self._handle(), q, len(q), out, _deadline(timeout_ms), err), err)
        return [TokenScore(int(t.suffix_len), int(t.prompt_cnt), int(t.cont_cnt), float(t.prob))
                for t in out[0:len(q)]]
