"""gramdex vs infini-gram on the same index: latency per query type, interleaved call by call.

Queries come from held-out Wikipedia text (`heldout_dev.txt`) tokenized with the shared BPE
tokenizer; both engines answer them warm, in one process, alternating which goes first. Prints
median and p99 per type for both, the ratio gramdex/infini-gram, and how many answers differ.

    python -m bench.corpus_index        # once: builds .bench-data/enwiki (infini-gram's indexer)
    python -m bench.engine [--index DIR] [--n 300]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.corpus_index import DEFAULT_OUT
from bench.heldout import HELDOUT, NgramSampler
from native import Engine


def draw_queries(n: int, seed: int) -> dict[str, list[Any]]:
    sampler = NgramSampler(seed)
    ngram, rng = sampler.ngram, sampler.rng

    def split(ids: list[int]) -> tuple[list[int], int]:
        return ids[:-1], ids[-1]

    def term() -> list[int]:
        return ngram(1, 2)

    return {
        "count": [ngram(1, 20) for _ in range(n)],
        "prob": [split(ngram(2, 20)) for _ in range(n)],
        "ntd": [ngram(2, 6) for _ in range(n)],
        "ntd (1-token prompt)": [ngram(1, 1) for _ in range(max(20, n // 10))],
        "infgram_prob": [split(ngram(2, 51)) for _ in range(n)],
        "infgram_ntd": [ngram(1, 50) for _ in range(n // 2)],
        "count_cnf": [[[term() for _ in range(rng.randint(1, 2))] for _ in range(rng.randint(2, 3))]
                      for _ in range(n // 2)],
        "search_docs": [ngram(1, 10) for _ in range(n)],
    }


def ntd_answer(r: Any) -> Any:
    if isinstance(r, dict):
        return r["prompt_cnt"], {t: v["cont_cnt"] for t, v in r["result_by_token_id"].items()}, r["approx"]
    return r.prompt_cnt, r.counts, r.approx


def build_calls(peer: Any, ours: Engine) -> dict[str, tuple[Callable[[Any], Any], Callable[[Any], Any]]]:
    """Per query type: (peer call, gramdex call), each returning a comparable answer."""
    return {
        "count": (lambda q: peer.count(q)["count"], ours.count),
        "prob": (lambda q: peer.prob(q[0], q[1])["cont_cnt"], lambda q: ours.prob(q[0], q[1]).cont_cnt),
        "ntd": (lambda q: ntd_answer(peer.ntd(q)), lambda q: ntd_answer(ours.ntd(q))),
        "ntd (1-token prompt)": (lambda q: ntd_answer(peer.ntd(q)), lambda q: ntd_answer(ours.ntd(q))),
        "infgram_prob": (lambda q: _peer_infgram_prob(peer, q), lambda q: _ours_infgram_prob(ours, q)),
        "infgram_ntd": (lambda q: _peer_infgram_ntd(peer, q), lambda q: _ours_infgram_ntd(ours, q)),
        "count_cnf": (lambda q: tuple(peer.count_cnf(q).values()),
                      lambda q: (lambda r: (r.count, r.approx))(ours.count_cnf(q))),
        "search_docs": (lambda q: peer.search_docs(q, maxnum=1, max_disp_len=100)["cnt"],
                        lambda q: ours.search_docs(q, maxnum=1, max_disp_len=100).cnt),
    }


def _peer_infgram_prob(peer: Any, q: Any) -> Any:
    r = peer.infgram_prob(q[0], q[1])
    return r["suffix_len"], r["prompt_cnt"], r["cont_cnt"]


def _ours_infgram_prob(ours: Engine, q: Any) -> Any:
    r = ours.infgram_prob(q[0], q[1])
    return r.suffix_len, r.prompt_cnt, r.cont_cnt


def _peer_infgram_ntd(peer: Any, q: Any) -> Any:
    r = peer.infgram_ntd(q)
    return r["suffix_len"], ntd_answer(r)


def _ours_infgram_ntd(ours: Engine, q: Any) -> Any:
    r = ours.infgram_ntd(q)
    return r.suffix_len, ntd_answer(r)


def peer_eos_corner(ours: Engine, prompt: list[int]) -> bool:
    """The known infini-gram miscount: the prompt ends a shard and is also followed by a separator, so its
    range starts with an end-of-shard match and ends with an end-of-document one; infini-gram maps both
    to eos and credits the whole range (or a large part of it) to eos."""
    return ours.count(prompt + [ours.max_token_id]) > 0 and any(
        _ends_shard(ours, s, prompt) for s in range(ours.num_shards))


def ntd_is_exact(ours: Engine, prompt: list[int], counts: dict[int, int]) -> bool:
    """Brute-force check of an exact ntd answer: every continuation count equals a direct count."""
    eos_end = ours.count(prompt + [ours.max_token_id]) + sum(
        1 for s in range(ours.num_shards) if _ends_shard(ours, s, prompt))
    for tok, cnt in counts.items():
        direct = ours.count(prompt + [tok])
        if tok == ours.eos_token_id:
            direct += eos_end
        if direct != cnt:
            return False
    return True


def _ends_shard(ours: Engine, s: int, prompt: list[int]) -> bool:
    info = ours.shards[s]
    n = len(prompt)
    if n == 0 or n > info.tok_cnt:
        return False
    doc = ours.get_doc_by_ix(ours._doc_base[s] + info.doc_cnt - 1, max_disp_len=10**9)
    return doc.token_ids[-n:] == prompt


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(p * len(values)))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--index", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--n", type=int, default=300, help="queries per type (fewer for the slow types)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if not (args.index / "table.0").exists():
        sys.exit(f"{args.index}: no index; run `python -m bench.corpus_index` first")
    from infini_gram.engine import InfiniGramEngine

    peer = InfiniGramEngine(str(args.index), eos_token_id=0, vocab_size=65535, token_dtype="u16",
                            ds_prefetch_depth=0, sa_prefetch_depth=0, od_prefetch_depth=0)
    ours = Engine(args.index, token_width=2, eos_token_id=0)
    queries = draw_queries(args.n, args.seed)
    calls = build_calls(peer, ours)
    print(f"index: {args.index} ({ours.tok_cnt:,} tokens, {ours.doc_cnt:,} docs); "
          f"queries from {HELDOUT.name}, seed {args.seed}")
    header = f"{'query type':<22}{'n':>5}  {'infini-gram p50':>15} {'p99':>9}  {'gramdex p50':>12} {'p99':>9}" \
             f"  {'ratio p50':>9} {'ratio p99':>9}  {'differ':>6}"
    print(header)
    print("-" * len(header))
    for kind, qs in queries.items():
        peer_call, our_call = calls[kind]
        for q in qs:  # warm: both engines touch every page these queries need once
            peer_call(q)
            our_call(q)
        tp, tg, differ, peer_wrong = [], [], 0, 0
        for i, q in enumerate(qs):
            order = [(peer_call, tp), (our_call, tg)] if i % 2 == 0 else [(our_call, tg), (peer_call, tp)]
            answers = []
            for call, times in order:
                t0 = time.perf_counter()
                answers.append(call(q))
                times.append(time.perf_counter() - t0)
            a, b = answers if order[0][1] is tp else answers[::-1]
            if a != b:
                differ += 1
                prompt = q if kind.startswith("ntd") else q[len(q) - b[0]:] if kind == "infgram_ntd" else None
                if prompt is not None and peer_eos_corner(ours, prompt):
                    ntd = b if kind.startswith("ntd") else b[1]
                    peer_wrong += ntd[2] or ntd_is_exact(ours, prompt, ntd[1])
        p50p, p99p, p50g, p99g = (pct(tp, 0.5) * 1e3, pct(tp, 0.99) * 1e3, pct(tg, 0.5) * 1e3, pct(tg, 0.99) * 1e3)
        note = f" ({peer_wrong} in infini-gram's end-of-shard/eos corner)" if peer_wrong else ""
        print(f"{kind:<22}{len(qs):>5}  {p50p:>12.4f} ms {p99p:>9.4f}  {p50g:>9.4f} ms {p99g:>9.4f}"
              f"  {p50g / p50p:>9.3f} {p99g / p99p:>9.3f}  {differ:>6}{note}")
    print(f"{sum(len(q) for q in queries.values())} queries; times include each engine's Python API call.")


if __name__ == "__main__":
    main()
