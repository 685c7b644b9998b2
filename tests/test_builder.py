"""`gramdex build / verify / info` end to end: formats, tokenizer modes, shards, parts, workers, atomicity,
resume and bad inputs, checked with `verify --full`, a brute-force count and infini-gram's own engine."""

from __future__ import annotations

import gzip
import json
import random
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from index_tools.cli import main
from index_tools.tokenize import dtype_for_width
from native.manifest import read_manifest

REPO = Path(__file__).resolve().parents[1]
WIKI_TOKENIZER = REPO.parent / "shared" / "reference" / "wiki-bpe32k-tokenizer.json.gz"
WORDS = ("the cat sat on a mat and dog ran to big red house with "
         "\u00e9t\u00e9 caf\u00e9 \u4e2d\u6587 x").split()


@pytest.fixture
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # infini-gram matches file roles by substring of the full path: keep test names out of it
    return tmp_path_factory.mktemp("gb")


def random_text(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def make_corpus(root: Path, seed: int = 0, docs: int = 60) -> list[str]:
    """jsonl, jsonl.gz, jsonl.zst and txt files in nested directories; returns texts in build order."""
    import zstandard

    rng = random.Random(seed)
    texts = [random_text(rng, rng.randint(0, 40)) for _ in range(docs)]
    rows = [{"text": t, "id": i, "title": f"t{i}"} for i, t in enumerate(texts)]
    (root / "b").mkdir(parents=True)
    (root / "a.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:20]), encoding="utf-8")
    with gzip.open(root / "b" / "c.jsonl.gz", "wt", encoding="utf-8") as f:
        f.write("".join(json.dumps(r) + "\n" for r in rows[20:40]))
    zc = zstandard.ZstdCompressor()
    frames = [zc.compress("".join(json.dumps(r) + "\n" for r in part).encode())
              for part in (rows[40:50], rows[50:])]
    (root / "b" / "d.jsonl.zst").write_bytes(b"".join(frames))  # two frames, as pzstd writes
    (root / "e.txt").write_text("a plain text file\nof two lines", encoding="utf-8")
    return texts + ["a plain text file\nof two lines"]


def gramdex(*args: str | Path) -> int:
    return main([str(a) for a in args])


def shard_tokens(index: Path, shard: int, width: int) -> np.ndarray:
    return np.fromfile(index / f"tokenized.{shard}", dtype=dtype_for_width(width))


def brute_count(index: Path, width: int, query: list[int]) -> int:
    total = 0
    for sh in read_manifest(index).shards:
        toks = shard_tokens(index, sh.shard, width)
        k = len(query)
        if k <= len(toks):
            win = np.lib.stride_tricks.sliding_window_view(toks, k)
            total += int(np.count_nonzero((win == np.asarray(query, dtype=toks.dtype)).all(axis=1)))
    return total


def check_against_peer_engine(index: Path, seed: int = 1, n: int = 40) -> None:
    """infini-gram's engine opens the index unchanged and counts like the brute force."""
    from infini_gram.engine import InfiniGramEngine

    m = read_manifest(index)
    # the peer takes vocab_size and eos_token_id in the token type, eos < vocab_size; eos plays no
    # part in counting
    vocab = (1 << (8 * m.token_width)) - 1
    engine = InfiniGramEngine(str(index), eos_token_id=min(m.eos_token_id, vocab - 1),
                              vocab_size=vocab, token_dtype=m.token_dtype,
                              ds_prefetch_depth=0, sa_prefetch_depth=0, od_prefetch_depth=0)
    rng = random.Random(seed)
    toks = shard_tokens(index, 0, m.token_width)
    for _ in range(n):
        k = rng.randint(1, 5)
        i = rng.randrange(max(1, len(toks) - k))
        query = [int(t) for t in toks[i:i + k]]
        if rng.random() < 0.2:
            query[-1] = rng.randrange(min(m.vocab_size, 60000))
        if m.token_width < 4 or max(query) < 65536:  # the peer accepts query ids below 65536 only
            assert engine.count(query)["count"] == brute_count(index, m.token_width, query), query


def file_bytes(index: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(index.iterdir())}


def test_all_formats_bytes_two_shards(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    texts = make_corpus(work / "corpus")
    out = work / "idx"
    assert gramdex("build", "-i", work / "corpus", "-o", out, "--bytes", "--shards", "2", "--quiet") == 0
    assert gramdex("verify", "--full", out) == 0
    m = read_manifest(out)
    assert (m.token_width, m.document_count, len(m.shards)) == (1, len(texts), 2)
    # documents dealt round-robin, each stored as SEP + UTF-8 bytes, metadata as infini-gram writes it
    for s in (0, 1):
        docs = (out / f"tokenized.{s}").read_bytes().split(b"\xff")[1:]
        assert [d.decode() for d in docs] == texts[s::2]
        lines = (out / f"metadata.{s}").read_text().splitlines()
        assert len(lines) == len(docs)
    first = json.loads((out / "metadata.0").read_text().splitlines()[0])
    assert first == {"path": "a.jsonl", "linenum": 0, "metadata": {"id": 0, "title": "t0"}}
    second = json.loads((out / "metadata.1").read_text().splitlines()[10])
    assert second["path"] == "b/c.jsonl.gz" and second["linenum"] == 1
    check_against_peer_engine(out)
    capsys.readouterr()
    assert gramdex("info", out) == 0
    assert "documents:   61" in capsys.readouterr().out


@pytest.mark.skipif(not WIKI_TOKENIZER.exists(), reason="shared tokenizer not available")
def test_hf_tokenizer_u16_matches_peer_table(work: Path) -> None:
    import tokenizers
    from test_sa_build import peer_builder

    peer_build_table = peer_builder()
    make_corpus(work / "corpus", seed=2, docs=120)
    out = work / "idx"
    assert gramdex("build", "-i", work / "corpus", "-o", out, "--tokenizer", WIKI_TOKENIZER,
                   "--shards", "3", "-q") == 0
    m = read_manifest(out)
    assert m.token_width == 2 and m.tokenizer_file == "tokenizer.json.gz"
    # stored gzipped, without a name or time in the gzip header: the same bytes on every build
    stored_json = gzip.decompress((out / "tokenizer.json.gz").read_bytes())
    assert stored_json == gzip.decompress(WIKI_TOKENIZER.read_bytes())
    tok = tokenizers.Tokenizer.from_str(stored_json.decode("utf-8"))
    first_doc = json.loads((work / "corpus" / "a.jsonl").read_text().splitlines()[0])["text"]
    stored = shard_tokens(out, 0, 2)
    ends = list(np.flatnonzero(stored == 0xFFFF)) + [len(stored)]
    assert list(stored[1:ends[1]]) == tok.encode(first_doc, add_special_tokens=False).ids
    peer_build_table(out / "tokenized.1", work / "peer", 2, cpus=1)
    assert (work / "peer").read_bytes() == (out / "table.1").read_bytes()
    assert gramdex("verify", "--full", out) == 0
    check_against_peer_engine(out)


def test_trained_tokenizer_is_deterministic(work: Path) -> None:
    make_corpus(work / "corpus", seed=3)
    args = ["-i", work / "corpus", "--train-tokenizer", "--vocab-size", "300", "-q"]
    assert gramdex("build", *args, "-o", work / "one") == 0
    assert gramdex("build", *args, "-o", work / "two", "--threads", "1") == 0
    assert file_bytes(work / "one") == file_bytes(work / "two")
    m = read_manifest(work / "one")
    assert m.token_width == 2 and m.vocab_size <= 300 and (work / "one" / "tokenizer.json.gz").exists()
    assert gramdex("verify", "--full", work / "one") == 0
    check_against_peer_engine(work / "one")


def test_large_vocabulary_uses_u32(work: Path) -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {w: i for i, w in enumerate(WORDS)}
    vocab |= {f"filler{i}": len(vocab) + i for i in range(70_000)}
    unk = vocab["[UNK]"] = len(vocab)  # an id above 65535, used for every unknown word
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.save(str(work / "big.json"))
    make_corpus(work / "corpus", seed=4)
    (work / "corpus" / "f.txt").write_text("unknown words here the cat", encoding="utf-8")
    out = work / "idx"
    assert gramdex("build", "-i", work / "corpus", "-o", out, "--tokenizer", work / "big.json", "-q") == 0
    m = read_manifest(out)
    assert m.token_width == 4 and m.sep_token_id == 0xFFFFFFFF
    assert gramdex("verify", "--full", out) == 0
    assert unk > 0xFFFF and brute_count(out, 4, [unk]) >= 3
    check_against_peer_engine(out)


def test_parts_budget_and_workers_give_identical_shards(work: Path) -> None:
    make_corpus(work / "corpus", seed=5, docs=200)
    base = ["-i", work / "corpus", "--bytes", "-q"]
    assert gramdex("build", *base, "--shards", "4", "-o", work / "plain") == 0
    assert gramdex("build", *base, "--shards", "4", "-o", work / "parts", "--max-part-tokens", "97",
                   "--threads", "2") == 0
    assert gramdex("build", *base, "--shards", "4", "-o", work / "budget", "--memory-gb", "0.00001") == 0
    plain = file_bytes(work / "plain")
    assert file_bytes(work / "parts") == plain
    assert file_bytes(work / "budget") == plain
    for wid in (0, 1):
        out = work / f"w{wid}"
        assert gramdex("build", *base, "--shards", "4", "--workers", "2", "--worker-id", str(wid),
                       "-o", out) == 0
        m = read_manifest(out)
        assert [s.global_shard for s in m.shards] == [wid, wid + 2]
        for local, g in enumerate((wid, wid + 2)):
            for stem in ("tokenized", "table", "offset", "metaoff", "metadata"):
                assert (out / f"{stem}.{local}").read_bytes() == plain[f"{stem}.{g}"]
        assert gramdex("verify", "--full", out) == 0


KILL_AT_SORT = textwrap.dedent("""
    import os, signal, sys
    import native.suffix_array as sa
    def die(*a, **k):
        os.kill(os.getpid(), signal.SIGKILL)
    sa.build = die
    from index_tools.cli import main
    sys.exit(main(sys.argv[1:]))
""")


def test_killed_build_leaves_no_index_and_resumes(work: Path) -> None:
    make_corpus(work / "corpus", seed=6)
    args = ["build", "-i", str(work / "corpus"), "--bytes", "--shards", "2", "-q"]
    proc = subprocess.run([sys.executable, "-c", KILL_AT_SORT, *args, "-o", str(work / "idx")],
                          cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == -9
    assert not (work / "idx").exists()
    leftovers = [p.name for p in work.iterdir() if p.name != "corpus"]
    assert leftovers == [".idx.partial"]  # hidden, no index.json: nothing that looks like an index
    assert not (work / ".idx.partial" / "index.json").exists()
    assert gramdex(*args, "-o", work / "idx") == 1  # refuses to clobber without --resume
    assert gramdex(*args, "-o", work / "idx", "--resume") == 0
    assert not (work / ".idx.partial").exists()
    assert gramdex(*args, "-o", work / "ref") == 0
    assert file_bytes(work / "idx") == file_bytes(work / "ref")


def test_bad_inputs(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    corpus = work / "corpus"
    corpus.mkdir()
    good = json.dumps({"text": "fine"}) + "\n"
    (corpus / "x.jsonl").write_bytes((good + "{not json\n" + json.dumps({"body": "no text"}) + "\n"
                                      + good).encode() + b'{"text": "bad \xff utf8"}\n' + good.encode())
    out = work / "idx"
    assert gramdex("build", "-i", corpus, "-o", out, "--bytes", "-q") == 1
    err = capsys.readouterr().err
    assert "x.jsonl:2: bad JSON" in err and not out.exists() and not (work / ".idx.partial").exists()
    assert gramdex("build", "-i", corpus, "-o", out, "--bytes", "-q", "--skip-bad-lines") == 0
    m = read_manifest(out)
    assert (m.document_count, m.skipped_lines) == (3, 3)
    assert gramdex("build", "-i", corpus, "-o", out, "--bytes", "-q") == 1
    assert "already exists" in capsys.readouterr().err
    empty = work / "empty"
    empty.mkdir()
    (empty / "blank.jsonl").write_text("\n", encoding="utf-8")
    assert gramdex("build", "-i", empty, "-o", work / "e", "--bytes", "-q") == 1
    assert "empty" in capsys.readouterr().err and not (work / "e").exists()
    assert not (work / ".e.partial").exists()
    assert gramdex("build", "-i", corpus, "-o", work / "many", "--bytes", "-q", "--skip-bad-lines",
                   "--shards", "5") == 1
    assert "would be empty" in capsys.readouterr().err
    assert gramdex("build", "-i", work / "nope", "-o", work / "n", "--bytes", "-q") == 1


def test_verify_catches_corruption(work: Path) -> None:
    make_corpus(work / "corpus", seed=7)
    out = work / "idx"
    assert gramdex("build", "-i", work / "corpus", "-o", out, "--bytes", "-q") == 0
    table = out / "table.0"
    raw = bytearray(table.read_bytes())
    ps = len(raw) // read_manifest(out).token_count
    raw[5 * ps:6 * ps], raw[300 * ps:301 * ps] = raw[300 * ps:301 * ps], raw[5 * ps:6 * ps]
    table.write_bytes(bytes(raw))
    assert gramdex("verify", "--full", out) == 1
    off = out / "offset.0"
    table.write_bytes(bytes(raw))
    off.write_bytes(off.read_bytes()[:-8])
    assert gramdex("verify", out) == 1


def test_disk_full_during_sort_is_reported_and_resumable(work: Path, monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    import native.suffix_array as sa
    from native.errors import EngineIOError

    real_build = sa.build

    def full(*args: object, **kwargs: object) -> None:
        raise EngineIOError("cannot write table: No space left on device")

    make_corpus(work / "corpus", seed=8)
    args = ["build", "-i", work / "corpus", "-o", work / "idx", "--bytes", "-q"]
    monkeypatch.setattr(sa, "build", full)
    assert gramdex(*args) == 1
    err = capsys.readouterr().err
    assert "No space left on device" in err and "--resume" in err
    assert not (work / "idx").exists()
    monkeypatch.setattr(sa, "build", real_build)
    assert gramdex(*args, "--resume") == 0
    assert gramdex("verify", "--full", work / "idx") == 0


def test_every_file_is_on_disk_before_the_index_appears(work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The rename that makes the index visible comes after every file and the directory were fsynced, so a power
    cut cannot leave a complete-looking index with data still in the page cache."""
    import os

    make_corpus(work / "corpus")
    out = work / "idx"
    events: list[tuple[str, str]] = []
    real_fsync, real_rename = os.fsync, os.rename

    def fsync(fd: int) -> None:
        events.append(("fsync", os.path.basename(os.readlink(f"/proc/self/fd/{fd}"))))
        real_fsync(fd)

    def rename(src: str | Path, dst: str | Path) -> None:
        events.append(("rename", os.path.basename(os.fspath(dst))))
        real_rename(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "rename", rename)
    assert gramdex("build", "-i", work / "corpus", "-o", out, "--bytes", "--shards", "2", "--quiet") == 0
    visible = events.index(("rename", "idx"))
    synced = {name for kind, name in events[:visible] if kind == "fsync"}
    expected = {p.name for p in out.iterdir()}
    synced |= {n.replace("sorting.", "table.") for n in synced}  # a table is written as sorting.N, then renamed
    assert expected <= synced, expected - synced
    assert ".idx.partial" in synced  # the work directory's entries
    assert ("fsync", work.name) in events[visible:]  # the parent, after the rename
