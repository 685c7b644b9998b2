"""Faults: index files truncated, rewritten, replaced or deleted under a running server; reloads of broken indexes;
builds killed in every phase and resumed; a full disk during a build.

The engine maps index files: reading a mapped page past the end of a file truncated in place raises SIGBUS and
kills the process. The registry stamps every mapped file (device, inode, size, mtime) and refuses (503) an index
whose files were truncated or rewritten in place, before any read; files replaced or deleted leave the mapped
inodes intact, so the old index keeps answering ("stale" in /readyz) until a reload maps the new files.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path
from typing import Any

import pytest
from service_support.fixtures import ADMIN_KEY, REPO, Indexes, Server

from index_tools.cli import main as gramdex

ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}


def _copy(src: Path, root: Path, name: str) -> Path:
    dst = root / name
    shutil.copytree(src, dst)
    return dst


def _count(srv: Server, index: str, query: str = "the cat") -> Any:
    return srv.client.post(f"/v1/indexes/{index}/count", json={"query": query})


def _readyz(srv: Server) -> tuple[int, dict[str, Any]]:
    r = srv.client.get("/readyz")
    return r.status_code, r.json()


@pytest.fixture
def pair(indexes: Indexes, tmp_path_factory: pytest.TempPathFactory, make_server: Any) -> tuple[Server, Path]:
    """A server with `good` and `bad`, two private copies of the text index (so `bad` can be damaged)."""
    root = tmp_path_factory.mktemp("fx")
    good, bad = _copy(indexes.text, root, "good"), _copy(indexes.text, root, "bad")
    srv = make_server({"good": good, "bad": bad})
    assert _count(srv, "bad").status_code == 200
    return srv, bad


@pytest.mark.parametrize("victim", ["table.0", "tokenized.0", "offset.0", "metaoff.0"])
def test_truncated_in_place_is_refused_not_a_crash(pair: tuple[Server, Path], victim: str) -> None:
    srv, bad = pair
    expected = _count(srv, "good").json()["count"]
    original = (bad / victim).read_bytes()
    os.truncate(bad / victim, len(original) // 3)  # in place: same inode, the mapping now ends early
    for path, body in (("count", {"query": "the cat"}), ("ntd", {"prompt": "the"}),
                       ("documents/search", {"query": "the cat", "maxnum": 3})):
        r = srv.client.post(f"/v1/indexes/bad/{path}", json=body)
        assert r.status_code == 503 and r.json()["type"] == "urn:gramdex:problem:index-unavailable", r.text
        assert str(bad) not in r.text  # no file paths in error bodies
    assert srv.client.get("/v1/indexes/bad/documents/0").status_code == 503
    assert srv.client.post("/", json={"index": "bad", "query_type": "count", "query": "the"}).status_code == 503
    assert _count(srv, "good").json()["count"] == expected
    status, body = _readyz(srv)
    assert status == 503 and body["indexes"]["good"] == "ok"
    assert body["indexes"]["bad"].startswith("failing") and "truncated" in body["indexes"]["bad"]
    # a reload cannot open the damaged files (index.json records their sizes): the old set stays, minus nothing
    r = srv.client.post("/v1/admin/reload", headers=ADMIN)
    assert r.status_code == 500 and r.json()["type"] == "urn:gramdex:problem:reload-failed"
    assert "bad" in r.json()["detail"] and str(bad) not in r.text
    status, body = _readyz(srv)
    assert status == 503 and "reload_error" in body and body["indexes"]["good"] == "ok"
    assert _count(srv, "good").status_code == 200
    # repaired: a reload maps it afresh and it answers again
    (bad / victim).write_bytes(original)
    assert srv.client.post("/v1/admin/reload", headers=ADMIN).status_code == 200
    assert _count(srv, "bad").json()["count"] == expected
    assert _readyz(srv)[0] == 200
    assert srv.proc.poll() is None


def test_rewritten_in_place_is_refused(pair: tuple[Server, Path]) -> None:
    """Same size, new bytes (a copy over the file truncates it first): refused like a truncation."""
    srv, bad = pair
    table = bad / "table.0"
    raw = table.read_bytes()
    with table.open("r+b") as f:  # same inode; the mtime moves
        f.write(bytes(reversed(raw[:64])))
    os.utime(table, ns=(os.stat(table).st_atime_ns, os.stat(table).st_mtime_ns + 1_000_000))
    assert _count(srv, "bad").status_code == 503
    assert "modified" in _readyz(srv)[1]["indexes"]["bad"]
    assert _count(srv, "good").status_code == 200


def test_replaced_and_deleted_keep_answering_from_the_mapping(pair: tuple[Server, Path],
                                                             indexes: Indexes) -> None:
    srv, bad = pair
    before = _count(srv, "bad").json()["count"]
    # another index's files renamed over these: the mapped inodes are untouched
    other = bad.parent / "other"
    shutil.copytree(indexes.slow, other)
    for f in other.iterdir():
        os.replace(f, bad / f.name)
    assert _count(srv, "bad").json()["count"] == before
    status, body = _readyz(srv)
    assert status == 200 and body["indexes"]["bad"].startswith("stale") and "replaced" in body["indexes"]["bad"]
    # reload maps the new files: now `bad` is the bytes index
    assert srv.client.post("/v1/admin/reload", headers=ADMIN).json()["reloaded"] == ["bad"]
    assert srv.client.post("/v1/indexes/bad/count", json={"query": "abc"}).json()["count"] > 0
    assert _readyz(srv) == (200, {"status": "ready", "indexes": {"good": "ok", "bad": "ok"}})
    # deleted: still answers from the mapping, reported stale; a reload fails and keeps it
    shutil.rmtree(bad)
    assert srv.client.post("/v1/indexes/bad/count", json={"query": "abc"}).status_code == 200
    assert "deleted" in _readyz(srv)[1]["indexes"]["bad"]
    r = srv.client.post("/v1/admin/reload", headers=ADMIN)
    assert r.status_code == 500 and r.json()["type"] == "urn:gramdex:problem:reload-failed"
    assert _count(srv, "good").status_code == 200
    assert srv.proc.poll() is None


def _damage(kind: str, d: Path) -> None:
    if kind == "truncated-table":
        os.truncate(d / "table.0", (d / "table.0").stat().st_size // 2)
    elif kind == "bit-flipped-offset":
        raw = bytearray((d / "offset.0").read_bytes())
        raw[-3] ^= 0x40  # the last document's offset now points far past the text
        (d / "offset.0").write_bytes(bytes(raw))
        (d / "index.json").unlink()  # so only the engine's own checks stand between it and the bytes
    elif kind == "garbage-manifest":
        (d / "index.json").write_text("{not json", encoding="utf-8")
    elif kind == "missing-table":
        (d / "table.0").unlink()
    elif kind == "empty-dir":
        shutil.rmtree(d)
        d.mkdir()
    elif kind == "not-a-dir":
        shutil.rmtree(d)
        d.write_text("x", encoding="utf-8")


@pytest.mark.parametrize("kind", ["truncated-table", "bit-flipped-offset", "garbage-manifest", "missing-table",
                                  "empty-dir", "not-a-dir"])
def test_reload_of_a_broken_index_keeps_the_old_set(indexes: Indexes, tmp_path_factory: pytest.TempPathFactory,
                                                    make_server: Any, kind: str) -> None:
    root = tmp_path_factory.mktemp("fx")
    good = _copy(indexes.text, root, "good")
    srv = make_server({"good": good})
    broken = _copy(indexes.text, root, "broken")
    _damage(kind, broken)
    srv.config.write_text(srv.config.read_text(encoding="utf-8")
                          + f'[indexes.broken]\npath = "{broken}"\n', encoding="utf-8")
    r = srv.client.post("/v1/admin/reload", headers=ADMIN)
    assert r.status_code == 500 and r.json()["type"] == "urn:gramdex:problem:reload-failed", r.text
    assert "broken" in r.json()["detail"] and str(root) not in r.text
    status, body = _readyz(srv)
    assert status == 200 and body["indexes"] == {"good": "ok"} and "broken" in body["reload_error"]
    assert _count(srv, "good").status_code == 200
    assert _count(srv, "broken").status_code == 404
    srv.hup()  # the same through SIGHUP: logged, nothing changes, the process lives
    assert _count(srv, "good").status_code == 200 and srv.proc.poll() is None


# --- builds killed in every phase, then resumed ---

KILLER = textwrap.dedent("""
    import os, signal, sys
    import index_tools.build as b
    import native.suffix_array as sa
    from native.manifest import Manifest
    at = os.environ["KILL_AT"]
    die = lambda: os.kill(os.getpid(), signal.SIGKILL)
    if at.startswith("tokenize:"):
        n, real_add = int(at.split(":")[1]), b._ShardWriter.add
        def add(self, *a, _seen=[0]):
            _seen[0] += 1
            if _seen[0] == n:
                die()
            return real_add(self, *a)
        b._ShardWriter.add = add
    elif at in ("sort", "merge", "write", "shard1"):
        order, real_build, calls = ["sort", "merge", "write", "done"], sa.build, [0]
        def build(*a, **k):
            calls[0] += 1
            if at == "shard1":
                if calls[0] == 2:
                    die()
                return real_build(*a, **k)
            def progress(stage, done, total):
                if stage in order and order.index(stage) >= order.index(at):
                    print("killed in", stage, done, total, file=sys.stderr, flush=True)
                    die()
            k["progress"], k["poll_s"] = progress, 0.0005
            real_build(*a, **k)
            die()  # the phase went by between two polls: die before the table is committed
        sa.build = build
    elif at == "manifest":
        real_write = Manifest.write
        def write(self, d):
            real_write(self, d)
            die()
        Manifest.write = write
    from index_tools.cli import main
    sys.exit(main(sys.argv[1:]))
""")


def _files(d: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(d.iterdir())}


@pytest.fixture(scope="module")
def build_corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, bytes]]:
    import random

    root = tmp_path_factory.mktemp("bk")
    rng = random.Random(3)
    docs = ["".join(rng.choice("abcd ") for _ in range(rng.randint(50, 3000))) for _ in range(600)]
    (root / "corpus.jsonl").write_text("".join(f'{{"text": "{t}"}}\n' for t in docs), encoding="utf-8")
    ref = root / "ref"
    assert gramdex(["build", "-i", str(root / "corpus.jsonl"), "-o", str(ref), "-q", *BUILD_ARGS]) == 0
    return root / "corpus.jsonl", _files(ref)


BUILD_ARGS = ["--bytes", "--shards", "2", "--max-part-tokens", "20000"]


@pytest.mark.parametrize("at", ["tokenize:3", "tokenize:400", "sort", "merge", "write", "shard1", "manifest"])
def test_build_killed_then_resumed_is_byte_identical(build_corpus: tuple[Path, dict[str, bytes]],
                                                     tmp_path_factory: pytest.TempPathFactory, at: str) -> None:
    corpus, reference = build_corpus
    out = tmp_path_factory.mktemp("bk") / "idx"
    args = ["build", "-i", str(corpus), "-o", str(out), *BUILD_ARGS]
    proc = subprocess.run([sys.executable, "-c", KILLER, *args], cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, "KILL_AT": at, "PYTHONPATH": str(REPO)})
    assert proc.returncode == -9, proc.stderr[-2000:]
    if at in ("sort", "merge"):  # inside the C sort, in the named phase (not after it)
        assert f"killed in {at}" in proc.stderr, proc.stderr[-500:]
    elif at == "write":  # the write of a small table is over between two polls: killed before it is committed
        assert "killed in write" in proc.stderr or "killed in done" in proc.stderr, proc.stderr[-500:]
    assert not out.exists()  # nothing that looks like an index
    assert not (out.parent / f".{out.name}.partial" / "index.json").exists() or at == "manifest"
    assert gramdex([*args, "-q", "--resume"]) == 0
    assert _files(out) == reference
    assert gramdex(["verify", str(out)]) == 0


def _mount_tmpfs(where: Path, size: str) -> bool:
    where.mkdir(exist_ok=True)
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                          capture_output=True).returncode == 0


def test_disk_full_is_a_clear_error_and_no_index(build_corpus: tuple[Path, dict[str, bytes]],
                                                 tmp_path_factory: pytest.TempPathFactory,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    corpus, reference = build_corpus
    mnt = tmp_path_factory.mktemp("full") / f"m{uuid.uuid4().hex[:6]}"
    if not _mount_tmpfs(mnt, "1m"):  # the index needs several MB
        pytest.skip("needs root to mount a small tmpfs")
    try:
        out = mnt / "idx"
        args = ["build", "-i", str(corpus), "-o", str(out), "-q", *BUILD_ARGS]
        assert gramdex(args) == 1
        err = capsys.readouterr().err
        assert "No space left on device" in err and "Traceback" not in err
        assert not out.exists()
        assert not any((p / "index.json").exists() for p in mnt.iterdir())
        # room again: the build resumes (or restarts, if it failed before tokenizing ended) to the same bytes
        assert subprocess.run(["mount", "-o", "remount,size=64m", str(mnt)]).returncode == 0
        resumed = gramdex([*args, "--resume"]) if (mnt / ".idx.partial").exists() else gramdex(args)
        assert resumed == 0
        assert _files(out) == reference
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)
