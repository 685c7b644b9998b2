"""Drop-in replacement for `infini_gram.engine.InfiniGramEngine` (2.6.0) on top of gramdex.

Same constructor arguments, method names, argument names and returned dicts, including the
`{'error': ...}` dicts for invalid input, so a user switches by changing one import. Arguments that
only tune infini-gram's internals (prefetch depths, load_to_ram, ...) are accepted and ignored.
"""

from __future__ import annotations

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
        self.engine = Engine(dirs, token_width=_DTYPE_WIDTH[token_dtype], eos_token_id=eos_token_id,
                             vocab_size=vocab_size)
        self.token_id_max = 2 ** (8 * _DTYPE_WIDTH[token_dtype]) - 1
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
        if not self.check_query_ids(prompt_ids, allow_empty=True):
            return self._ids_error("prompt_ids")
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
        ds_size = self.engine.shards[s].ds_size
        if not (type(ptr) is int and 0 <= ptr < ds_size and ptr % self.engine.token_width == 0):
            return {"error": f"ptr must be an even integer in range [0, {ds_size})"}
        return _doc_dict(self.engine.get_doc_by_ptr(s, ptr, max_disp_len))

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
