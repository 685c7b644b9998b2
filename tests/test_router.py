"""`gramdex serve --router` over shard servers answers exactly like one `gramdex serve` holding every shard.

The index is built twice from the same documents: once whole (`--shards 4`), once as two `--workers 2` builds run
as separate processes (worker I holds global shards I and I+2). Shard servers serve the workers' directories
(group 0 with a replica), a router fans out to them, and every query type is compared with the single server
and the in-process engine. Then failures: a replica dies (the other answers), a whole group dies (503 naming it,
or a partial answer when the request allows one), and /readyz follows.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from service_support.fixtures import REPO, Server, corpus_docs, toml_value, write_config

import native
from native.manifest import read_manifest

SHARD_STEMS = ("tokenized", "table", "offset", "metadata", "metaoff")


def _gramdex(*args: Any) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "index_tools.cli", *map(str, args)], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def _wait(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        out, _ = p.communicate(timeout=120)
        assert p.returncode == 0, out.decode()


@dataclass(frozen=True)
class Built:
    whole: Path
    workers: list[Path]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    root = tmp_path_factory.mktemp("rt")
    src = root / "docs.jsonl"
    src.write_text("".join(json.dumps(d) + "\n" for d in corpus_docs(400, seed=11)), encoding="utf-8")
    tok_dir = root / "tok"
    _wait([_gramdex("build", "-i", src, "-o", tok_dir, "-q", "--train-tokenizer", "--vocab-size", "400")])
    tokenizer = tok_dir / read_manifest(tok_dir).tokenizer_file  # type: ignore[operator]
    base = ["-i", src, "-q", "--tokenizer", tokenizer, "--shards", "4"]
    # the whole index and the two workers' halves, built at once by separate processes (as an Indexed Job would)
    _wait([_gramdex("build", *base, "-o", root / "whole"),
           *(_gramdex("build", *base, "--workers", "2", "--worker-id", w, "-o", root / f"w{w}") for w in (0, 1))])
    return Built(root / "whole", [root / "w0", root / "w1"])


def test_workers_union_equals_a_single_build(built: Built) -> None:
    for w, out in enumerate(built.workers):
        m = read_manifest(out)
        assert [s.global_shard for s in m.shards] == [w, w + 2]
        for local, g in enumerate((w, w + 2)):
            for stem in SHARD_STEMS:
                assert (out / f"{stem}.{local}").read_bytes() == (built.whole / f"{stem}.{g}").read_bytes()
    whole = native.Engine(built.whole)
    union = native.Engine(built.workers)
    assert (union.doc_cnt, union.tok_cnt) == (whole.doc_cnt, whole.tok_cnt)


@dataclass
class Cluster:
    single: Server
    shard_servers: list[Server]  # group 0: [0] and its replica [1]; group 1: [2]
    router: Server
    engine: native.Engine


def _router_config(path: Path, groups: list[list[str]], extra: str = "") -> Path:
    shards = ", ".join("{urls = [" + ", ".join(toml_value(u) for u in urls) + "]}" for urls in groups)
    text = f"{extra}\n[router]\nshard_timeout_s = 3\ndown_cooldown_s = 30\n" \
           f"[router.indexes.demo]\nshards = [{shards}]\n"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def cluster(built: Built, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("cl")
    with ThreadPoolExecutor(4) as pool:  # Server() waits until ready: start them side by side
        futures = [pool.submit(Server, write_config(root / f"{name}.toml", {"demo": path}))
                   for name, path in [("single", built.whole), ("g0a", built.workers[0]), ("g0b", built.workers[0]),
                                      ("g1", built.workers[1])]]
        single, *shard_servers = [f.result() for f in futures]
    groups = [[shard_servers[0].url, shard_servers[1].url], [shard_servers[2].url]]
    router = Server(_router_config(root / "router.toml", groups), "--router", env={"GRAMDEX_SUMMARIZER__WORKERS": "1"})
    yield Cluster(single, shard_servers, router, native.Engine(built.whole))
    for srv in [router, single, *shard_servers]:
        srv.stop()


def _both(c: Cluster, path: str, body: dict[str, Any] | None = None) -> tuple[Any, Any]:
    """The same request to the single server and to the router; both must succeed; latency dropped."""
    answers = []
    for srv in (c.single, c.router):
        r = srv.client.post(path, json=body) if body is not None else srv.client.get(path)
        assert r.status_code == 200, (srv.url, r.text)
        data = r.json()
        if isinstance(data, dict):
            data.pop("latency_ms", None)
        answers.append(data)
    return answers[0], answers[1]


def _same(c: Cluster, path: str, body: dict[str, Any] | None = None) -> Any:
    single, routed = _both(c, path, body)
    assert routed == single
    return routed


Q = "/v1/indexes/demo"
PROMPTS = ["the", "the cat", "sat on the", "a small child jumped over", "zebra the", "the old man slept near the"]


def test_index_list_and_documents(cluster: Cluster) -> None:
    listed = _same(cluster, "/v1/indexes")
    assert listed["indexes"][0]["shards"] == 4 and listed["indexes"][0]["documents"] == cluster.engine.doc_cnt
    for doc_ix in (0, 1, 99, 100, 101, 250, cluster.engine.doc_cnt - 1):
        doc = _same(cluster, f"{Q}/documents/{doc_ix}?max_disp_len=50")
        assert doc["doc_ix"] == doc_ix and doc["token_ids"] == cluster.engine.get_doc_by_ix(doc_ix, 50).token_ids
    r = cluster.router.client.get(f"{Q}/documents/{cluster.engine.doc_cnt}")
    assert r.status_code == 404 and r.json()["type"].endswith("unknown-document")


def test_counts_find_and_prob(cluster: Cluster) -> None:
    e = cluster.engine
    for text in [*PROMPTS, "the cat sat on the mat."]:
        got = _same(cluster, f"{Q}/count", {"query": text})
        assert got["count"] == e.count(got["token_ids"])
        found = _same(cluster, f"{Q}/find", {"query": text})
        assert found["segment_by_shard"] == [list(s) for s in e.find(found["token_ids"]).segment_by_shard]
    assert _same(cluster, f"{Q}/count", {"query_ids": []})["count"] == e.tok_cnt
    for prompt in PROMPTS:
        for cont in ("mat", "cat", "the"):
            p = _same(cluster, f"{Q}/prob", {"prompt": prompt, "cont": cont})
            ip = _same(cluster, f"{Q}/infgram/prob", {"prompt": prompt, "cont": cont})
            want = e.infgram_prob(ip["prompt_ids"], ip["cont_id"])
            assert (ip["suffix_len"], ip["cont_cnt"]) == (want.suffix_len, want.cont_cnt)
            assert p["prompt_cnt"] == e.count(p["prompt_ids"])


def test_ntd_exact_and_approximate(cluster: Cluster) -> None:
    e = cluster.engine
    approx_seen = exact_seen = 0
    for prompt in PROMPTS:
        for support in (1, 3, 1000):
            for path in ("ntd", "infgram/ntd"):
                got = _same(cluster, f"{Q}/{path}", {"prompt": prompt, "max_support": support})
                fn = e.infgram_ntd if path == "infgram/ntd" else e.ntd
                want = fn(got["prompt_ids"], support)
                assert {t["token_id"]: t["cont_cnt"] for t in got["next_tokens"]} == want.counts
                approx_seen += got["approx"]
                exact_seen += not got["approx"] and got["prompt_cnt"] > 0
    assert approx_seen and exact_seen  # both the sampled and the exact path ran


def test_cnf_with_subsampling(cluster: Cluster) -> None:
    e = cluster.engine
    subsampled = 0
    for query in ["cat AND mat", "the cat AND sat OR ran", "dog AND zebra", "the AND the OR a AND tree"]:
        for mcf in (3, 20, 50_000):
            body = {"query": query, "max_clause_freq": mcf, "max_diff_tokens": 20}
            got = _same(cluster, f"{Q}/count", body)
            found = _same(cluster, f"{Q}/find", body)
            want = e.find_cnf(found["token_ids"], mcf, 20)
            assert (found["count"], found["approx"], found["ptrs_by_shard"]) == \
                (want.cnt, want.approx, want.ptrs_by_shard)
            assert got["count"] == want.cnt
            subsampled += want.approx
            for seed in (0, 5):
                docs = _same(cluster, f"{Q}/documents/search", {**body, "maxnum": 3, "max_disp_len": 30,
                                                                   "seed": seed})
                assert len(docs["documents"]) == (3 if want.cnt else 0)
    assert subsampled  # the budget split over all four shards ran


def test_search_same_seed_same_documents(cluster: Cluster) -> None:
    e = cluster.engine
    for query in ["the cat", "garden", "a red house"]:
        for seed in (0, 1, 42):
            got = _same(cluster, f"{Q}/documents/search", {"query": query, "maxnum": 5, "max_disp_len": 40,
                                                           "seed": seed})
            want = e.search_docs(got["token_ids"], 5, 40, seed)
            assert [d["doc_ix"] for d in got["documents"]] == [d.doc_ix for d in want.documents]
            assert got["idxs"] == want.idxs


def test_attribute_and_score(cluster: Cluster) -> None:
    e = cluster.engine
    texts = ["the cat sat on the mat. the dog ran to a red house and a zebra slept near the big tree.",
             "my friend looked at the garden. the old man jumped over the hat."]
    for text in texts:
        for min_len, max_loc in ((1, 3), (3, 1000), (0, 0)):
            got = _same(cluster, f"{Q}/attribute", {"query": text, "min_len": min_len, "max_locations": max_loc})
            want = e.attribute(got["token_ids"], min_len, max_loc)
            assert [(s["start"], s["end"], s["count"]) for s in got["spans"]] == \
                [(s.start, s.end, s.count) for s in want]
            assert [[(loc["shard"], loc["ptr"]) for loc in s["locations"]] for s in got["spans"]] == \
                [s.locations for s in want]
        got = _same(cluster, f"{Q}/score", {"query": text})
        assert [s["suffix_len"] for s in got["scores"]] == [s.suffix_len for s in e.score(got["token_ids"])]


def test_router_specific_errors_are_the_services(cluster: Cluster) -> None:
    r = cluster.router.client.post("/v1/indexes/nope/count", json={"query": "the"})
    assert r.status_code == 404 and r.json()["type"].endswith("unknown-index")
    r = cluster.router.client.post(f"{Q}/count", json={"query_ids": [70_000]})
    assert r.status_code == 422 and r.json()["field"] == "query_ids"
    r = cluster.router.client.post(f"{Q}/ntd", json={"prompt": "the", "max_support": 10**6})
    assert r.status_code == 413
    assert cluster.router.client.get("/readyz").json()["indexes"]["demo"] == {"shard-group-0": "ok",
                                                                             "shard-group-1": "ok"}


def test_router_summarizes_with_its_own_workers(cluster: Cluster) -> None:
    text = "the cat sat on the mat . the dog slept near the door . a child jumped over the old fence ."
    end = time.monotonic() + 60
    r = cluster.router.client.post("/v1/summarize", json={"text": text, "max_tokens": 8})
    while r.status_code == 503 and time.monotonic() < end:  # its worker starts in the background
        time.sleep(0.2)
        r = cluster.router.client.post("/v1/summarize", json={"text": text, "max_tokens": 8})
    assert r.status_code == 200, r.text
    assert r.json()["summary"] and all(s["text"] in text for s in r.json()["sentences"])


def test_failures_replica_503_and_partial(cluster: Cluster) -> None:
    """Last in the module: it stops shard servers."""
    c = cluster
    body = {"query": "the cat"}
    whole = c.engine.count(c.single.client.post(f"{Q}/count", json=body).json()["token_ids"])
    # group 0's first replica dies: its other replica answers, the answer is unchanged
    c.shard_servers[0].stop()
    for _ in range(3):
        assert c.router.client.post(f"{Q}/count", json=body).json()["count"] == whole
    _same(c, f"{Q}/attribute", {"query": "the cat sat on the mat", "max_locations": 5})
    assert c.router.client.get("/readyz").status_code == 200
    # group 1 hangs (stopped, its socket still accepting): the per-shard timeout (3 s) ends the wait with a 503
    c.shard_servers[2].proc.send_signal(signal.SIGSTOP)
    start = time.monotonic()
    r = c.router.client.post(f"{Q}/count", json=body)
    assert r.status_code == 503 and r.json()["missing_shards"] == ["shard-group-1"]
    assert 2.5 < time.monotonic() - start < 8
    c.shard_servers[2].proc.send_signal(signal.SIGCONT)
    # group 1 dies entirely: 503 naming it, or the other group's part flagged partial
    c.shard_servers[2].stop()
    r = c.router.client.post(f"{Q}/count", json=body)
    assert r.status_code == 503 and r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["missing_shards"] == ["shard-group-1"] and "shard-group-1" in r.json()["detail"]
    r = c.router.client.post(f"{Q}/count", json={**body, "allow_partial": True})
    assert r.status_code == 200
    part = native.Engine(c.engine.index_dirs[0].parent / "w0")
    assert r.json()["partial"] is True and r.json()["missing_shards"] == ["shard-group-1"]
    assert r.json()["count"] == part.count(r.json()["token_ids"]) < whole
    ready = c.router.client.get("/readyz")
    assert ready.status_code == 503 and ready.json()["indexes"]["demo"]["shard-group-1"] == "unavailable"
