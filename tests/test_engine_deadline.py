"""Deadlines: past `timeout_ms` the C core stops its work and the call raises DeadlineExceededError,
leaving the engine usable; without a deadline the same calls finish with their full answer."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from support.index_factory import write_index

import native


@pytest.fixture(scope="module")
def busy(tmp_path_factory: pytest.TempPathFactory) -> native.Engine:
    # few distinct tokens, so every clause and prompt has many occurrences and real work to do
    rng = random.Random(7)
    docs = [[rng.randrange(1, 6) for _ in range(400)] for _ in range(100)]
    path: Path = write_index(tmp_path_factory.mktemp("deadline"), [docs], 2)
    return native.Engine(path, token_width=2, eos_token_id=0)


CNF = [[[1, 2]], [[3], [4]], [[5, 1]]]


def test_cnf_past_deadline_raises_then_engine_still_answers(busy: native.Engine) -> None:
    with pytest.raises(native.DeadlineExceededError, match="deadline"):
        busy.count_cnf(CNF, timeout_ms=0.001)
    full = busy.count_cnf(CNF)
    assert full.count > 0
    assert busy.count_cnf(CNF, timeout_ms=60_000) == full


def test_every_long_call_honours_its_deadline(busy: native.Engine) -> None:
    ids = [1, 2, 3, 4, 5] * 200
    calls = [
        lambda t: busy.ntd([1], max_support=1, timeout_ms=t),
        lambda t: busy.infgram_ntd([9, 1], max_support=1, timeout_ms=t),
        lambda t: busy.attribute(ids, timeout_ms=t),
        lambda t: busy.score(ids, timeout_ms=t),
        lambda t: busy.count_many([[1, 2]] * 1000, timeout_ms=t),
        lambda t: busy.search_docs_cnf(CNF, timeout_ms=t),
    ]
    for call in calls:
        with pytest.raises(native.DeadlineExceededError):
            call(0.0001)
        assert call(60_000) is not None
