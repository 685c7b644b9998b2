"""Load and soak test of the HTTP API on the shared-corpus index: a bounded mixed workload (counts, ntd, ∞-gram,
CNF, documents, summarize) at rising concurrency until throughput stops growing (saturation), then open-loop probes
of --probe-seconds each, from that peak down in 10% steps, until one is sustained (the server keeps pace with the
schedule: p99 under --sustained-p99-ms and the backlog drained within a second of the schedule's end), then a soak
at 80% of the sustained rate, open loop (requests are sent on a fixed schedule, so a slow server cannot slow the
client down and hide its latency: latency is measured from the scheduled send time). A short closed-loop burst
overstates what a server holds for minutes (caches warm, no backlog), so the soak rate comes from the probes.

Reports throughput, p50/p99 per request type, errors (anything but 200 and the documented 503), the server's
RSS (with its summarizer workers) and open file descriptors over time, and the client's own CPU use (the client is
a lean raw-socket asyncio loop on keep-alive connections, in this process).

    python -m bench.load [--step-seconds 5] [--soak-seconds 600] [--max-concurrency 64]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.heldout import NgramSampler
from bench.process_tree import process_tree

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
INDEX = REPO / ".bench-data" / "enwiki"
TOKENIZER = SHARED / "reference" / "wiki-bpe32k-tokenizer.json.gz"
HELDOUT = SHARED / "corpora" / "text" / "heldout_dev.txt"
# the mix: mostly cheap lookups, as an interactive service sees them; the slow kinds bounded by their share
MIX = {"count": 35, "ntd": 12, "infgram_prob": 12, "infgram_ntd": 6, "cnf": 3, "search": 12, "document": 12,
       "summarize": 8}


def _request(path: str, body: dict[str, Any] | None) -> bytes:
    if body is None:
        return f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
    data = json.dumps(body, separators=(",", ":")).encode()
    return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\n\r\n").encode() + data


def make_requests(n: int, seed: int) -> dict[str, list[bytes]]:
    """n requests of each type from held-out Wikipedia text (not in the index), tokenized like the index."""
    sampler = NgramSampler(seed, max_articles=200)
    ngram, rng = sampler.ngram, sampler.rng

    words = ["the", "of", "city", "river", "war", "music", "born", "team", "school", "film", "church", "king"]
    ix = "/v1/indexes/enwiki"
    out: dict[str, list[bytes]] = {
        "count": [_request(f"{ix}/count", {"query_ids": ngram(1, 8)}) for _ in range(n)],
        "ntd": [_request(f"{ix}/ntd", {"prompt_ids": ngram(2, 6), "max_support": 500}) for _ in range(n)],
        "infgram_prob": [_request(f"{ix}/infgram/prob", {"prompt_ids": q[:-1], "cont_id": q[-1]})
                         for q in (ngram(2, 30) for _ in range(n))],
        "infgram_ntd": [_request(f"{ix}/infgram/ntd", {"prompt_ids": ngram(3, 20), "max_support": 500})
                        for _ in range(n)],
        "cnf": [_request(f"{ix}/count", {"query": f"{rng.choice(words[2:])} AND {rng.choice(words[2:])} OR "
                                                  f"{rng.choice(words[2:])}", "max_clause_freq": 50_000,
                                         "timeout_ms": 5_000}) for _ in range(n)],
        "search": [_request(f"{ix}/documents/search", {"query_ids": ngram(2, 5), "maxnum": 2, "max_disp_len": 200,
                                                       "seed": i}) for i in range(n)],
        "document": [_request(f"{ix}/documents/{rng.randrange(100_000)}?max_disp_len=300", None) for _ in range(n)],
        "summarize": [_request("/v1/summarize", {"text": a[:1500], "max_tokens": 40})
                      for a in (rng.choice(sampler.articles) for _ in range(n))],
    }
    return out


@dataclass
class Stats:
    lat: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    status: dict[str, dict[int, int]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(int)))

    def add(self, kind: str, status: int, seconds: float) -> None:
        self.status[kind][status] += 1
        if status == 200:
            self.lat[kind].append(seconds)

    def done(self) -> int:
        return sum(len(v) for v in self.lat.values())

    def errors(self) -> dict[int, int]:
        out: dict[int, int] = defaultdict(int)
        for per in self.status.values():
            for s, c in per.items():
                if s not in (200, 503):
                    out[s] += c
        return dict(out)

    def rejected(self) -> int:
        return sum(per.get(503, 0) for per in self.status.values())


class Conn:
    """One keep-alive connection; one request at a time."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def call(self, request: bytes) -> int:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
            self.writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        assert self.reader is not None
        try:
            self.writer.write(request)
            head = await self.reader.readuntil(b"\r\n\r\n")
            length, close = 0, False
            for line in head.split(b"\r\n"):
                low = line.lower()
                if low.startswith(b"content-length:"):
                    length = int(line[15:])
                elif low.startswith(b"connection:") and b"close" in low:
                    close = True
            await self.reader.readexactly(length)
            if close:
                self.close()
            return int(head[9:12])
        except (ConnectionError, asyncio.IncompleteReadError):
            self.close()
            return 599  # the connection failed: counted as an error

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


def _pick(rng: random.Random, requests: dict[str, list[bytes]]) -> tuple[str, bytes]:
    kind = rng.choices(list(MIX), weights=list(MIX.values()))[0]
    return kind, rng.choice(requests[kind])


async def closed_loop(port: int, requests: dict[str, list[bytes]], concurrency: int, seconds: float,
                      warmup: float) -> Stats:
    stats = Stats()
    begin = time.perf_counter()
    warm_until, stop_at = begin + warmup, begin + warmup + seconds

    async def worker(seed: int) -> None:
        rng, conn = random.Random(seed), Conn(port)
        while (now := time.perf_counter()) < stop_at:
            kind, req = _pick(rng, requests)
            status = await conn.call(req)
            if now >= warm_until:
                stats.add(kind, status, time.perf_counter() - now)
        conn.close()

    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    return stats


async def open_loop(port: int, requests: dict[str, list[bytes]], rate: float, connections: int, seconds: float,
                    on_sample: Any, sample_every: float) -> Stats:
    """Sends `rate` requests per second on schedule over a pool of connections; latency counts from the schedule,
    so time spent waiting for a free connection is part of it (no coordinated omission)."""
    stats = Stats()
    queue: asyncio.Queue[tuple[float, str, bytes] | None] = asyncio.Queue()

    async def worker() -> None:
        conn = Conn(port)
        while (item := await queue.get()) is not None:
            due, kind, req = item
            status = await conn.call(req)
            stats.add(kind, status, time.perf_counter() - due)
        conn.close()

    workers = [asyncio.create_task(worker()) for _ in range(connections)]
    rng = random.Random(7)
    start = time.perf_counter()
    next_sample, i = start, 0
    while (now := time.perf_counter()) < start + seconds:
        due = start + i / rate
        if due > now:
            await asyncio.sleep(due - now)
        kind, req = _pick(rng, requests)
        queue.put_nowait((due, kind, req))
        i += 1
        if now >= next_sample:
            on_sample(now - start, stats)
            next_sample += sample_every
    for _ in workers:
        queue.put_nowait(None)
    await asyncio.gather(*workers)
    on_sample(time.perf_counter() - start, stats)
    return stats


# --- the server and what it uses ---

def start_server(port: int, summarizer_workers: int) -> subprocess.Popen[bytes]:
    import httpx

    index = f"enwiki={INDEX},tokenizer={TOKENIZER},token_width=2,eos_token_id=0"
    env = {**os.environ, "GRAMDEX_SUMMARIZER__WORKERS": str(summarizer_workers)}
    proc = subprocess.Popen([sys.executable, "-m", "index_tools.cli", "serve", "--index", index, "--port",
                             str(port)], cwd=REPO, stdout=subprocess.DEVNULL, env=env)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            ok = httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200
            probe = httpx.post(f"http://127.0.0.1:{port}/v1/summarize", json={"text": "a b c . d e .", "max_tokens": 2},
                               timeout=30)
            if ok and (summarizer_workers == 0 or probe.status_code == 200):
                return proc
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    proc.kill()
    raise SystemExit("server did not start")


def usage(pid: int) -> tuple[float, float, int]:
    """(server RSS MiB, RSS of server plus its workers MiB, server open fds)."""
    def rss(p: int) -> float:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            pass
        return 0.0

    return rss(pid), sum(rss(p) for p in process_tree(pid)), len(os.listdir(f"/proc/{pid}/fd"))


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(p / 100 * len(s)))] * 1000 if s else float("nan")


def table(stats: Stats, seconds: float) -> str:
    rows = [f"    {'type':<14}{'done':>8}{'req/s':>9}{'p50 ms':>10}{'p99 ms':>10}  other statuses"]
    for kind in MIX:
        lat = stats.lat.get(kind, [])
        other = {s: c for s, c in stats.status.get(kind, {}).items() if s != 200}
        rows.append(f"    {kind:<14}{len(lat):>8}{len(lat) / seconds:>9.1f}{pct(lat, 50):>10.2f}{pct(lat, 99):>10.2f}"
                    f"  {other or ''}")
    return "\n".join(rows)


def find_sustained(port: int, requests: dict[str, list[bytes]], peak: float, connections: int,
                   a: argparse.Namespace, report: dict[str, Any]) -> float:
    """The highest of peak, 0.9 peak, 0.81 peak, ... that the server holds for a whole probe (open loop)."""
    print(f"sustained rate (open loop, {a.probe_seconds:g} s probes):")
    report["probes"] = []
    rate = peak
    for _ in range(12):
        start = time.perf_counter()
        stats = asyncio.run(open_loop(port, requests, rate, connections, a.probe_seconds, lambda *_: None,
                                      a.probe_seconds))
        drain = time.perf_counter() - start - a.probe_seconds
        lat = [x for v in stats.lat.values() for x in v]
        p99 = pct(lat, 99)
        held = p99 < a.sustained_p99_ms and drain < 1.0 and not stats.errors() and not stats.rejected()
        print(f"  {rate:8.1f} req/s: p50 {pct(lat, 50):7.2f} ms  p99 {p99:9.2f} ms  backlog drained in {drain:5.2f} s"
              f"  errors {stats.errors() or 0}  503s {stats.rejected()}  -> {'held' if held else 'fell behind'}",
              flush=True)
        report["probes"].append({"rps": rate, "p50_ms": pct(lat, 50), "p99_ms": p99, "drain_s": drain,
                                 "errors": stats.errors(), "rejected_503": stats.rejected(), "held": held})
        if held:
            report["sustained"] = {"rps": rate}
            print(f"sustained: {rate:.1f} req/s")
            return rate
        rate *= 0.9
    raise SystemExit("no probe rate was sustained")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--step-seconds", type=float, default=5.0, help="measured seconds per concurrency level")
    ap.add_argument("--warmup", type=float, default=1.0)
    ap.add_argument("--max-concurrency", type=int, default=64)
    ap.add_argument("--probe-seconds", type=float, default=60.0, help="length of each sustained-rate probe")
    ap.add_argument("--sustained-p99-ms", type=float, default=500.0,
                    help="a probe is sustained when its p99 (from the schedule) is under this")
    ap.add_argument("--soak-seconds", type=float, default=600.0, help="soak duration at 80%% of the sustained rate")
    ap.add_argument("--soak-share", type=float, default=0.8)
    ap.add_argument("--sample-seconds", type=float, default=10.0, help="RSS/fd sampling interval in the soak")
    ap.add_argument("--summarizer-workers", type=int, default=2)
    ap.add_argument("--requests", type=int, default=400, help="distinct requests drawn per type")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    a = ap.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    requests = make_requests(a.requests, seed=1)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = start_server(port, a.summarizer_workers)
    report: dict[str, Any] = {"cpus": os.cpu_count(), "mix": MIX, "ramp": [], "soak": {}}
    try:
        print(f"mixed workload on {INDEX.name}, {os.cpu_count()} CPUs, mix {MIX}")
        print("ramp (closed loop):")
        best, level = 0.0, 1
        concurrency = 1
        while concurrency <= a.max_concurrency:
            c0 = os.times()
            stats = asyncio.run(closed_loop(port, requests, concurrency, a.step_seconds, a.warmup))
            c1 = os.times()
            cpu = (c1.user - c0.user + c1.system - c0.system) / (a.step_seconds + a.warmup)
            rps = stats.done() / a.step_seconds
            all_lat = [x for v in stats.lat.values() for x in v]
            print(f"  c={concurrency:<4}{rps:>8.1f} req/s  p50 {pct(all_lat, 50):7.2f} ms  "
                  f"p99 {pct(all_lat, 99):8.2f} ms  503s {stats.rejected()}  errors {stats.errors() or 0}  "
                  f"client CPU {cpu * 100:.0f}%")
            report["ramp"].append({"concurrency": concurrency, "rps": rps, "p50_ms": pct(all_lat, 50),
                                   "p99_ms": pct(all_lat, 99), "rejected_503": stats.rejected(),
                                   "errors": stats.errors(), "client_cpu": cpu})
            if rps > best * 1.10:
                best, level = max(best, rps), concurrency
            elif concurrency >= 2 * level * 2:  # two doublings without 10% more: saturated
                break
            else:
                best = max(best, rps)
            concurrency *= 2
        report["saturation"] = {"rps": best, "concurrency": level}
        print(f"saturation: {best:.1f} req/s (reached at c={level})")
        sustained = find_sustained(port, requests, best, max(level * 2, 8), a, report)
        rate = a.soak_share * sustained
        print(f"soak: {rate:.1f} req/s open loop for {a.soak_seconds:g} s")
        samples: list[dict[str, float]] = []

        def sample(t: float, stats: Stats) -> None:
            own, total, fds = usage(server.pid)
            samples.append({"t": t, "rss_mib": own, "rss_all_mib": total, "fds": fds, "done": stats.done()})
            print(f"  t={t:6.0f}s  done {stats.done():>7}  server RSS {own:7.1f} MiB (with workers {total:7.1f})"
                  f"  fds {fds}", flush=True)

        c0 = os.times()
        stats = asyncio.run(open_loop(port, requests, rate, max(level * 2, 8), a.soak_seconds, sample,
                                      a.sample_seconds))
        c1 = os.times()
        cpu = (c1.user - c0.user + c1.system - c0.system) / a.soak_seconds
        print(table(stats, a.soak_seconds))
        first, last = samples[0], samples[-1]
        # growth after the first sample (which includes the warm-up of caches and the first mappings)
        settled = samples[min(1, len(samples) - 1)]
        print(f"  throughput {stats.done() / a.soak_seconds:.1f} req/s; errors {stats.errors() or 0}; "
              f"503s {stats.rejected()}; client CPU {cpu * 100:.0f}%")
        print(f"  server RSS {first['rss_mib']:.1f} -> {settled['rss_mib']:.1f} -> {last['rss_mib']:.1f} MiB; "
              f"with workers {first['rss_all_mib']:.1f} -> {last['rss_all_mib']:.1f} MiB; "
              f"fds {first['fds']} -> {last['fds']} (max {max(s['fds'] for s in samples)})")
        report["soak"] = {"seconds": a.soak_seconds, "target_rps": rate, "rps": stats.done() / a.soak_seconds,
                          "errors": stats.errors(), "rejected_503": stats.rejected(), "client_cpu": cpu,
                          "per_type": {k: {"done": len(stats.lat.get(k, [])), "p50_ms": pct(stats.lat.get(k, []), 50),
                                           "p99_ms": pct(stats.lat.get(k, []), 99)} for k in MIX},
                          "samples": samples}
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            server.kill()
    if a.json:
        a.json.write_text(json.dumps(report, indent=1))
    errors = report["soak"].get("errors")
    sys.exit(1 if errors else 0)


if __name__ == "__main__":
    main()
