"""native.compat.InfiniGramEngine is a drop-in for infini_gram.engine.InfiniGramEngine (2.6.0).

Same constructor, same method and argument names, and for the same calls exactly the same returned
dicts, including the {'error': ...} dicts for invalid input.
"""

from __future__ import annotations

import inspect
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from support.index_factory import write_index

from native import compat

peer_engine = pytest.importorskip("infini_gram.engine", reason="infini-gram 2.6.0 is not installed")

EOS = 0
TAIL = 9  # ends every shard; never in a prompt (see test_engine_peer.py for why)


def corpus(seed: int) -> list[list[list[int]]]:
    rng = random.Random(seed)
    shards = []
    for _ in range(2):
        weights = [30, 20, 12, 8, 5, 3, 2, 1]
        docs = [rng.choices(range(1, 9), weights, k=rng.randint(0, 25)) for _ in range(30)]
        docs[-1] = docs[-1] + [TAIL]
        shards.append(docs)
    return shards


@dataclass
class Both:
    peer: Any
    gx: compat.InfiniGramEngine
    path: Path
    dtype: str


def _both(tmp: pytest.TempPathFactory, width: int, dtype: str, **kw: Any) -> Both:
    path = write_index(tmp.mktemp("gxcompat"), corpus(width), width)
    args: dict[str, Any] = {"eos_token_id": EOS, "vocab_size": 255 if width == 1 else 65535,
                            "token_dtype": dtype, **kw}
    return Both(peer_engine.InfiniGramEngine(str(path), **args), compat.InfiniGramEngine(str(path), **args),
                path, dtype)


@pytest.fixture(scope="module")
def u16(tmp_path_factory: pytest.TempPathFactory) -> Both:
    return _both(tmp_path_factory, 2, "u16")


@pytest.fixture(scope="module")
def u8(tmp_path_factory: pytest.TempPathFactory) -> Both:
    # non-default constructor settings must be honoured the same way
    return _both(tmp_path_factory, 1, "u8", max_support=5, max_clause_freq=20, max_diff_tokens=4, maxnum=2,
                 max_disp_len=6)


def same(b: Both, method: str, *args: Any, **kwargs: Any) -> Any:
    want = getattr(b.peer, method)(*args, **kwargs)
    got = getattr(b.gx, method)(*args, **kwargs)
    assert got == want, (method, args, kwargs)
    assert type(got) is type(want), (method, args, kwargs)
    return want


def _public(cls: type) -> list[str]:
    return [n for n, v in vars(cls).items() if callable(v) and not n.startswith("_")]


def test_same_public_methods() -> None:
    missing = [n for n in _public(peer_engine.InfiniGramEngine) if not hasattr(compat.InfiniGramEngine, n)]
    assert not missing, f"methods of infini-gram's engine missing from compat: {missing}"


def test_same_argument_names() -> None:
    peer_cls, gx_cls = peer_engine.InfiniGramEngine, compat.InfiniGramEngine
    differ = []
    for n in ["__init__", *_public(peer_cls)]:
        if hasattr(gx_cls, n):
            want = list(inspect.signature(getattr(peer_cls, n)).parameters)
            got = list(inspect.signature(getattr(gx_cls, n)).parameters)
            if got != want:
                differ.append((n, got, want))
    assert not differ


@pytest.mark.parametrize("fixture", ["u16", "u8"])
def test_queries_return_the_same_dicts(fixture: str, request: pytest.FixtureRequest) -> None:
    b: Both = request.getfixturevalue(fixture)
    sep = 255 if b.dtype == "u8" else 65535
    queries = [[], [1], [2], [1, 2], [2, 1, 1], [3, 3], [8, 7], [sep], [1, sep], [sep, 2], [7, 7, 7, 7]]
    for q in queries:
        same(b, "find", q)
        same(b, "count", q)
        for cont in (1, 2, sep):
            same(b, "prob", q, cont)
            same(b, "infgram_prob", [TAIL, *q], cont)
        same(b, "ntd", q)
        same(b, "infgram_ntd", [TAIL, *q])
        for ms in (1, 3, 1000):
            same(b, "ntd", q, max_support=ms)
            same(b, "infgram_ntd", [TAIL, *q], ms)
    cnfs = [[[[1]]], [[[1]], [[2]]], [[[1], [2, 1]], [[3]]], [[[8]], [[1, 1]], [[2]]], [[[TAIL]], [[1]]],
            [[[sep]], [[1]]], [[[6]], [[5], [4]]]]
    for cnf in cnfs:
        same(b, "find_cnf", cnf)
        same(b, "count_cnf", cnf)
        for mcf, mdt in ((50000, 3), (10, 100), (3, 2)):
            same(b, "find_cnf", cnf, max_clause_freq=mcf, max_diff_tokens=mdt)
            same(b, "count_cnf", cnf, mcf, mdt)
    same(b, "get_total_doc_cnt")


@pytest.mark.parametrize("fixture", ["u16", "u8"])
def test_documents_return_the_same_dicts(fixture: str, request: pytest.FixtureRequest) -> None:
    b: Both = request.getfixturevalue(fixture)
    width = 1 if b.dtype == "u8" else 2
    seps = {int.from_bytes((b.path / "offset.0").read_bytes()[i:i + 8], "little")
            for i in range(0, (b.path / "offset.0").stat().st_size, 8)}
    tok_cnt = (b.path / "tokenized.0").stat().st_size // width
    for s in (0, 1):
        for rank in range(0, tok_cnt, 7):
            d = b.peer.get_doc_by_rank(s, rank)
            if "error" not in d and d["needle_offset"] > tok_cnt:
                continue  # rank at a separator: the peer's needle offset underflows there
            same(b, "get_doc_by_rank", s, rank)
            same(b, "get_doc_by_rank", s, rank, max_disp_len=3)
    ptrs = [p for p in range(0, tok_cnt * width, 2) if p not in seps][::5]
    for p in ptrs:
        same(b, "get_doc_by_ptr", 0, p)
        same(b, "get_doc_by_ptr", 0, p, 5)
    same(b, "get_docs_by_ptrs", [(0, p) for p in ptrs[:5]], max_disp_len=4)
    for ix in range(0, b.gx.get_total_doc_cnt(), 3):
        same(b, "get_doc_by_ix", ix)
        same(b, "get_doc_by_ix", ix, max_disp_len=2)
    same(b, "get_docs_by_ixs", [0, 5, 31, 59])


def _shape(r: dict[str, Any]) -> tuple[Any, ...]:
    return (sorted(r), r.get("cnt"), r.get("approx"), len(r.get("idxs", [])),
            [sorted(d) for d in r.get("documents", [])])


def test_search_docs_same_shape(u16: Both) -> None:
    # the peer's draws are random: same counts, same keys, as many documents
    for q in ([1], [2, 1], [8]):
        assert _shape(u16.gx.search_docs(q, maxnum=3)) == _shape(u16.peer.search_docs(q, maxnum=3))
    for cnf in ([[[1]], [[2]]], [[[8]], [[3]]]):
        for mcf in (50000, 10):
            assert _shape(u16.gx.search_docs_cnf(cnf, 2, 10, mcf, 5)) == _shape(
                u16.peer.search_docs_cnf(cnf, 2, 10, mcf, 5))


def _bad_calls(b: Both) -> list[tuple[str, tuple[Any, ...], dict[str, Any]]]:
    big = 2**70
    tok = 256 if b.dtype == "u8" else 65536
    calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []
    for ids in ([tok], [-1], [1, "a"], (1, 2), [True], [1.0], "12", None, [big]):
        calls += [("find", (ids,), {}), ("count", (ids,), {}), ("ntd", (ids,), {}),
                  ("infgram_ntd", (ids,), {}), ("prob", (ids, 1), {}), ("infgram_prob", (ids, 1), {}),
                  ("search_docs", (ids,), {})]
    for cont in (tok, -1, "1", None, True):
        calls += [("prob", ([1], cont), {}), ("infgram_prob", ([1], cont), {})]
    for cnf in ([], [[]], [[[]]], [[[1]], []], [[[tok]]], [[1]], [1], None, [[[1], [-1]]], ([[1]],)):
        calls += [("find_cnf", (cnf,), {}), ("count_cnf", (cnf,), {}), ("search_docs_cnf", (cnf,), {})]
    for bad in (0, -1, "5", 1.5):
        calls += [("ntd", ([1],), {"max_support": bad}), ("infgram_ntd", ([1],), {"max_support": bad}),
                  ("find_cnf", ([[[1]]],), {"max_clause_freq": bad}),
                  ("count_cnf", ([[[1]]],), {"max_diff_tokens": bad}),
                  ("search_docs", ([1],), {"maxnum": bad}), ("search_docs", ([1],), {"max_disp_len": bad}),
                  ("search_docs_cnf", ([[[1]]],), {"max_clause_freq": bad}),
                  ("get_doc_by_ix", (0,), {"max_disp_len": bad}),
                  ("get_doc_by_rank", (0, 0), {"max_disp_len": bad}),
                  ("get_doc_by_ptr", (0, 2), {"max_disp_len": bad})]
    for s in (-1, 2, "0", None):
        calls += [("get_doc_by_rank", (s, 0), {}), ("get_doc_by_ptr", (s, 0), {})]
    ds0 = (b.path / "tokenized.0").stat().st_size
    tok0 = ds0 // (1 if b.dtype == "u8" else 2)
    for rank in (-1, tok0, big, "0"):
        calls.append(("get_doc_by_rank", (0, rank), {}))
    for ptr in (-2, ds0, ds0 + 2, 1, 3, big):
        calls.append(("get_doc_by_ptr", (0, ptr), {}))
    for ix in (-1, 60, big, "0"):
        calls.append(("get_doc_by_ix", (ix,), {}))
    calls += [("get_docs_by_ixs", ([0, 60],), {}), ("get_docs_by_ptrs", ([(0, 0), (0, 1)],), {})]
    return calls


@pytest.mark.parametrize("fixture", ["u16", "u8"])
def test_invalid_input_returns_the_same_error_dicts(fixture: str, request: pytest.FixtureRequest) -> None:
    b: Both = request.getfixturevalue(fixture)
    differ = []
    for method, args, kwargs in _bad_calls(b):
        want = getattr(b.peer, method)(*args, **kwargs)
        assert isinstance(want, dict) and "error" in want, (method, args, kwargs, want)  # the case is bad
        try:
            got = getattr(b.gx, method)(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - a raise where the peer returns a dict is a difference
            got = exc
        if got != want:
            differ.append(f"{method}{args}{kwargs}: got {got!r}, infini-gram {want!r}")
    # every difference at once: they are usually the same few messages
    assert not differ, "\n".join(differ)


@pytest.mark.parametrize("kwargs", [{"eos_token_id": 70000}, {"eos_token_id": -1}, {"max_support": 0},
                                    {"max_clause_freq": -1}, {"max_disp_len": 0}, {"token_dtype": "u64"}])
def test_bad_constructor_arguments_are_refused(u16: Both, kwargs: dict[str, Any]) -> None:
    args = {"eos_token_id": EOS, **kwargs}
    ctor: list[Callable[..., Any]] = [peer_engine.InfiniGramEngine, compat.InfiniGramEngine]
    for cls in ctor:
        with pytest.raises((AssertionError, ValueError)):
            cls(str(u16.path), **args)


def test_list_of_index_dirs(u16: Both) -> None:
    peer = peer_engine.InfiniGramEngine([str(u16.path)], eos_token_id=EOS)
    gx = compat.InfiniGramEngine([str(u16.path)], eos_token_id=EOS)
    for q in ([1], [2, 3], []):
        assert gx.count(q) == peer.count(q)
        assert gx.ntd(q) == peer.ntd(q)
