"""The C suffix-array builder (native/src/sa_build.c) against a brute-force sort and infini-gram's indexer."""

from __future__ import annotations

import importlib.util
import random
from collections.abc import Callable
from pathlib import Path

import pytest

from native import suffix_array as sa
from native.errors import EngineIOError, IndexFormatError, InvalidQueryError

REPO = Path(__file__).resolve().parents[1]


def peer_builder() -> Callable[..., None]:
    spec = importlib.util.spec_from_file_location("_sa_test_peer", REPO / "bench" / "peer.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.peer_build_table  # type: ignore[no-any-return]


@pytest.fixture
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # infini-gram-style tools match file roles by substring of the path: keep test names out of it
    return tmp_path_factory.mktemp("sa")


def encode(tokens: list[int], width: int) -> bytes:
    return b"".join(t.to_bytes(width, "little") for t in tokens)


def brute(data: bytes, width: int) -> list[int]:
    return sorted(range(0, len(data), width), key=lambda p: data[p:])


def read_table(path: Path, ds_size: int) -> list[int]:
    ps = sa.ptr_size(ds_size)
    raw = path.read_bytes()
    assert len(raw) == ps * (ds_size and len(raw) // ps)
    return [int.from_bytes(raw[i:i + ps], "little") for i in range(0, len(raw), ps)]


def random_tokens(rng: random.Random, width: int, n: int) -> list[int]:
    top = (1 << (8 * width)) - 1
    # few distinct values so suffixes share long prefixes; 0xFF bytes in both halves of u16/u32
    pool = sorted({0, 1, 0xFF, top, 0x100 & top, 0x1FF & top, 0xFF00 & top, rng.randrange(top + 1)})
    pool = pool[: rng.randint(1, len(pool))]
    toks = [rng.choice(pool) for _ in range(n)]
    if rng.random() < 0.3:  # long repeats: exercises the part-boundary re-sort
        unit = toks[: rng.randint(1, 8)]
        toks = (unit * (n // len(unit) + 1))[:n]
    return toks


def test_ptr_size_matches_infini_gram_ratio() -> None:
    assert [sa.ptr_size(s) for s in (1, 2, 255, 256, 257, 65536, 65537, 1 << 32, (1 << 32) + 1)] == \
        [1, 1, 1, 1, 2, 2, 3, 4, 5]


@pytest.mark.parametrize("width", [1, 2, 4])
def test_huge_shards_are_cut_into_parts_below_2_31_tokens(width: int) -> None:
    # SA-IS keeps a flag in each index's top bit: a part plus its overlap plus the sentinel must
    # stay below 2^31 tokens, however large the shard and whatever part size is asked for
    for tokens in (2**31 - 2**17, 2**31 - 2**17 + 1, 2**31, 3 * 2**31):
        for asked in (0, 2**32):
            p = sa.plan(tokens * width, width, max_part_tokens=asked)
            assert p.part_tokens + p.overlap_tokens + 1 < 2**31
            assert p.n_parts == -(-tokens // p.part_tokens)
            assert p.n_parts == (1 if tokens <= 2**31 - 2**17 else 2 if tokens <= 2**32 else 4)


@pytest.mark.parametrize("width", [1, 2, 4])
def test_random_corpora_match_brute_force_in_memory_and_in_parts(work: Path, width: int) -> None:
    rng = random.Random(width)
    for trial in range(20):
        data = encode(random_tokens(rng, width, rng.randint(1, 200)), width)
        tok = work / "tok"
        tok.write_bytes(data)
        expected = brute(data, width)
        for part, threads in ((0, 1), (2, 1), (5, 2), (31, 2)):
            out = work / f"sa{trial}.{part}"
            sa.build(tok, out, width, max_part_tokens=part, threads=threads)
            assert read_table(out, len(data)) == expected, (trial, part, data.hex())
            sa.verify(tok, out, width)
        assert not list(work.glob("*.parts")), "part files are removed"


@pytest.mark.parametrize("width", [1, 2, 4])
def test_table_is_byte_identical_to_infini_gram(work: Path, width: int) -> None:
    peer = peer_builder()
    rng = random.Random(100 + width)
    for trial in range(6):
        toks = random_tokens(rng, width, rng.randint(50, 2000))
        if width == 4:
            # infini-gram's u32 indexer allocates 8 bytes per possible symbol up to the largest
            # big-endian token value (34 GB with a separator): keep the first byte small
            toks = [t & 0x0100FFFF & ~0xFF | (t & 1) for t in toks]
        data = encode(toks, width)
        tok = work / "tok"
        tok.write_bytes(data)
        sa.build(tok, work / "ours", width)
        peer(tok, work / "peer", width, cpus=1)
        assert (work / "ours").read_bytes() == (work / "peer").read_bytes(), (trial, width)


def test_memory_budget_path_gives_identical_table(work: Path) -> None:
    rng = random.Random(7)
    words = [rng.randrange(0, 2000) for _ in range(300)]
    toks: list[int] = []
    for _ in range(400):  # documents drawn from a small vocabulary, some repeated verbatim
        doc = [rng.choice(words) for _ in range(rng.randint(1, 60))]
        toks += [0xFFFF] + doc + ([0xFFFF] + doc if rng.random() < 0.2 else [])
    data = encode(toks, 2)
    tok = work / "tok"
    tok.write_bytes(data)
    sa.build(tok, work / "whole", 2)
    budget = 10 * 4000  # ~4000 tokens per part at 10 bytes per token
    plan = sa.plan(len(data), 2, memory_budget=budget)
    assert plan.n_parts > 1
    sa.build(tok, work / "parts", 2, memory_budget=budget, threads=2, tmp_dir=work / "tmp-parts")
    assert (work / "parts").read_bytes() == (work / "whole").read_bytes()
    assert read_table(work / "whole", len(data)) == brute(data, 2)


def test_progress_is_reported(work: Path) -> None:
    data = encode(random_tokens(random.Random(3), 2, 5000), 2)
    (work / "tok").write_bytes(data)
    seen: list[tuple[str, int, int]] = []
    sa.build(work / "tok", work / "out", 2, max_part_tokens=500, progress=lambda *a: seen.append(a),
             poll_s=0.0001)
    assert all(phase in sa.PHASE_NAMES.values() for phase, _, _ in seen)


def test_verify_catches_corruption(work: Path) -> None:
    data = encode(random_tokens(random.Random(5), 2, 300), 2)
    tok, table = work / "tok", work / "out"
    tok.write_bytes(data)
    sa.build(tok, table, 2)
    good = bytearray(table.read_bytes())
    ps = sa.ptr_size(len(data))
    swapped = bytearray(good)
    swapped[10 * ps:11 * ps], swapped[200 * ps:201 * ps] = good[200 * ps:201 * ps], good[10 * ps:11 * ps]
    table.write_bytes(bytes(swapped))
    with pytest.raises(IndexFormatError, match="out of order"):
        sa.verify(tok, table, 2)
    dup = bytearray(good)
    dup[11 * ps:12 * ps] = good[10 * ps:11 * ps]
    table.write_bytes(bytes(dup))
    with pytest.raises(IndexFormatError):
        sa.verify(tok, table, 2)
    odd = bytearray(good)
    odd[0:ps] = (1).to_bytes(ps, "little")
    table.write_bytes(bytes(odd))
    with pytest.raises(IndexFormatError, match="not a token offset"):
        sa.verify(tok, table, 2)
    table.write_bytes(bytes(good[:-1]))
    with pytest.raises(IndexFormatError, match="size"):
        sa.verify(tok, table, 2)
    table.write_bytes(bytes(good))
    sa.verify(tok, table, 2, stride=7)


def test_errors_are_typed_and_leave_no_table(work: Path) -> None:
    with pytest.raises(EngineIOError, match="cannot open"):
        sa.build(work / "missing", work / "out", 2)
    (work / "odd").write_bytes(b"\x01\x02\x03")
    with pytest.raises(IndexFormatError, match="multiple of 2"):
        sa.build(work / "odd", work / "out", 2)
    with pytest.raises(InvalidQueryError, match="token width"):
        sa.build(work / "odd", work / "out", 3)
    (work / "empty").write_bytes(b"")
    with pytest.raises(IndexFormatError):
        sa.build(work / "empty", work / "out", 1)
    with pytest.raises(EngineIOError):
        sa.build(work / "odd", work / "no-such-dir" / "out", 1)
    assert not (work / "out").exists()


@pytest.mark.parametrize("repetitive", [False, True])
def test_parallel_in_memory_path(work: Path, repetitive: bool) -> None:
    """Threads sort slices and merge ranges in parallel; very repetitive text falls back to one pass."""
    rng = random.Random(11)
    if repetitive:
        unit = [rng.randrange(0, 500) for _ in range(37)]
        toks = (unit * 5000)[:150_000]
        toks[75_000] = 0xFFFF  # one difference in the middle
    else:
        words = [[rng.randrange(0, 3000) for _ in range(rng.randint(1, 4))] for _ in range(800)]
        toks = []
        while len(toks) < 150_000:
            toks += [0xFFFF] + [t for _ in range(rng.randint(5, 80)) for t in rng.choice(words)]
    data = encode(toks, 2)
    tok = work / "tok"
    tok.write_bytes(data)
    sa.build(tok, work / "one", 2, threads=1)
    for threads in (2, 3):
        sa.build(tok, work / "par", 2, threads=threads)
        assert (work / "par").read_bytes() == (work / "one").read_bytes(), threads
    sa.verify(tok, work / "par", 2)
    if not repetitive:
        peer_builder()(tok, work / "peer", 2, cpus=1)
        assert (work / "peer").read_bytes() == (work / "one").read_bytes()


def test_full_u16_alphabet_uses_wide_symbols(work: Path) -> None:
    """Every one of the 65,536 u16 values occurs, so the top level cannot use 16-bit ranks."""
    rng = random.Random(13)
    toks = list(range(65536)) + [rng.randrange(65536) for _ in range(20_000)]
    rng.shuffle(toks)
    data = encode(toks, 2)
    tok = work / "tok"
    tok.write_bytes(data)
    sa.build(tok, work / "ours", 2, threads=1)
    sa.verify(tok, work / "ours", 2)
    peer_builder()(tok, work / "peer", 2, cpus=1)
    assert (work / "ours").read_bytes() == (work / "peer").read_bytes()
