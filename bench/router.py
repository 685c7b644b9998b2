"""Sharded serving: the shared corpus in 4 shards on 4 shard servers behind `gramdex serve --router`, against one
`gramdex serve` holding all 4 shards. Latency and throughput per query type, and the router's overhead per
request (router p50 - single server p50 at concurrency 1).

Every process (4 shard servers, the router, the single server and the load generator) runs on this machine:
with few cores the sharded setup competes with itself for CPU, so its throughput here is a lower bound of a
deployment where shard servers have machines of their own. The load generator is bench.http's lean raw-socket
client in its own process; its CPU use is printed beside its figures.

    python -m bench.router [--rounds 2] [--seconds 2]   # first run builds .bench-data/router (a few minutes)
"""

from __future__ import annotations

import argparse
import dataclasses
import gzip
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.http import pct, run_client

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
DATA = REPO / ".bench-data" / "router"
WHOLE = DATA / "whole"
TOKENIZER_GZ = SHARED / "reference" / "wiki-bpe32k-tokenizer.json.gz"
SHARDS = 4
STEMS = ("tokenized", "table", "offset", "metadata", "metaoff")


def build() -> None:
    """The corpus as one 4-shard index (once), and one directory per shard for the shard servers: links to the
    shard's files renamed to shard 0, with an index.json recording its global shard number (what a
    `--workers 4` build would write, without building twice)."""
    from native.manifest import read_manifest

    if not (WHOLE / "index.json").exists():
        DATA.mkdir(parents=True, exist_ok=True)
        tok = DATA / "tokenizer.json"
        with gzip.open(TOKENIZER_GZ, "rb") as src, tok.open("wb") as dst:
            shutil.copyfileobj(src, dst)
        inputs = sorted(str(p) for p in (SHARED / "corpora" / "text").glob("*.jsonl.gz"))
        print(f"building {WHOLE} from {len(inputs)} files (a few minutes)...", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "index_tools.cli", "build", "-i", *inputs, "-o", str(WHOLE),
                        "--tokenizer", str(tok), "--shards", str(SHARDS), "--resume"], cwd=REPO, check=True)
    m = read_manifest(WHOLE)
    for entry in m.shards:
        d = DATA / f"shard-{entry.shard}"
        if (d / "index.json").exists():
            continue
        d.mkdir(exist_ok=True)
        files = {}
        for stem in STEMS:
            src = WHOLE / f"{stem}.{entry.shard}"
            if src.exists():
                (d / f"{stem}.0").unlink(missing_ok=True)
                (d / f"{stem}.0").symlink_to(src)
                files[f"{stem}.0"] = src.stat().st_size
        if m.tokenizer_file:
            (d / m.tokenizer_file).unlink(missing_ok=True)
            (d / m.tokenizer_file).symlink_to(WHOLE / m.tokenizer_file)
        one = dataclasses.replace(entry, shard=0, files=files or entry.files)
        dataclasses.replace(m, shards=[one], document_count=entry.doc_count, token_count=entry.token_count,
                            workers=SHARDS, worker_id=entry.shard).write(d)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(args: list[str], env: dict[str, str] | None = None) -> tuple[subprocess.Popen[bytes], int]:
    import httpx

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "index_tools.cli", "serve", "--port", str(port), *args], cwd=REPO,
                            stdout=subprocess.DEVNULL, env={**os.environ, "GRAMDEX_SUMMARIZER__WORKERS": "0",
                                                            **(env or {})})
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200:
                return proc, port
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"gramdex serve {' '.join(args)} did not start")


def workload(n: int) -> dict[str, tuple[str, list[dict[str, Any]]]]:
    from bench.heldout import NgramSampler

    ngram = NgramSampler(1, max_articles=300).ngram
    q = "/v1/indexes/enwiki"
    return {
        "count": (f"{q}/count", [{"query_ids": ngram(1, 6)} for _ in range(n)]),
        "prob": (f"{q}/prob", [{"prompt_ids": g[:-1], "cont_id": g[-1]} for g in (ngram(2, 5) for _ in range(n))]),
        "ntd": (f"{q}/ntd", [{"prompt_ids": ngram(1, 4)} for _ in range(n)]),
        "infgram_prob": (f"{q}/infgram/prob", [{"prompt_ids": g[:-1], "cont_id": g[-1]}
                                               for g in (ngram(2, 30) for _ in range(n))]),
        "infgram_ntd": (f"{q}/infgram/ntd", [{"prompt_ids": ngram(5, 30)} for _ in range(n)]),
        "find": (f"{q}/find", [{"query_ids": ngram(1, 4)} for _ in range(n)]),
        "cnf": (f"{q}/count", [{"query_ids": [[ngram(1, 1)], [ngram(1, 1), ngram(1, 1)]], "max_diff_tokens": 20}
                               for _ in range(n)]),
        "search": (f"{q}/documents/search", [{"query_ids": ngram(2, 4), "maxnum": 3, "max_disp_len": 50, "seed": i}
                                             for i in range(n)]),
        "attribute": (f"{q}/attribute", [{"query_ids": ngram(30, 60), "min_len": 2, "max_locations": 3}
                                         for _ in range(n)]),
        "score": (f"{q}/score", [{"query_ids": ngram(30, 60)} for _ in range(n)]),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=2.0, help="measured seconds per run")
    ap.add_argument("--warmup", type=float, default=0.5)
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--concurrency", default="1,16")
    ap.add_argument("--ops", default="")
    a = ap.parse_args()
    build()
    work = workload(a.queries)
    ops = a.ops.split(",") if a.ops else list(work)
    levels = [int(c) for c in a.concurrency.split(",")]
    tmp = Path(tempfile.mkdtemp(prefix="gramdex-bench-router-"))
    procs = []
    try:
        single, single_port = start(["--index", f"enwiki={WHOLE}"])
        procs.append(single)
        shard_ports = []
        for s in range(SHARDS):
            proc, port = start(["--index", f"enwiki={DATA / f'shard-{s}'}"])
            procs.append(proc)
            shard_ports.append(port)
        groups = ", ".join(f'{{urls = ["http://127.0.0.1:{p}"]}}' for p in shard_ports)
        cfg = tmp / "router.toml"
        cfg.write_text(f"demo = false\n[router.indexes.enwiki]\nshards = [{groups}]\n")
        router, router_port = start(["--router", "--config", str(cfg)])
        procs.append(router)
        targets = {"single": single_port, "router": router_port}
        results: dict[tuple[str, str, int], list[dict[str, float]]] = {}
        for r in range(a.rounds):
            for op in ops:
                path, body_list = work[op]
                order = [(t, c) for c in levels for t in targets]
                if r % 2:
                    order.reverse()  # interleave: alternate which goes first
                for target, c in order:
                    out = run_client({"port": targets[target], "path": path, "bodies": body_list, "concurrency": c,
                                      "seconds": a.seconds, "warmup": a.warmup}, tmp)
                    if out["errors"]:
                        print(f"  {op} {target} c={c}: {len(out['errors'])} errors, e.g. {out['errors'][:3]}",
                              file=sys.stderr)
                    lat = out["latencies"]
                    results.setdefault((op, target, c), []).append(
                        {"p50": pct(lat, 50), "p99": pct(lat, 99), "rps": len(lat) / out["seconds"],
                         "cpu": out["client_cpu"]})
            print(f"round {r + 1}/{a.rounds} done", file=sys.stderr)
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGINT)
        for proc in procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
    report(results, ops, levels, a)


def report(results: dict[tuple[str, str, int], list[dict[str, float]]], ops: list[str], levels: list[int],
           a: argparse.Namespace) -> None:
    med = {k: {m: statistics.median(r[m] for r in rows) for m in rows[0]} for k, rows in results.items()}
    print(f"\nrouter over {SHARDS} shard servers vs one server with all {SHARDS} shards ({WHOLE}), "
          f"{os.cpu_count()} CPUs, all processes on this machine; medians of {a.rounds} rounds x {a.seconds:g} s")
    print(f"{'op':<14}{'c':>4}{'single p50':>12}{'router p50':>12}{'single p99':>12}{'router p99':>12}"
          f"{'single r/s':>12}{'router r/s':>12}{'client CPU':>12}")
    for op in ops:
        for c in levels:
            s, r = med.get((op, "single", c)), med.get((op, "router", c))
            if not s or not r:
                continue
            print(f"{op:<14}{c:>4}{s['p50'] * 1000:>12.3f}{r['p50'] * 1000:>12.3f}{s['p99'] * 1000:>12.3f}"
                  f"{r['p99'] * 1000:>12.3f}{s['rps']:>12.0f}{r['rps']:>12.0f}"
                  f"{max(s['cpu'], r['cpu']) * 100:>11.0f}%")
    print("\nrouter overhead per request at concurrency 1 (router p50 - single server p50):")
    for op in ops:
        if (op, "router", 1) in med and (op, "single", 1) in med:
            d = med[(op, "router", 1)]["p50"] - med[(op, "single", 1)]["p50"]
            print(f"  {op:<14}{d * 1000:8.3f} ms")


if __name__ == "__main__":
    main()
