"""One engine queried from many threads at once gives the same answers as one thread (the engine is
immutable after open and the binding releases the GIL during calls)."""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from support.index_factory import random_shards, write_index

import native


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> native.Engine:
    shards = random_shards(3, shards=2, docs=80, max_len=60, vocab=12)
    path: Path = write_index(tmp_path_factory.mktemp("threads"), shards, 2)
    return native.Engine(path, token_width=2, eos_token_id=0)


def test_concurrent_queries_match_sequential_answers(engine: native.Engine) -> None:
    rng = random.Random(11)
    prompts = [[rng.randrange(1, 12) for _ in range(rng.randint(0, 4))] for _ in range(300)]

    def answer(prompt: list[int]) -> tuple[Any, ...]:
        cnf = [[prompt[:1] or [1]], [[prompt[-1] if prompt else 2]]]
        return (engine.count(prompt), engine.ntd(prompt, max_support=4), engine.infgram_prob(prompt + [3], 5),
                engine.count_cnf(cnf, max_clause_freq=40), [s.end for s in engine.attribute(prompt * 3)])

    sequential = [answer(p) for p in prompts]
    with ThreadPoolExecutor(max_workers=8) as pool:
        concurrent = list(pool.map(answer, prompts))
    assert concurrent == sequential
    assert any(a[0] > 0 for a in sequential) and any(a[1].approx for a in sequential)
