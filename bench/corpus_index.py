"""Build the benchmark index of `../shared/corpora/text` with the shared BPE tokenizer.

Tokenizes with `tokenizers` into infini-gram v4 files (u16, one shard) and builds the suffix
array with infini-gram's own indexer, so both engines are measured on the very same files.
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import time
from pathlib import Path

import numpy as np
import tokenizers

from bench.peer import peer_build_table

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
CORPUS = SHARED / "corpora" / "text"
TOKENIZER = SHARED / "reference" / "wiki-bpe32k-tokenizer.json.gz"
DEFAULT_OUT = Path(__file__).resolve().parents[1] / ".bench-data" / "enwiki"


def load_tokenizer() -> tokenizers.Tokenizer:
    with gzip.open(TOKENIZER, "rt", encoding="utf-8") as f:
        return tokenizers.Tokenizer.from_str(f.read())


def tokenize_corpus(out: Path, tok: tokenizers.Tokenizer, limit_files: int | None) -> None:
    files = sorted(CORPUS.glob("enwiki_part*.jsonl.gz"))[:limit_files]
    sep = np.array([0xFFFF], dtype="<u2").tobytes()
    pos = meta_pos = docs = 0
    with open(out / "tokenized.0", "wb") as ftok, open(out / "offset.0", "wb") as foff, \
            open(out / "metadata.0", "wb") as fmeta, open(out / "metaoff.0", "wb") as fmoff:
        for path in files:
            with gzip.open(path, "rt", encoding="utf-8") as f:
                lines = f.readlines()
            rows = [json.loads(line) for line in lines]
            encs = tok.encode_batch([r.pop("text") for r in rows], add_special_tokens=False)
            for linenum, (row, enc) in enumerate(zip(rows, encs, strict=True)):
                body = np.asarray(enc.ids, dtype="<u2").tobytes()
                foff.write(np.uint64(pos).tobytes())
                ftok.write(sep + body)
                pos += len(sep) + len(body)
                line = json.dumps({"path": path.name, "linenum": linenum, "metadata": row}) + "\n"
                fmoff.write(np.uint64(meta_pos).tobytes())
                fmeta.write(line.encode())
                meta_pos += len(line.encode())
                docs += 1
            print(f"tokenized {path.name}: {docs} docs, {pos // 2} tokens", file=sys.stderr, flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--output", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--limit-files", type=int, default=None)
    args = ap.parse_args()
    args.output.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    if not (args.output / "tokenized.0").exists():
        tokenize_corpus(args.output, load_tokenizer(), args.limit_files)
    print(f"tokenize done in {time.time() - t0:.1f}s", file=sys.stderr, flush=True)
    t0 = time.time()
    if not (args.output / "table.0").exists():
        peer_build_table(args.output / "tokenized.0", args.output / "table.0", 2)
    print(f"suffix array done in {time.time() - t0:.1f}s", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
