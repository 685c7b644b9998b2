"""Bad input gives a typed exception whose message names the offending file or field; never a crash.

Cases that could crash the process (corrupted table/offset entries) run in a child interpreter, so a
segfault or abort shows up as a failed test instead of killing the whole run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import native
from native import EngineIOError, GramdexError, IndexFormatError, InvalidQueryError

SHARDS = [[[1, 2, 3], [2, 3, 4, 5], []], [[5, 6], [1, 2]]]
OPEN_ERRORS = (IndexFormatError, EngineIOError)


@pytest.fixture
def u16_index(make_index: Callable[..., Path]) -> Path:
    return make_index(SHARDS, 2)


@pytest.fixture
def eng(u16_index: Path) -> native.Engine:
    return native.Engine(u16_index, token_width=2, eos_token_id=0)


def raises(exc: type[BaseException] | tuple[type[BaseException], ...], fn: Callable[[], Any],
           *names: str) -> str:
    """fn() raises exc and its message mentions each of names (a field or a file)."""
    with pytest.raises(exc) as info:
        fn()
    msg = str(info.value)
    for name in names:
        assert name in msg, f"message {msg!r} does not name {name!r}"
    return msg


def test_invalid_query_error_is_a_value_error() -> None:
    assert issubclass(InvalidQueryError, ValueError) and issubclass(InvalidQueryError, GramdexError)
    assert issubclass(IndexFormatError, GramdexError)


# --- token ids ----------------------------------------------------------------------------------


@pytest.mark.parametrize("width,bad", [(1, 256), (2, 65536), (4, 2**32), (2, -1), (4, -1), (1, 2**70)])
def test_token_id_out_of_range_for_width(make_index: Callable[..., Path], width: int, bad: int) -> None:
    e = native.Engine(make_index(SHARDS, width), token_width=width, eos_token_id=0)
    for call in (lambda: e.find([1, bad]), lambda: e.count([bad]), lambda: e.count_many([[1], [bad]]),
                 lambda: e.prob([1, bad], 2), lambda: e.prob([1], bad), lambda: e.ntd([bad]),
                 lambda: e.infgram_prob([bad], 1), lambda: e.infgram_ntd([1, bad]),
                 lambda: e.find_cnf([[[1]], [[bad]]]), lambda: e.count_cnf([[[bad, 1]]]),
                 lambda: e.search_docs([bad]), lambda: e.search_docs_cnf([[[bad]]]),
                 lambda: e.attribute([1, bad]), lambda: e.score([1, bad])):
        msg = raises(InvalidQueryError, call)
        # names the offending value or the field that held it
        assert any(w in msg for w in (str(bad), "token", "ids", "prompt", "cont", "cnf", "queries")), msg
    # the largest id of the width is valid: it is the separator value
    assert e.count([(1 << (8 * width)) - 1]) == 5


def test_non_integer_tokens(eng: native.Engine) -> None:
    for bad in (["a"], [1.5], [None], [[1]]):
        with pytest.raises((InvalidQueryError, TypeError)):
            eng.count(bad)  # type: ignore[list-item]


# --- parameters ---------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [0, -1, 2**64, 10**30])
def test_bad_positive_parameters(eng: native.Engine, bad: int) -> None:
    raises(InvalidQueryError, lambda: eng.ntd([1], max_support=bad), "max_support")
    raises(InvalidQueryError, lambda: eng.infgram_ntd([1], max_support=bad), "max_support")
    raises(InvalidQueryError, lambda: eng.find_cnf([[[1]]], max_clause_freq=bad), "max_clause_freq")
    raises(InvalidQueryError, lambda: eng.count_cnf([[[1]]], max_diff_tokens=bad), "max_diff_tokens")
    raises(InvalidQueryError, lambda: eng.search_docs([1], maxnum=bad), "maxnum")
    raises(InvalidQueryError, lambda: eng.search_docs([1], max_disp_len=bad), "max_disp_len")
    raises(InvalidQueryError, lambda: eng.search_docs_cnf([[[1]]], maxnum=bad), "maxnum")
    raises(InvalidQueryError, lambda: eng.get_doc_by_ix(0, max_disp_len=bad), "max_disp_len")
    raises(InvalidQueryError, lambda: eng.get_doc_by_rank(0, 0, max_disp_len=bad), "max_disp_len")


def test_bad_shard_rank_ptr_doc_ix(eng: native.Engine) -> None:
    tok0 = eng.shard_info(0).tok_cnt
    ds0 = eng.shard_info(0).ds_size
    for s in (-1, 2, 2**64):
        raises(InvalidQueryError, lambda s=s: eng.shard_info(s), str(s))
        raises(InvalidQueryError, lambda s=s: eng.get_doc_by_rank(s, 0), str(s))
        raises(InvalidQueryError, lambda s=s: eng.get_doc_by_ptr(s, 0), str(s))
    for rank in (-1, tok0, 2**64):
        raises(InvalidQueryError, lambda rank=rank: eng.get_doc_by_rank(0, rank), str(rank))
    for ptr in (-2, ds0, ds0 + 2, 2**64, 3):  # 3: not a multiple of the token width
        raises(InvalidQueryError, lambda ptr=ptr: eng.get_doc_by_ptr(0, ptr), str(ptr))
    for ix in (-1, eng.doc_cnt, 2**64):
        raises(InvalidQueryError, lambda ix=ix: eng.get_doc_by_ix(ix), str(ix))
    for timeout in (0, -5):
        raises(InvalidQueryError, lambda timeout=timeout: eng.ntd([1], timeout_ms=timeout), "timeout_ms")
    raises(InvalidQueryError, lambda: eng.attribute([1, 2], min_len=-1), "min_len")
    raises(InvalidQueryError, lambda: eng.attribute([1, 2], max_locations=-1), "max_locations")
    # the engine still answers after all of that
    assert eng.count([2, 3]) == 2


def test_empty_cnf(eng: native.Engine) -> None:
    for bad in ([], [[]], [[[1]], []], [[[]]], [[[1], []]]):
        raises(InvalidQueryError, lambda bad=bad: eng.find_cnf(bad), "cnf")
        raises(InvalidQueryError, lambda bad=bad: eng.count_cnf(bad), "cnf")
        raises(InvalidQueryError, lambda bad=bad: eng.search_docs_cnf(bad), "cnf")


# --- index files --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["tokenized.0", "table.0", "offset.0", "table.1", "offset.1"])
def test_missing_shard_file(u16_index: Path, name: str) -> None:
    (u16_index / name).unlink()
    raises(OPEN_ERRORS, lambda: native.Engine(u16_index, token_width=2, eos_token_id=0), name)


def test_metadata_without_metaoff(u16_index: Path) -> None:
    # half of the optional pair: refuse (or ignore) it, but never read metadata without offsets
    (u16_index / "metaoff.0").unlink()
    try:
        e = native.Engine(u16_index, token_width=2, eos_token_id=0)
    except OPEN_ERRORS as exc:
        assert "metaoff.0" in str(exc)
    else:
        assert e.get_doc_by_ix(0).metadata == ""
        assert not e.shard_info(0).has_metadata


# A cut of whole entries leaves the file well-formed on its own; the file it then disagrees with
# (the table for one token less, metaoff for one document less) may be the one named.
@pytest.mark.parametrize("name,cut,named", [
    ("table.0", 1, "table.0"), ("table.0", 4, "table.0"), ("tokenized.0", 1, "tokenized.0"),
    ("tokenized.1", 2, "tokenized.1|table.1"), ("offset.0", 3, "offset.0"),
    ("offset.1", 8, "offset.1|metaoff.1"),
    ("metaoff.0", 5, "metaoff.0"), ("metaoff.1", 8, "metaoff.1"), ("metadata.0", 200, "metadata.0|metaoff.0"),
])
def test_truncated_file(u16_index: Path, name: str, cut: int, named: str) -> None:
    path = u16_index / name
    data = path.read_bytes()
    path.write_bytes(data[:len(data) - cut])
    msg = raises(OPEN_ERRORS, lambda: native.Engine(u16_index, token_width=2, eos_token_id=0))
    assert any(n in msg for n in named.split("|")), msg


def test_width_that_does_not_fit_the_files(u16_index: Path) -> None:
    # 7 tokens of shard 0 = 14 bytes: not a whole number of u32 tokens
    raises(OPEN_ERRORS, lambda: native.Engine(u16_index, token_width=4, eos_token_id=0), "tokenized.0")
    with pytest.raises((InvalidQueryError, IndexFormatError)) as info:
        native.Engine(u16_index, token_width=3, eos_token_id=0)
    assert "width" in str(info.value)


def test_directory_that_is_not_an_index(tmp_path_factory: pytest.TempPathFactory) -> None:
    empty = tmp_path_factory.mktemp("gxempty")
    raises(OPEN_ERRORS, lambda: native.Engine(empty, token_width=2, eos_token_id=0), str(empty))
    junk = tmp_path_factory.mktemp("gxjunk")
    (junk / "README.txt").write_text("not an index\n")
    (junk / "data.jsonl").write_text(json.dumps({"text": "x"}) + "\n")
    raises(OPEN_ERRORS, lambda: native.Engine(junk, token_width=2, eos_token_id=0), str(junk))
    missing = junk / "does-not-exist"
    raises(OPEN_ERRORS, lambda: native.Engine(missing, token_width=2, eos_token_id=0), str(missing))
    a_file = junk / "README.txt"
    raises(OPEN_ERRORS, lambda: native.Engine(a_file, token_width=2, eos_token_id=0), str(a_file))


def test_bad_manifest(u16_index: Path) -> None:
    (u16_index / "index.json").write_text("{not json")
    raises(IndexFormatError, lambda: native.Engine(u16_index, token_width=2, eos_token_id=0), "index.json")


# --- corrupted contents: run in a child process ---------------------------------------------------

_CHILD = textwrap.dedent("""
    import json, sys
    import native
    out = {"open": None, "errors": [], "ok": 0}
    try:
        e = native.Engine(sys.argv[1], token_width=2, eos_token_id=0)
    except native.GramdexError as exc:
        out["open"] = [type(exc).__name__, str(exc)]
        print(json.dumps(out)); sys.exit(0)
    calls = [lambda: e.count([t]) for t in range(8)] + [lambda: e.count([2, 3]), lambda: e.ntd([]),
             lambda: e.ntd([2]), lambda: e.infgram_ntd([9, 2]), lambda: e.find_cnf([[[2]], [[3]]]),
             lambda: e.search_docs([2], maxnum=5), lambda: e.attribute([1, 2, 3, 4, 5]),
             lambda: e.score([1, 2, 3])]
    calls += [(lambda s=s, r=r: e.get_doc_by_rank(s, r)) for s in range(e.num_shards)
              for r in range(e.shard_info(s).tok_cnt)]
    calls += [(lambda i=i: e.get_doc_by_ix(i)) for i in range(e.doc_cnt)]
    for call in calls:
        try:
            call(); out["ok"] += 1
        except native.GramdexError as exc:
            out["errors"].append([type(exc).__name__, str(exc)])
    print(json.dumps(out))
""")


def _run_child(index: Path) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, "-c", _CHILD, str(index)], capture_output=True, text=True,
                          timeout=60, env={**os.environ, "PYTHONFAULTHANDLER": "1"})
    assert proc.returncode == 0, f"engine crashed (rc {proc.returncode}):\n{proc.stderr[-2000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _patch(path: Path, offset: int, value: bytes) -> None:
    data = bytearray(path.read_bytes())
    data[offset:offset + len(value)] = value
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("entry", ["past_end", "unaligned", "huge"])
def test_corrupted_table_entry(u16_index: Path, entry: str) -> None:
    table = u16_index / "table.0"
    tok_cnt = (u16_index / "tokenized.0").stat().st_size // 2
    ptr_size = table.stat().st_size // tok_cnt
    value = {"past_end": tok_cnt * 2 + 2, "unaligned": 3, "huge": (1 << (8 * ptr_size)) - 1}[entry]
    _patch(table, 3 * ptr_size, value.to_bytes(ptr_size, "little"))
    out = _run_child(u16_index)
    failures = ([out["open"]] if out["open"] else []) + out["errors"]
    # rank 3's document cannot be fetched correctly, so something must have been refused ...
    assert failures, f"a corrupted table entry went unnoticed: {out}"
    # ... with the right type, naming the file
    for kind, msg in failures:
        assert kind == "IndexFormatError" and "table.0" in msg, (kind, msg)


@pytest.mark.parametrize("entry", ["past_end", "decreasing"])
def test_corrupted_offset_entry(u16_index: Path, entry: str) -> None:
    ds_size = (u16_index / "tokenized.0").stat().st_size
    value = ds_size + 100 if entry == "past_end" else 0
    _patch(u16_index / "offset.0", 8 * 2, value.to_bytes(8, "little"))  # the third document's start
    out = _run_child(u16_index)
    failures = ([out["open"]] if out["open"] else []) + out["errors"]
    assert failures, f"a corrupted offset entry went unnoticed: {out}"
    for kind, msg in failures:
        assert kind == "IndexFormatError" and "offset.0" in msg, (kind, msg)
