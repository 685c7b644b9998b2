"""Index-build benchmark: gramdex vs infini-gram's indexer on the shared enwiki corpus, one shard.

Measures wall time and peak RSS (summed over the whole process tree, sampled every 50 ms) of
  * gramdex: `gramdex build` end to end, and its suffix-array step alone on the same tokenized.0,
    also under --memory-gb at a quarter of the shard's in-memory sorting size;
  * infini-gram: tokenizing the same files with the same tokenizer.json through a multiprocessing
    pool as its indexing.py does (whole files read, batches of 65536 lines mapped over the pool), and
    its bundled rust_indexing make-part / merge / concat (bench/peer.py) on gramdex's tokenized.0;
and checks that both tables are byte-identical. Run: python -m bench.build [--threads 2]
"""

from __future__ import annotations

import argparse
import gzip
import json
import multiprocessing as mp
import os
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from bench.process_tree import process_tree

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
CORPUS = SHARED / "corpora" / "text"
TOKENIZER_GZ = SHARED / "reference" / "wiki-bpe32k-tokenizer.json.gz"
PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass
class Measured:
    wall_s: float
    peak_rss: int  # bytes, process tree summed


def _tree_rss(root: int) -> int:
    total = 0
    for pid in process_tree(root):
        try:
            with open(f"/proc/{pid}/statm", "rb") as f:
                total += int(f.read().split()[1]) * PAGE
        except (OSError, ValueError, IndexError):
            pass
    return total


def run_measured(cmd: list[str], env: dict[str, str] | None = None) -> Measured:
    """Run cmd; wall time and the peak of the summed RSS of it and all its descendants."""
    start = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=REPO, env=env)
    peak = 0
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, _tree_rss(proc.pid))
            stop.wait(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - start
    stop.set()
    sampler.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed with {proc.returncode}")
    return Measured(wall, max(peak, usage.ru_maxrss * 1024))


# ---- infini-gram's tokenize step, as its indexing.py runs it (pool of processes, whole files) ----

_tok = None


def _init_worker(tokenizer_json: str) -> None:
    global _tok
    import tokenizers

    _tok = tokenizers.Tokenizer.from_file(tokenizer_json)


def _tok_line(line: str) -> tuple[bytes, dict[str, object]]:
    import numpy as np

    meta = json.loads(line.strip("\n"))
    ids = _tok.encode(meta.pop("text"), add_special_tokens=False).ids  # type: ignore[union-attr]
    return np.array(ids, dtype="<u2").tobytes(), meta


def peer_tokenize(files: list[Path], tokenizer_json: Path, out: Path, cpus: int) -> None:
    sep = b"\xff\xff"
    pos = meta_pos = 0
    with mp.get_context("fork").Pool(cpus, _init_worker, (str(tokenizer_json),)) as pool, \
            open(out / "tokenized.0", "wb") as ftok, open(out / "offset.0", "wb") as foff, \
            open(out / "metadata.0", "w") as fmeta, open(out / "metaoff.0", "wb") as fmoff:
        for path in files:
            with gzip.open(path, "rt", encoding="utf-8") as f:
                lines = f.readlines()
            for start in range(0, len(lines), 65536):
                for i, (body, meta) in enumerate(pool.map(_tok_line, lines[start:start + 65536])):
                    foff.write(pos.to_bytes(8, "little"))
                    ftok.write(sep + body)
                    pos += len(sep) + len(body)
                    line = json.dumps({"path": path.name, "linenum": start + i, "metadata": meta}) + "\n"
                    fmoff.write(meta_pos.to_bytes(8, "little"))
                    fmeta.write(line)
                    meta_pos += len(line)


def _dir_bytes(d: Path) -> int:
    return sum(p.stat().st_size for p in d.iterdir() if p.is_file())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=REPO / ".bench-data" / "build")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--limit-files", type=int, default=None)
    ap.add_argument("--skip-peer-tokenize", action="store_true", help="its pool tokenizer takes minutes")
    ap.add_argument("--peer-tokenize", nargs=2, metavar=("TOKENIZER", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    files = sorted(CORPUS.glob("enwiki_part*.jsonl.gz"))[: args.limit_files]
    if args.peer_tokenize:  # child process of the benchmark
        peer_tokenize(files, Path(args.peer_tokenize[0]), Path(args.peer_tokenize[1]), args.threads)
        return

    work = args.work
    shutil.rmtree(work, ignore_errors=True)
    (work / "in").mkdir(parents=True)
    for f in files:  # the same inputs for both, in one directory
        os.symlink(f, work / "in" / f.name)
    tokenizer = work / "tokenizer.json"
    with gzip.open(TOKENIZER_GZ, "rb") as src, open(tokenizer, "wb") as dst:
        shutil.copyfileobj(src, dst)
    py = sys.executable
    env = dict(os.environ, PYTHONPATH=str(REPO))
    results: dict[str, Measured] = {}

    gx = work / "gx"
    results["gramdex build (total)"] = run_measured(
        [py, "-m", "index_tools.cli", "build", "-i", str(work / "in"), "-o", str(gx), "--tokenizer",
         str(tokenizer), "--threads", str(args.threads), "-q"], env)
    tokens = json.loads((gx / "index.json").read_text())["token_count"]
    sa_cmd = ("import sys; from native import suffix_array as s; "
              "s.build(sys.argv[1], sys.argv[2], 2, memory_budget=int(sys.argv[3]), threads=int(sys.argv[4]))")
    results["gramdex suffix array"] = run_measured(
        [py, "-c", sa_cmd, str(gx / "tokenized.0"), str(work / "gx-sa"), "0", str(args.threads)], env)
    budget = tokens * 10 // 4  # a quarter of the in-memory sort (about 10 bytes per token)
    results[f"gramdex suffix array, --memory-gb {budget / 2**30:.3f}"] = run_measured(
        [py, "-c", sa_cmd, str(gx / "tokenized.0"), str(work / "gx-sa-budget"), str(budget),
         str(args.threads)], env)

    peer = work / "peer"
    peer.mkdir()
    if not args.skip_peer_tokenize:
        results["infini-gram tokenize (pool)"] = run_measured(
            [py, "-m", "bench.build", "--threads", str(args.threads), "--peer-tokenize", str(tokenizer),
             str(peer)] + (["--limit-files", str(args.limit_files)] if args.limit_files else []), env)
        same = (peer / "tokenized.0").read_bytes() == (gx / "tokenized.0").read_bytes()
        print(f"infini-gram tokenized.0 identical to gramdex's: {same}", file=sys.stderr)
    else:
        shutil.copy(gx / "tokenized.0", peer / "tokenized.0")
        for name in ("offset.0", "metadata.0", "metaoff.0"):
            shutil.copy(gx / name, peer / name)
    peer_cmd = ("import sys; from pathlib import Path; from bench.peer import peer_build_table; "
                "peer_build_table(Path(sys.argv[1]), Path(sys.argv[2]), 2, cpus=int(sys.argv[3]))")
    results["infini-gram suffix array"] = run_measured(
        [py, "-c", peer_cmd, str(gx / "tokenized.0"), str(peer / "table.0"), str(args.threads)], env)

    identical = all((work / n).read_bytes() == (peer / "table.0").read_bytes()
                    for n in ("gx-sa", "gx-sa-budget")) and \
        (gx / "table.0").read_bytes() == (peer / "table.0").read_bytes()
    print(f"\ncorpus: {len(files)} files, {tokens:,} tokens; threads {args.threads}; "
          f"{os.cpu_count()} CPUs")
    print(f"{'step':<46} {'wall s':>8} {'peak RSS MiB':>13} {'RSS B/token':>12}")
    for name, m in results.items():
        print(f"{name:<46} {m.wall_s:8.1f} {m.peak_rss / 2**20:13.0f} {m.peak_rss / tokens:12.2f}")
    sa_g, sa_p = results["gramdex suffix array"], results["infini-gram suffix array"]
    print(f"\nsuffix array: gramdex/infini-gram wall {sa_g.wall_s / sa_p.wall_s:.2f}x, "
          f"peak RSS {sa_g.peak_rss / sa_p.peak_rss:.2f}x")
    budget_key = next(k for k in results if "memory-gb" in k)
    print(f"memory budget slowdown: {results[budget_key].wall_s / sa_g.wall_s:.2f}x, "
          f"peak RSS {results[budget_key].peak_rss / 2**20:.0f} MiB")
    if "infini-gram tokenize (pool)" in results:
        tot_p = results["infini-gram tokenize (pool)"].wall_s + sa_p.wall_s
        tot_g = results["gramdex build (total)"].wall_s
        print(f"end to end: gramdex {tot_g:.1f} s vs infini-gram {tot_p:.1f} s ({tot_g / tot_p:.2f}x)")
    gx_index = _dir_bytes(gx)
    peer_index = sum((peer / n).stat().st_size for n in ("tokenized.0", "table.0", "offset.0",
                                                          "metadata.0", "metaoff.0"))
    print(f"index on disk: gramdex {gx_index:,} bytes, {gx_index / tokens:.3f} B/token (with index.json, "
          f"tokenizer.json.gz), infini-gram {peer_index:,} bytes, {peer_index / tokens:.3f} B/token")
    print(f"table.0 identical (in memory, under the budget, end to end): {identical}")


if __name__ == "__main__":
    main()
