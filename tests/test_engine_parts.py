"""An index split into parts (one engine per shard, as on separate machines) answers exactly like one engine
over all shards, when the parts are given the whole index's sampling unit, clause budget and suffix length."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from support.index_factory import random_shards, write_index

import native


@pytest.fixture(scope="module")
def split(tmp_path_factory: pytest.TempPathFactory) -> tuple[native.Engine, list[native.Engine]]:
    shards = random_shards(1, shards=3, docs=40, max_len=80, vocab=6)
    root: Path = tmp_path_factory.mktemp("parts")
    whole = native.Engine(write_index(root / "whole", shards, 2), token_width=2, eos_token_id=0)
    parts = [native.Engine(write_index(root / f"part{i}", [s], 2), token_width=2, eos_token_id=0)
             for i, s in enumerate(shards)]
    return whole, parts


def test_parts_merge_to_the_whole(split: tuple[native.Engine, list[native.Engine]]) -> None:
    whole, parts = split
    rng = random.Random(2)
    approx_seen = subsampled_seen = 0
    for _ in range(200):
        prompt = [rng.randrange(1, 6) for _ in range(rng.randint(0, 3))]
        support = rng.choice([1, 3, 10, 1000])
        unit, total = 1, sum(p.count(prompt) for p in parts)
        while total > unit * support:
            unit *= 2
        merged: dict[int, int] = {}
        for p in parts:
            for tok, cnt in p.ntd_with_unit(prompt, unit).counts.items():
                merged[tok] = merged.get(tok, 0) + cnt
        want = whole.ntd(prompt, support)
        assert (merged, unit > 1) == (want.counts, want.approx)
        approx_seen += want.approx

        cnf = [[prompt[:1] or [1]], [[rng.randrange(1, 6)], [rng.randrange(1, 6)]]]
        mcf = rng.choice([5, 50, 50_000])
        results = [p.find_cnf_part(cnf, len(parts), mcf, 3) for p in parts]
        totals = [sum(r[1][c] for r in results) for c in range(len(cnf))]
        got = (0, False, []) if 0 in totals else (
            sum(r[0].cnt for r in results), any(r[0].approx for r in results),
            [ptrs for r in results for ptrs in r[0].ptrs_by_shard])
        expected = whole.find_cnf(cnf, mcf, 3)
        assert got == (expected.cnt, expected.approx, expected.ptrs_by_shard)
        subsampled_seen += expected.approx

        assert max(p.longest_suffix(prompt) for p in parts) == whole.infgram_prob(prompt, 1).suffix_len
    assert approx_seen and subsampled_seen  # both approximate paths ran


def test_part_parameters_are_checked(split: tuple[native.Engine, list[native.Engine]]) -> None:
    _, parts = split
    with pytest.raises(native.InvalidQueryError, match="unit"):
        parts[0].ntd_with_unit([1], 3)
    with pytest.raises(native.InvalidQueryError, match="shards_total"):
        parts[0].find_cnf_part([[[1]]], 0)
