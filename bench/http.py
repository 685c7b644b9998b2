"""HTTP API load test on the shared-corpus index: count, ntd and infgram_prob at concurrency 1, 16 and 64, the
same queries through the bare engine in-process, and count beside a slow CNF query.

The server (`gramdex serve`) and the load generator (a lean raw-socket asyncio client on keep-alive
connections) are separate processes on loopback; the client's CPU use is printed beside its figures. Rounds
interleave HTTP and bare-engine runs; the tables show medians over rounds.

    python -m bench.corpus_index      # once: builds .bench-data/enwiki
    python -m bench.http [--rounds 3] [--seconds 3] [--workers 1]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.heldout import NgramSampler

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
INDEX = REPO / ".bench-data" / "enwiki"
TOKENIZER = SHARED / "reference" / "wiki-bpe32k-tokenizer.json.gz"
OPS = ("count", "ntd", "infgram_prob")
CONCURRENCY = (1, 16, 64)


# --- queries ---

def draw_queries(n: int, seed: int) -> dict[str, list[Any]]:
    """n-grams of held-out Wikipedia text, tokenized with the index's tokenizer."""
    ngram = NgramSampler(seed, max_articles=400).ngram

    return {"count": [ngram(1, 10) for _ in range(n)],
            "ntd": [ngram(2, 6) for _ in range(n)],
            "infgram_prob": [ngram(2, 30) for _ in range(n)]}


def bodies(op: str, queries: list[list[int]]) -> tuple[str, list[dict[str, Any]]]:
    if op == "count":
        return "/v1/indexes/enwiki/count", [{"query_ids": q} for q in queries]
    if op == "ntd":
        return "/v1/indexes/enwiki/ntd", [{"prompt_ids": q} for q in queries]
    return "/v1/indexes/enwiki/infgram/prob", [{"prompt_ids": q[:-1], "cont_id": q[-1]} for q in queries]


# --- the load generator (runs in its own process: `python -m bench.http --client SPEC`) ---

def _request(path: str, body: dict[str, Any]) -> bytes:
    data = json.dumps(body, separators=(",", ":")).encode()
    return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\n\r\n").encode() + data


async def _connection(port: int, requests: list[bytes], start: int, stop_at: float, warm_until: float,
                      out: list[float], errors: list[int]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    i = start
    try:
        while True:
            now = time.perf_counter()
            if now >= stop_at:
                return
            writer.write(requests[i % len(requests)])
            i += 1
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            await reader.readexactly(length)
            done = time.perf_counter()
            if head[9:12] != b"200":
                errors.append(int(head[9:12]))
            elif now >= warm_until:
                out.append(done - now)
    finally:
        writer.close()


async def _load(spec: dict[str, Any]) -> dict[str, Any]:
    requests = [_request(spec["path"], b) for b in spec["bodies"]]
    side = [_request(spec["side_path"], b) for b in spec.get("side_bodies", [])]
    begin = time.perf_counter()
    warm_until = begin + spec["warmup"]
    stop_at = warm_until + spec["seconds"]
    lat: list[float] = []
    errors: list[int] = []
    side_lat: list[float] = []
    tasks = [_connection(spec["port"], requests, c * 7919, stop_at, warm_until, lat, errors)
             for c in range(spec["concurrency"])]
    if side:
        tasks.append(_connection(spec["port"], side, 0, stop_at, begin, side_lat, errors))
    cpu0 = os.times()
    await asyncio.gather(*tasks)
    cpu1 = os.times()
    wall = time.perf_counter() - warm_until
    cpu = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
    return {"latencies": lat, "errors": errors, "side": side_lat, "seconds": wall,
            "client_cpu": cpu / (time.perf_counter() - begin)}


def client_main(spec_file: str) -> None:
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    spec = json.loads(Path(spec_file).read_text())
    print(json.dumps(asyncio.run(_load(spec))))


# --- orchestration ---

def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(p / 100 * len(s)))]


def run_client(spec: dict[str, Any], tmp: Path) -> dict[str, Any]:
    f = tmp / "spec.json"
    f.write_text(json.dumps(spec))
    out = subprocess.run([sys.executable, "-m", "bench.http", "--client", str(f)], capture_output=True, text=True,
                         cwd=REPO, check=True)
    return json.loads(out.stdout)


def start_server(port: int, workers: int) -> subprocess.Popen[bytes]:
    import httpx

    index = f"enwiki={INDEX},tokenizer={TOKENIZER},token_width=2,eos_token_id=0"
    proc = subprocess.Popen([sys.executable, "-m", "index_tools.cli", "serve", "--index", index, "--port", str(port),
                             "--workers", str(workers)], cwd=REPO, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200:
                return proc
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("server did not start")


def engine_run(engine: Any, op: str, queries: list[list[int]], seconds: float) -> list[float]:
    calls = {"count": lambda q: engine.count(q), "ntd": lambda q: engine.ntd(q, 1000),
             "infgram_prob": lambda q: engine.infgram_prob(q[:-1], q[-1])}
    fn = calls[op]
    lat: list[float] = []
    stop = time.perf_counter() + seconds
    i = 0
    while time.perf_counter() < stop:
        q = queries[i % len(queries)]
        i += 1
        t = time.perf_counter()
        fn(q)
        lat.append(time.perf_counter() - t)
    return lat


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--client", help=argparse.SUPPRESS)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=3.0, help="measured seconds per run")
    ap.add_argument("--warmup", type=float, default=0.5)
    ap.add_argument("--workers", type=int, default=1, help="uvicorn workers of the server")
    ap.add_argument("--queries", type=int, default=500)
    ap.add_argument("--ops", default=",".join(OPS))
    ap.add_argument("--concurrency", default=",".join(map(str, CONCURRENCY)))
    a = ap.parse_args()
    if a.client:
        client_main(a.client)
        return
    import tempfile

    from native import Engine

    ops = a.ops.split(",")
    levels = [int(c) for c in a.concurrency.split(",")]
    queries = draw_queries(a.queries, seed=1)
    engine = Engine(INDEX, token_width=2, eos_token_id=0)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    server = start_server(port, a.workers)
    tmp = Path(tempfile.mkdtemp(prefix="gramdex-bench-"))
    results: dict[tuple[str, str], list[dict[str, float]]] = {}
    # a CNF of two frequent words: hundreds of ms per query on this index
    slow_cnf = {"query": "the AND of", "max_clause_freq": 500000, "max_diff_tokens": 1000, "timeout_ms": 30000}
    try:
        for r in range(a.rounds):
            for op in ops:
                path, body_list = bodies(op, queries[op])
                order = ["engine", *[f"http c={c}" for c in levels]]
                if r % 2:
                    order.reverse()  # interleave: alternate which goes first
                for what in order:
                    if what == "engine":
                        lat = engine_run(engine, op, queries[op], a.seconds)
                        row = {"p50": pct(lat, 50), "p99": pct(lat, 99), "rps": len(lat) / a.seconds, "cpu": 0.0}
                    else:
                        c = int(what.split("=")[1])
                        out = run_client({"port": port, "path": path, "bodies": body_list, "concurrency": c,
                                          "seconds": a.seconds, "warmup": a.warmup}, tmp)
                        if out["errors"]:
                            print(f"  {op} {what}: {len(out['errors'])} errors, e.g. {out['errors'][:3]}")
                        lat = out["latencies"]
                        row = {"p50": pct(lat, 50), "p99": pct(lat, 99), "rps": len(lat) / out["seconds"],
                               "cpu": out["client_cpu"]}
                    results.setdefault((op, what), []).append(row)
            # count at c=16 while a slow CNF query runs beside it on its own connection
            path, body_list = bodies("count", queries["count"])
            out = run_client({"port": port, "path": path, "bodies": body_list, "concurrency": 16,
                              "seconds": a.seconds, "warmup": a.warmup, "side_path": "/v1/indexes/enwiki/count",
                              "side_bodies": [slow_cnf]}, tmp)
            lat = out["latencies"]
            results.setdefault(("count", "http c=16 + slow CNF"), []).append(
                {"p50": pct(lat, 50), "p99": pct(lat, 99), "rps": len(lat) / out["seconds"], "cpu": out["client_cpu"],
                 "cnf_ms": statistics.median(out["side"]) * 1000 if out["side"] else float("nan"),
                 "cnf_n": len(out["side"])})
            print(f"round {r + 1}/{a.rounds} done", file=sys.stderr)
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(10)
    print(f"\nHTTP API on {INDEX.name} ({engine.tok_cnt:,} tokens), server workers={a.workers}, "
          f"{os.cpu_count()} CPUs, medians of {a.rounds} rounds x {a.seconds:g} s")
    print(f"{'op':<14}{'run':<24}{'p50 ms':>9}{'p99 ms':>9}{'req/s':>10}{'client CPU':>12}")
    med = {}
    for (op, what), rows in results.items():
        m = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
        med[(op, what)] = m
        extra = f"   slow CNF: {m['cnf_ms']:.0f} ms median, {m['cnf_n']:.0f} done" if "cnf_ms" in m else ""
        print(f"{op:<14}{what:<24}{m['p50'] * 1000:>9.3f}{m['p99'] * 1000:>9.3f}{m['rps']:>10.0f}"
              f"{m['cpu'] * 100:>11.0f}%{extra}")
    print("\nHTTP overhead per request at concurrency 1 (HTTP p50 - engine p50):")
    for op in ops:
        if (op, "http c=1") in med:
            print(f"  {op:<14}{(med[(op, 'http c=1')]['p50'] - med[(op, 'engine')]['p50']) * 1000:.3f} ms")


if __name__ == "__main__":
    main()
