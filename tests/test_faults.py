"""Faults: index files truncated, rewritten, replaced or deleted under a running server (also during queries);
reloads of broken indexes; builds killed in every phase and resumed; a full disk during a build.

The engine maps index files: reading a mapped page past the end of a file truncated in place raises SIGBUS and
kills the process. The server holds a read lease on every mapped file, so another process's truncate or open for
writing waits until the index is refused (503), its running queries have returned and it is unmapped. The
registry also stamps every mapped file (device, inode, size, mtime) and refuses an index whose files were
truncated or rewritten in place (where leases cannot be taken); files replaced or deleted leave the mapped inodes
intact, so the old index keeps answering ("stale" in /readyz) until a reload maps the new files.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from service_support.fixtures import ADMIN_KEY, REPO, Indexes, Server

from index_tools.cli import main as gramdex
from service.errors import Problem

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


SLOW_CNF = {"query_ids": [[[97]], [[98]], [[99]], [[97, 98]], [[98, 99]], [[99, 97]]],
            "max_clause_freq": 500_000, "max_diff_tokens": 1000, "timeout_ms": 20_000}
WRITERS = {  # run in another process, as an operator's tool would; prints how long the write waited
    "truncate": "os.truncate(path, os.path.getsize(path) // 3)",
    "rewrite": "data = open(path, 'rb').read(); open(path, 'wb').write(data)",  # cp over it: O_TRUNC, then write
}


def _write_elsewhere(how: str, path: Path) -> float:
    code = f"import os, sys, time; path = sys.argv[1]; t = time.monotonic(); {WRITERS[how]}; " \
           "print(time.monotonic() - t)"
    proc = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return float(proc.stdout)


@pytest.mark.parametrize(("how", "victim", "workers"), [("truncate", "table.0", 1), ("rewrite", "tokenized.0", 1),
                                                        ("truncate", "tokenized.0", 2)])
def test_written_during_queries_waits_for_them_then_refuses(indexes: Indexes, make_server: Any,
                                                            tmp_path_factory: pytest.TempPathFactory,
                                                            how: str, victim: str, workers: int) -> None:
    """Slow CNF queries run on `slow` while another process truncates or rewrites one of its files: the writer
    waits (the read lease) until the running queries have returned and the index is unmapped, never the 45 s
    lease break time; the process lives, queued queries get 503, later ones too, the other index answers."""
    root = tmp_path_factory.mktemp("fx")
    good, slow = _copy(indexes.text, root, "good"), _copy(indexes.slow, root, "slow")
    srv = make_server({"good": good, "slow": slow}, "[concurrency]\nslow_threads = 2\n",
                      *(["--workers", str(workers)] if workers > 1 else []))
    assert "unleased" not in _readyz(srv)[1]
    expected = srv.client.post("/v1/indexes/slow/count", json=SLOW_CNF).json()["count"]
    original = (slow / victim).read_bytes()
    with ThreadPoolExecutor(6) as pool:
        running = [pool.submit(srv.client.post, "/v1/indexes/slow/count", json=SLOW_CNF) for _ in range(6)]
        time.sleep(0.2)  # two run (about 0.5 s each here), four wait in the slow pool's queue
        waited = _write_elsewhere(how, slow / victim)
        answers = [f.result() for f in running]
    assert waited < 20, waited  # the longest running call, not the kernel's lease break time
    assert srv.proc.poll() is None
    for r in answers:  # answered from the intact mapping, or refused before reading it
        assert r.status_code in (200, 503), r.text
        if r.status_code == 200:
            assert r.json()["count"] == expected
        else:
            assert r.json()["type"] == "urn:gramdex:problem:index-unavailable"
    assert "is being written or truncated by another process" in srv.log.read_text()
    for _ in range(2 * workers):
        r = srv.client.post("/v1/indexes/slow/count", json=SLOW_CNF)
        assert r.status_code == 503 and r.json()["type"] == "urn:gramdex:problem:index-unavailable", r.text
        assert _count(srv, "good").status_code == 200
    status, body = _readyz(srv)
    assert status == 503 and body["indexes"]["good"] == "ok" and body["indexes"]["slow"].startswith("failing")
    assert ("truncated" if how == "truncate" else "modified") in body["indexes"]["slow"], body
    assert str(slow) not in json.dumps(body)
    # restored: a reload maps the files afresh, leases them again, and the index answers
    (slow / victim).write_bytes(original)
    for _ in range(workers):  # each worker reloads on its own
        assert srv.client.post("/v1/admin/reload", headers=ADMIN).status_code == 200
        if workers == 1 or srv.client.post("/v1/indexes/slow/count", json=SLOW_CNF).status_code == 200:
            break
    if workers == 1:
        assert srv.client.post("/v1/indexes/slow/count", json=SLOW_CNF).json()["count"] == expected
        assert _readyz(srv) == (200, {"status": "ready", "indexes": {"good": "ok", "slow": "ok"}})
    assert srv.proc.poll() is None


def test_files_that_cannot_be_leased_fall_back_to_stamps(pair: tuple[Server, Path]) -> None:
    """A file open for writing elsewhere when the index is mapped cannot be leased (EAGAIN): /readyz says so, and
    the stamps still refuse the index once the file changes."""
    srv, bad = pair
    table = bad / "table.0"
    with table.open("r+b") as writer:  # breaks the server's lease: `bad` is refused until a reload
        assert _count(srv, "bad").status_code == 503
        assert srv.client.post("/v1/admin/reload", headers=ADMIN).json()["reloaded"] == ["bad"]
        status, body = _readyz(srv)
        assert status == 200 and body["unleased"] == {"bad": "table.0: open for writing by some process"}
        assert _count(srv, "bad").status_code == 200
        writer.write(writer.read(64)[::-1])  # in place, without waiting for anything: only the stamps see it
        writer.flush()
    os.utime(table, ns=(table.stat().st_atime_ns, table.stat().st_mtime_ns + 1_000_000))
    assert _count(srv, "bad").status_code == 503
    assert _count(srv, "good").status_code == 200 and srv.proc.poll() is None


def test_leases_without_an_event_loop(indexes: Indexes, tmp_path: Path) -> None:
    """The registry outside a server (no event loop): the watcher handles the break in a thread of its own."""
    from service.file_leases import watcher
    from service.registry import Registry
    from service.settings import IndexSettings

    d = _copy(indexes.text, tmp_path, "x")
    registry = Registry()
    registry.load({"unguarded": IndexSettings(path=d)})  # no handler yet: not leased, stamps only
    assert registry.get("unguarded").lease_error == "no lease-break handler in this process"
    assert watcher.start()  # this is the main thread: a plain signal handler
    try:
        registry.load({"x": IndexSettings(path=d)})
        ix = registry.get("x")
        assert ix.lease_error is None and ix.engine.count([1]) >= 0
        assert _write_elsewhere("rewrite", d / "offset.0") < 20
        with pytest.raises(Problem) as refused:
            ix.engine.count([1])  # refused, not read: the engine is closed
        assert refused.value.status == 503
        assert ix.changed() is not None and ix.changed()[1]
        registry.load({"x": IndexSettings(path=d)})  # remapped and leased again
        assert registry.get("x").engine.count([1]) >= 0 and registry.get("x").lease_error is None
    finally:
        registry.close()
        watcher.stop()


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
