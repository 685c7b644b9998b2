"""Drop-in replacement for `infini_gram.engine.InfiniGramEngine` (2.6.0) on top of gramdex.

Same constructor arguments, method names, argument names and returned dicts, including the
`{'error': ...}` dicts for invalid input, so a user switches by changing one import. Arguments that
only tune infini-gram's internals (prefetch depths, load_to_ram, ...) are accepted and ignored.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from native.engine import Engine
from native.results import Document, NtdResult

Result = dict[str, Any]
_DTYPE_WIDTH = {"u8": 1, "u16": 2, "u32": 4}


def _doc_dict(d: Document) -> Result:
    return {"doc_ix": d.doc_ix, "doc_len": d.doc_len, "disp_len": d.disp_len, "needle_offset": d.needle_offset,
            "metadata": d.metadata, "token_ids": d.token_ids, "blocked": False}


def _ntd_dict(r: NtdResult) -> Result:
    out: Result = {"prompt_cnt": r.prompt_cnt,
                   "result_by_token_id": {t: {"cont_cnt": c, "prob": c / r.prompt_cnt} for t, c in r.counts.items()},
                   "approx": r.approx}
    if r.suffix_len is not None:
        out["suffix_len"] = r.suffix_len
    return out


def _pos_int(value: Any) -> bool:
    return type(value) is int and value > 0


def _nonneg_int(value: Any) -> bool:
    return type(value) is int and value >= 0


class InfiniGramEngine:
    def __init__(self, index_dir: Iterable[str] | str, eos_token_id: int, vocab_size: int = 65535, version: int = 4,
                 token_dtype: str = "u16", load_to_ram: bool = False, ds_prefetch_depth: int = 1,
                 sa_prefetch_depth: int = 3, od_prefetch_depth: int = 3, bow_ids_path: str | None = None,
                 attribution_block_size: int = 512, precompute_unigram_logprobs: bool = False,
                 prev_shards_by_index_dir: dict[str, Any] | None = None, max_support: int = 1000,
                 max_clause_freq: int = 50000, max_diff_tokens: int = 100, maxnum: int = 1,
                 max_disp_len: int = 1000) -> None:
        if token_dtype not in _DTYPE_WIDTH:
            raise ValueError(f"Unsupported token dtype: {token_dtype}")
        if version != 4:
            raise ValueError("gramdex reads version 4 indexes only")
        for name, value in (("max_support", max_support), ("max_clause_freq", max_clause_freq),
                            ("max_diff_tokens", max_diff_tokens), ("maxnum", maxnum),
                            ("max_disp_len", max_disp_len)):
            if not _pos_int(value):
                raise ValueError(f"{name} must be a positive integer")
        if not (type(eos_token_id) is int and 0 <= eos_token_id < vocab_size):
            raise ValueError("eos_token_id must be an integer in [0, vocab_size)")
        dirs = [index_dir] if isinstance(index_dir, str) else list(index_dir)
        reused = {id(e): e for d, e in (prev_shards_by_index_dir or {}).items() if d in dirs}
        if len(reused) == 1 and [str(d) for d in next(iter(reused.values())).index_dirs] == dirs:
            self.engine = next(iter(reused.values()))
        else:
            self.engine = Engine(dirs, token_width=_DTYPE_WIDTH[token_dtype], eos_token_id=eos_token_id,
                                 vocab_size=vocab_size)
        self.token_id_max = 2 ** (8 * _DTYPE_WIDTH[token_dtype]) - 1
        self._bow_ids: set[int] = set()
        if bow_ids_path is not None:
            with open(bow_ids_path, encoding="utf-8") as f:
                self._bow_ids = {int(line) for line in f if line.strip()}
        self._logprobs: dict[int, float] = {}
        if precompute_unigram_logprobs:
            totals: dict[int, int] = {}
            for s in range(self.engine.num_shards):
                for tok, cnt in self.engine.unigram_counts(s).items():
                    totals[tok] = totals.get(tok, 0) + cnt
            self._logprobs = {t: math.log(c) - math.log(self.engine.tok_cnt) for t, c in totals.items() if c}
        self.max_support, self.max_clause_freq, self.max_diff_tokens = max_support, max_clause_freq, max_diff_tokens
        self.maxnum, self.max_disp_len = maxnum, max_disp_len

    # --- validation, with infini-gram's exact messages ---

    def check_query_ids(self, query_ids: Any, allow_empty: bool) -> bool:
        if not (type(query_ids) is list and (allow_empty or len(query_ids) > 0)):
            return False
        return all(type(q) is int and 0 <= q <= self.token_id_max for q in query_ids)

    def check_cnf(self, cnf: Any) -> bool:
        if not (type(cnf) is list and len(cnf) > 0):
            return False
        for clause in cnf:
            if not (type(clause) is list and len(clause) > 0):
                return False
            if not all(self.check_query_ids(term, allow_empty=False) for term in clause):
                return False
        return True

    def _ids_error(self, name: str, non_empty: bool = False) -> Result:
        kind = "a non-empty list" if non_empty else "a list"
        return {"error": f"{name} must be {kind} of integers in range [0, {self.token_id_max}]"}

    def _cnf_error(self) -> Result:
        return {"error": f"cnf must be a non-empty, triply-nested list of integers in range [0, {self.token_id_max}]"}

    def _cnf_params(self, max_clause_freq: int | None, max_diff_tokens: int | None) -> tuple[Any, Any, Result | None]:
        mcf = self.max_clause_freq if max_clause_freq is None else max_clause_freq
        mdt = self.max_diff_tokens if max_diff_tokens is None else max_diff_tokens
        if not _pos_int(mcf):
            return mcf, mdt, {"error": "max_clause_freq must be a positive integer"}
        if not _pos_int(mdt):
            return mcf, mdt, {"error": "max_diff_tokens must be a positive integer"}
        return mcf, mdt, None

    # --- queries ---

    def find(self, input_ids: list[int]) -> Result:
        if not self.check_query_ids(input_ids, allow_empty=True):
            return self._ids_error("input_ids")
        r = self.engine.find(input_ids)
        return {"cnt": r.cnt, "segment_by_shard": r.segment_by_shard}

    def count(self, input_ids: list[int]) -> Result:
        if not self.check_query_ids(input_ids, allow_empty=True):
            return self._ids_error("input_ids")
        return {"count": self.engine.count(input_ids), "approx": False}

    def find_cnf(self, cnf: list[list[list[int]]], max_clause_freq: int | None = None,
                 max_diff_tokens: int | None = None) -> Result:
        mcf, mdt, error = self._cnf_params(max_clause_freq, max_diff_tokens)
        if error:
            return error
        if not self.check_cnf(cnf):
            return self._cnf_error()
        r = self.engine.find_cnf(cnf, mcf, mdt)
        return {"cnt": r.cnt, "approx": r.approx, "ptrs_by_shard": r.ptrs_by_shard}

    def count_cnf(self, cnf: list[list[list[int]]], max_clause_freq: int | None = None,
                  max_diff_tokens: int | None = None) -> Result:
        r = self.find_cnf(cnf, max_clause_freq, max_diff_tokens)
        return r if "error" in r else {"count": r["cnt"], "approx": r["approx"]}

    def _prob_args_error(self, prompt_ids: Any, cont_id: Any) -> Result | None:
        # infini-gram accepts an empty prompt here but words the error as "non-empty"
        if not self.check_query_ids(prompt_ids, allow_empty=True):
            return self._ids_error("prompt_ids", non_empty=True)
        if not (type(cont_id) is int and 0 <= cont_id <= self.token_id_max):
            return {"error": f"cont_id must be an integer in range [0, {self.token_id_max}]"}
        return None

    def prob(self, prompt_ids: list[int], cont_id: int) -> Result:
        error = self._prob_args_error(prompt_ids, cont_id)
        if error:
            return error
        r = self.engine.prob(prompt_ids, cont_id)
        return {"prompt_cnt": r.prompt_cnt, "cont_cnt": r.cont_cnt, "prob": r.prob}

    def infgram_prob(self, prompt_ids: list[int], cont_id: int) -> Result:
        error = self._prob_args_error(prompt_ids, cont_id)
        if error:
            return error
        r = self.engine.infgram_prob(prompt_ids, cont_id)
        return {"prompt_cnt": r.prompt_cnt, "cont_cnt": r.cont_cnt, "prob": r.prob, "suffix_len": r.suffix_len}

    def _ntd_args(self, prompt_ids: Any, max_support: int | None) -> tuple[int, Result | None]:
        support = self.max_support if max_support is None else max_support
        if not _pos_int(support):
            return support, {"error": "max_support must be a positive integer"}
        if not self.check_query_ids(prompt_ids, allow_empty=True):
            return support, self._ids_error("prompt_ids")
        return support, None

    def ntd(self, prompt_ids: list[int], max_support: int | None = None) -> Result:
        support, error = self._ntd_args(prompt_ids, max_support)
        return error or _ntd_dict(self.engine.ntd(prompt_ids, support))

    def infgram_ntd(self, prompt_ids: list[int], max_support: int | None = None) -> Result:
        support, error = self._ntd_args(prompt_ids, max_support)
        return error or _ntd_dict(self.engine.infgram_ntd(prompt_ids, support))

    def _disp_args(self, maxnum: int | None, max_disp_len: int | None) -> tuple[Any, Any, Result | None]:
        maxnum = self.maxnum if maxnum is None else maxnum
        max_disp_len = self.max_disp_len if max_disp_len is None else max_disp_len
        if not _pos_int(maxnum):
            return maxnum, max_disp_len, {"error": "maxnum must be a positive integer"}
        if not _pos_int(max_disp_len):
            return maxnum, max_disp_len, {"error": "max_disp_len must be a positive integer"}
        return maxnum, max_disp_len, None

    def search_docs(self, input_ids: list[int], maxnum: int | None = None, max_disp_len: int | None = None) -> Result:
        maxnum, max_disp_len, error = self._disp_args(maxnum, max_disp_len)
        if error:
            return error
        if not self.check_query_ids(input_ids, allow_empty=True):
            return self._ids_error("input_ids")
        r = self.engine.search_docs(input_ids, maxnum, max_disp_len)
        return {"cnt": r.cnt, "approx": r.approx, "idxs": r.idxs, "documents": [_doc_dict(d) for d in r.documents]}

    def search_docs_cnf(self, cnf: list[list[list[int]]], maxnum: int | None = None,
                        max_disp_len: int | None = None, max_clause_freq: int | None = None,
                        max_diff_tokens: int | None = None) -> Result:
        maxnum, max_disp_len, error = self._disp_args(maxnum, max_disp_len)
        if error:
            return error
        mcf, mdt, error = self._cnf_params(max_clause_freq, max_diff_tokens)
        if error:
            return error
        if not self.check_cnf(cnf):
            return self._cnf_error()
        r = self.engine.search_docs_cnf(cnf, maxnum, max_disp_len, mcf, mdt)
        return {"cnt": r.cnt, "approx": r.approx, "idxs": r.idxs, "documents": [_doc_dict(d) for d in r.documents]}

    # --- documents ---

    def _shard_error(self, s: Any) -> Result | None:
        if not (type(s) is int and 0 <= s < self.engine.num_shards):
            return {"error": f"s must be an integer in range [0, {self.engine.num_shards})"}
        return None

    def get_doc_by_rank(self, s: int, rank: int, max_disp_len: int | None = None) -> Result:
        _, max_disp_len, error = self._disp_args(1, max_disp_len)
        error = error or self._shard_error(s)
        if error:
            return error
        tok_cnt = self.engine.shards[s].tok_cnt
        if not (type(rank) is int and 0 <= rank < tok_cnt):
            return {"error": f"ptr must be an integer in range [0, {tok_cnt})"}
        return _doc_dict(self.engine.get_doc_by_rank(s, rank, max_disp_len))

    def get_docs_by_ranks(self, list_of_s_and_rank: list[tuple[int, int]],
                          max_disp_len: int | None = None) -> Result | list[Result]:
        docs = [self.get_doc_by_rank(s, rank, max_disp_len) for s, rank in list_of_s_and_rank]
        return next((d for d in docs if "error" in d), docs)

    def get_doc_by_ptr(self, s: int, ptr: int, max_disp_len: int | None = None) -> Result:
        _, max_disp_len, error = self._disp_args(1, max_disp_len)
        error = error or self._shard_error(s)
        if error:
            return error
        error = self._ptr_error(s, ptr)
        return error or _doc_dict(self.engine.get_doc_by_ptr(s, ptr, max_disp_len))

    def _ptr_error(self, s: int, ptr: Any) -> Result | None:
        # infini-gram 2.6.0 requires even pointers whatever the token width; a drop-in keeps that
        ds_size = self.engine.shards[s].ds_size
        if not (type(ptr) is int and 0 <= ptr < ds_size and ptr % 2 == 0 and ptr % self.engine.token_width == 0):
            return {"error": f"ptr must be an even integer in range [0, {ds_size})"}
        return None

    def get_docs_by_ptrs(self, list_of_s_and_ptr: list[tuple[int, int]],
                         max_disp_len: int | None = None) -> Result | list[Result]:
        docs = [self.get_doc_by_ptr(s, ptr, max_disp_len) for s, ptr in list_of_s_and_ptr]
        return next((d for d in docs if "error" in d), docs)

    def get_doc_by_ix(self, doc_ix: int, max_disp_len: int | None = None) -> Result:
        _, max_disp_len, error = self._disp_args(1, max_disp_len)
        if error:
            return error
        if not (type(doc_ix) is int and 0 <= doc_ix < self.engine.doc_cnt):
            return {"error": f"doc_ix must be an integer in range [0, {self.engine.doc_cnt})"}
        return _doc_dict(self.engine.get_doc_by_ix(doc_ix, max_disp_len))

    def get_docs_by_ixs(self, list_of_doc_ix: list[int], max_disp_len: int | None = None) -> Result | list[Result]:
        docs = [self.get_doc_by_ix(ix, max_disp_len) for ix in list_of_doc_ix]
        return next((d for d in docs if "error" in d), docs)

    def _ctx_error(self, needle_len: Any, max_ctx_len: Any) -> Result | None:
        if not _nonneg_int(needle_len):
            return {"error": "needle_len must be a non-negative integer"}
        if not _nonneg_int(max_ctx_len):
            return {"error": "max_ctx_len must be a non-negative integer"}
        return None

    def get_doc_by_ptr_2(self, s: int, ptr: int, needle_len: int, max_ctx_len: int) -> Result:
        error = self._ctx_error(needle_len, max_ctx_len) or self._shard_error(s)
        error = error or self._ptr_error(s, ptr)
        return error or _doc_dict(self.engine.get_doc_context(s, ptr, needle_len, max_ctx_len))

    def get_docs_by_ptrs_2(self, requests: list[tuple[int, int, int, int]]) -> Result | list[Result]:
        docs = [self.get_doc_by_ptr_2(*r) for r in requests]
        return next((d for d in docs if "error" in d), docs)

    def get_doc_by_rank_2(self, s: int, rank: int, needle_len: int, max_ctx_len: int) -> Result:
        error = self._ctx_error(needle_len, max_ctx_len) or self._shard_error(s)
        if error:
            return error
        tok_cnt = self.engine.shards[s].tok_cnt
        if not (type(rank) is int and 0 <= rank < tok_cnt):
            return {"error": f"ptr must be an integer in range [0, {tok_cnt})"}
        ptr = self.engine.rank_to_ptr(s, rank)
        return _doc_dict(self.engine.get_doc_context(s, ptr, needle_len, max_ctx_len))

    def get_docs_by_ranks_2(self, requests: list[tuple[int, int, int, int]]) -> Result | list[Result]:
        docs = [self.get_doc_by_rank_2(*r) for r in requests]
        return next((d for d in docs if "error" in d), docs)

    def get_doc_by_ix_2(self, doc_ix: int, max_ctx_len: int) -> Result:
        if not _nonneg_int(max_ctx_len):
            return {"error": "max_ctx_len must be a non-negative integer"}
        if not (type(doc_ix) is int and 0 <= doc_ix < self.engine.doc_cnt):
            return {"error": f"doc_ix must be an integer in range [0, {self.engine.doc_cnt})"}
        if max_ctx_len == 0:
            doc = self.engine.get_doc_by_ix(doc_ix, 1)
            return {**_doc_dict(doc), "disp_len": 0, "token_ids": []}
        return _doc_dict(self.engine.get_doc_by_ix(doc_ix, max_ctx_len))

    def get_docs_by_ixs_2(self, requests: list[tuple[int, int]]) -> Result | list[Result]:
        docs = [self.get_doc_by_ix_2(*r) for r in requests]
        return next((d for d in docs if "error" in d), docs)

    def compute_unigram_counts(self, s: int) -> dict[int, int]:
        """Count of every id below vocab_size, plus the separator's, in shard s."""
        counts = self.engine.unigram_counts(s)
        sep = self.token_id_max
        return {**{i: counts.get(i, 0) for i in range(self.engine.vocab_size)}, sep: counts.get(sep, 0)}

    def get_new_shards_by_index_dir(self) -> dict[str, Engine]:
        """The mapped index, to pass as prev_shards_by_index_dir so a new engine reuses it."""
        return {str(d): self.engine for d in self.engine.index_dirs}

    def attribute(self, input_ids: list[int], delim_ids: Iterable[int], min_len: int, max_cnt: int,
                  enforce_bow: bool) -> Result:
        """Spans of input_ids found verbatim: each start's longest match, cut after the first delimiter
        and (with enforce_bow) starting and ending at word boundaries; kept when it reaches further
        right than the previous kept span, is at least min_len long and occurs at most max_cnt times."""
        if not self.check_query_ids(input_ids, allow_empty=True):
            return self._ids_error("input_ids")
        delim_ids = list(delim_ids) if not isinstance(delim_ids, list) else delim_ids
        if not self.check_query_ids(delim_ids, allow_empty=True):
            return self._ids_error("delim_ids")
        if not _nonneg_int(min_len):
            return {"error": "min_len must be a non-negative integer"}
        if not _pos_int(max_cnt):
            return {"error": "max_cnt must be a positive integer"}
        if type(enforce_bow) is not bool:
            return {"error": "enforce_bow must be a boolean"}
        delims, n = set(delim_ids), len(input_ids)
        longest = {sp.start: sp.end for sp in self.engine.attribute(input_ids, 1, 0, maximal=False)}
        spans, last_r = [], 0
        for left in range(n):
            right = longest.get(left, left)
            cut = next((i + 1 for i in range(left, right) if input_ids[i] in delims), right)
            if enforce_bow:
                if input_ids[left] not in self._bow_ids:
                    continue
                while cut > left and cut < n and input_ids[cut] not in self._bow_ids:
                    cut -= 1
            if cut <= last_r or cut - left < min_len or cut == left:
                continue
            found = self.engine.find(input_ids[left:cut])
            if found.cnt > max_cnt:
                continue
            last_r = cut
            docs = [{"s": s, "ptr": self.engine.rank_to_ptr(s, rank)}
                    for s, (lo, hi) in enumerate(found.segment_by_shard) for rank in range(lo, hi)]
            spans.append({"l": left, "r": cut, "length": cut - left, "count": found.cnt,
                          "unigram_logprob_sum": sum(self._unigram_logprob(t) for t in input_ids[left:cut]),
                          "docs": docs})
        return {"spans": spans}

    def _unigram_logprob(self, token: int) -> float:
        return self._logprobs.get(token, -10000.0)

    def get_total_doc_cnt(self) -> int:
        return self.engine.doc_cnt

    def creativity(self, input_ids: list[int]) -> Result:
        """rs[l] = l + length of the longest prefix of input_ids[l:] that occurs in the corpus."""
        if not self.check_query_ids(input_ids, allow_empty=True):
            return self._ids_error("input_ids")
        longest = [0] * len(input_ids)
        for span in self.engine.attribute(input_ids, min_len=1, max_locations=0, maximal=False):
            longest[span.start] = span.end
        return {"rs": [max(r, i) for i, r in enumerate(longest)]}
