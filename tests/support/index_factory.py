"""Write small infini-gram "v4" index directories from documents given as lists of token ids.

The suffix array is sorted by brute force in Python (raw byte order of the little-endian token bytes,
shorter suffix first), or built by infini-gram's own Rust indexer (`table="peer"`), so tests can check
that both agree and that gramdex reads what the peer writes.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

REPO = Path(__file__).resolve().parents[2]

Docs = Sequence[Sequence[int]]


def random_shards(seed: int, *, shards: int, docs: int, max_len: int, vocab: int) -> list[list[list[int]]]:
    """`shards` shards of `docs` documents of 0..max_len token ids drawn from [1, vocab)."""
    import random

    rng = random.Random(seed)
    return [[[rng.randrange(1, vocab) for _ in range(rng.randint(0, max_len))] for _ in range(docs)]
            for _ in range(shards)]


def sep_value(token_width: int) -> int:
    """The all-0xFF separator token, as an id."""
    return (1 << (8 * token_width)) - 1


def encode(tokens: Sequence[int], token_width: int) -> bytes:
    return b"".join(int(t).to_bytes(token_width, "little") for t in tokens)


def shard_stream(docs: Docs, token_width: int) -> tuple[list[int], list[int]]:
    """The shard's token stream (each doc = SEP + tokens) and the token index of every doc's SEP."""
    sep = sep_value(token_width)
    stream: list[int] = []
    doc_starts: list[int] = []
    for doc in docs:
        doc_starts.append(len(stream))
        stream.append(sep)
        stream.extend(int(t) for t in doc)
    return stream, doc_starts


def ptr_size_for(ds_size: int) -> int:
    # infini-gram's indexer: ratio = ceil(log2(ds_size) / 8); never below one byte for tiny shards.
    return max(1, math.ceil(math.log2(max(ds_size, 2)) / 8))


def brute_suffix_array(data: bytes, token_width: int) -> list[int]:
    """Byte offsets of every token position, sorted by the raw bytes that follow them."""
    return sorted(range(0, len(data), token_width), key=lambda p: data[p:])


def default_metadata(shard: int, doc: int) -> dict[str, Any]:
    return {"shard": shard, "doc": doc, "title": f"doc {shard}/{doc}"}


def metadata_line(linenum: int, meta: dict[str, Any]) -> str:
    return json.dumps({"path": "doc.jsonl", "linenum": linenum, "metadata": meta}) + "\n"


def _peer_builder():  # type: ignore[no-untyped-def]
    # bench/ is not an installed package: load bench/peer.py by path.
    spec = importlib.util.spec_from_file_location("_gramdex_bench_peer", REPO / "bench" / "peer.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.peer_build_table


def write_index(
    index_dir: str | os.PathLike[str],
    shards: Sequence[Docs],
    token_width: int,
    *,
    metadata: bool | Sequence[Sequence[dict[str, Any]]] = True,
    table: Literal["brute", "peer"] = "brute",
) -> Path:
    """Write tokenized.N, table.N, offset.N (and metadata.N + metaoff.N) for every shard N.

    `metadata` is True (default per-document objects), False (no metadata files) or one list of
    metadata objects per shard.
    """
    if token_width not in (1, 2, 4):
        raise ValueError(f"token_width must be 1, 2 or 4, not {token_width}")
    out = Path(index_dir)
    out.mkdir(parents=True, exist_ok=True)
    linenum = 0
    for s, docs in enumerate(shards):
        stream, doc_starts = shard_stream(docs, token_width)
        data = encode(stream, token_width)
        (out / f"tokenized.{s}").write_bytes(data)
        offsets = b"".join((i * token_width).to_bytes(8, "little") for i in doc_starts)
        (out / f"offset.{s}").write_bytes(offsets)
        if table == "brute":
            ps = ptr_size_for(len(data))
            sa = brute_suffix_array(data, token_width)
            (out / f"table.{s}").write_bytes(b"".join(p.to_bytes(ps, "little") for p in sa))
        elif table == "peer":
            # one part: the peer indexer's multi-thread merge fails on shards of a few bytes
            _peer_builder()(out / f"tokenized.{s}", out / f"table.{s}", token_width, cpus=1)
        else:
            raise ValueError(f"table must be 'brute' or 'peer', not {table!r}")
        if metadata is not False:
            lines: list[bytes] = []
            for d in range(len(docs)):
                meta = default_metadata(s, d) if metadata is True else metadata[s][d]
                lines.append(metadata_line(linenum, meta).encode())
                linenum += 1
            offsets, pos = [], 0
            for line in lines:
                offsets.append(pos)
                pos += len(line)
            (out / f"metadata.{s}").write_bytes(b"".join(lines))
            (out / f"metaoff.{s}").write_bytes(b"".join(o.to_bytes(8, "little") for o in offsets))
        else:
            linenum += len(docs)
    return out
