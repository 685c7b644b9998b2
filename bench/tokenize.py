"""Tokenize benchmark: Hugging Face tokenizers vs gramdex's native byte-level BPE encoder on the same
enwiki documents with the shared wiki tokenizer, interleaved in one process, on 1 and 2 threads.

Both run the builder's own paths (index_tools.tokenize.HFTokenizer, batches of 1024 documents): tokenizers'
encode_batch_fast (its Rayon pool limited to one thread with TOKENIZERS_PARALLELISM=false) and the native
encoder (batches split over the threads, word caches emptied before each pass). Prints tokens/s for each,
the speed-up and the number of documents whose ids differ (must be 0).
Run: python -m bench.tokenize [--mb 20] [--rounds 1]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("RAYON_NUM_THREADS", "2")  # before tokenizers starts its pool

import numpy as np  # noqa: E402

from index_tools.tokenize import HFTokenizer, dtype_for_width  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
CORPUS = SHARED / "corpora" / "text" / "enwiki_part00.jsonl.gz"
TOKENIZER_GZ = SHARED / "reference" / "wiki-bpe32k-tokenizer.json.gz"
BATCH_DOCS = 1024


def load_docs(path: Path, max_bytes: int) -> list[str]:
    docs: list[str] = []
    total = 0
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            docs.append(json.loads(line)["text"])
            total += len(docs[-1].encode("utf-8"))
            if total >= max_bytes:
                break
    return docs


def run(tok: HFTokenizer, batches: list[list[str]], native: bool, threads: int) -> tuple[float, list[np.ndarray]]:
    dtype = dtype_for_width(tok.width)
    os.environ["TOKENIZERS_PARALLELISM"] = "true" if threads > 1 else "false"
    tok.threads = threads
    tok._native.reset_caches()  # every native pass starts with empty word caches
    out: list[np.ndarray] = []
    start = time.perf_counter()
    for batch in batches:
        out.extend(tok.encode_batch(batch) if native else tok._reference(batch, dtype))
    return time.perf_counter() - start, out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mb", type=float, default=20, help="MB of UTF-8 text from enwiki_part00 (default 20)")
    p.add_argument("--rounds", type=int, default=1, help="interleaved rounds (default 1)")
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    a = p.parse_args(argv)
    if not CORPUS.exists() or not TOKENIZER_GZ.exists():
        print(f"needs {CORPUS} and {TOKENIZER_GZ}", file=sys.stderr)
        return 2
    tok = HFTokenizer.from_file(TOKENIZER_GZ)
    if not tok.uses_native:
        print("the wiki tokenizer is not eligible for the native encoder", file=sys.stderr)
        return 1
    docs = load_docs(CORPUS, int(a.mb * 1e6))
    text_bytes = sum(len(d.encode("utf-8")) for d in docs)
    batches = [docs[i:i + BATCH_DOCS] for i in range(0, len(docs), BATCH_DOCS)]
    print(f"{len(docs)} documents, {text_bytes / 1e6:.1f} MB of text, {os.cpu_count()} CPUs, "
          f"batches of {BATCH_DOCS} documents")

    best: dict[tuple[str, int], float] = {}
    tokens = 0
    mismatches: dict[int, int] = {}
    for rnd in range(a.rounds):
        for threads in a.threads:
            results = {}
            for name in ("tokenizers", "native"):
                secs, ids = run(tok, batches, name == "native", threads)
                results[name] = ids
                tokens = sum(len(x) for x in ids)
                best[name, threads] = min(best.get((name, threads), secs), secs)
                print(f"round {rnd + 1}  {name:10s}  {threads} thread{'s' if threads > 1 else ' '}  "
                      f"{secs:7.2f} s  {tokens / secs / 1e6:6.2f} M tokens/s")
            bad = sum(1 for x, y in zip(results["tokenizers"], results["native"], strict=True)
                      if not np.array_equal(x, y))
            mismatches[threads] = mismatches.get(threads, 0) + bad

    print(f"\n{tokens} tokens per pass; best of {a.rounds} round(s):")
    print(f"{'threads':>7s}  {'tokenizers tok/s':>16s}  {'native tok/s':>14s}  {'per thread':>12s}  "
          f"{'ratio':>6s}  {'docs differing':>14s}")
    for threads in a.threads:
        hf = tokens / best["tokenizers", threads]
        nat = tokens / best["native", threads]
        print(f"{threads:7d}  {hf:16,.0f}  {nat:14,.0f}  {nat / threads:12,.0f}  {nat / hf:5.1f}x  "
              f"{mismatches[threads]:14d}")
    return 0 if not any(mismatches.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
