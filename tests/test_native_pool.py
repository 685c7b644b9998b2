"""Engine calls as data (`Call`) run on the native pool give the answers of the same calls run in place, and the
service's lanes built on it bound their backlog, survive cancelled waiters and settle every call at shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import select
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from support.index_factory import random_shards, write_index

import native
from native.errors import DeadlineExceededError, InvalidQueryError
from native.jobs import Call, Pool
from service import limits
from service.errors import Problem
from service.limits import Lane


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> native.Engine:
    shards = random_shards(5, shards=2, docs=60, max_len=50, vocab=10)
    path: Path = write_index(tmp_path_factory.mktemp("pool"), shards, 2)
    return native.Engine(path, token_width=2, eos_token_id=0)


def _calls(engine: native.Engine, rng: random.Random, n: int) -> list[Call[Any]]:
    makers = [
        lambda p: engine.count_call(p),
        lambda p: engine.find_call(p),
        lambda p: engine.prob_call(p, 3),
        lambda p: engine.infgram_prob_call(p + [7], 3),
        lambda p: engine.ntd_call(p, 4),
        lambda p: engine.infgram_ntd_call(p + [9], 8),
    ]
    return [makers[i % len(makers)]([rng.randrange(1, 10) for _ in range(rng.randint(0, 3))]) for i in range(n)]


def test_pool_answers_equal_calls_run_in_place(engine: native.Engine) -> None:
    rng = random.Random(1)
    pooled = _calls(engine, rng, 300)
    rng = random.Random(1)
    expected = [c.run() for c in _calls(engine, rng, 300)]
    fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
    pool = Pool(3, fd)
    try:
        for c in pooled:
            pool.submit(c)
        finished: dict[int, Any] = {}
        index = {id(c): i for i, c in enumerate(pooled)}
        deadline = time.monotonic() + 30
        while len(finished) < len(pooled) and time.monotonic() < deadline:
            select.select([fd], [], [], 1.0)
            try:
                os.eventfd_read(fd)
            except BlockingIOError:
                pass
            for c in pool.take_done():
                finished[index[id(c)]] = c.finish()
        assert [finished[i] for i in range(len(pooled))] == expected
        assert any(getattr(r, "approx", False) for r in expected)  # ntd sampled at max_support=4
    finally:
        pool.close()
        os.close(fd)


def test_errors_come_back_from_the_pool(engine: native.Engine) -> None:
    with pytest.raises(InvalidQueryError, match="cont"):
        engine.prob_call([1], 1 << 20)  # checked before the call exists
    fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
    pool = Pool(1, fd)
    try:
        late = engine.ntd_call([1], 4, timeout_ms=0.001)
        time.sleep(0.01)
        bad = engine.count_call([70000])  # above the u16 vocabulary: the C core refuses it
        pool.submit(late)
        pool.submit(bad)
    finally:
        left = pool.close()  # ran both before stopping
        os.close(fd)
    assert {id(c) for c in left} == {id(late), id(bad)}
    with pytest.raises(DeadlineExceededError, match="before the query started"):
        late.finish()
    with pytest.raises(InvalidQueryError):
        bad.finish()
    with pytest.raises(native.GramdexError, match="closed"):
        pool.submit(engine.count_call([1]))


@pytest.fixture
def no_spin(monkeypatch: pytest.MonkeyPatch) -> None:
    """A lone call is otherwise answered within run() (the loop polls for it), before a test can see it queued."""
    monkeypatch.setattr(limits, "SPIN_S", 0.0)


def test_a_lone_call_is_answered_while_the_loop_polls(engine: native.Engine) -> None:
    async def scenario() -> None:
        lane = Lane("lone", threads=1, max_queue=0, retry_after_s=1)
        try:
            for p in ([1], [2, 3], [9]):
                assert await lane.run(engine.count_call(p)) == engine.count(p)
            with pytest.raises(InvalidQueryError):
                await lane.run(engine.count_call([70000]))
        finally:
            lane.shutdown()

    asyncio.run(scenario())


@pytest.mark.usefixtures("no_spin")
def test_lane_runs_calls_and_callables_and_bounds_its_backlog(engine: native.Engine) -> None:
    async def scenario() -> None:
        lane = Lane("test", threads=2, max_queue=50, retry_after_s=3)
        rng = random.Random(2)
        prompts = [[rng.randrange(1, 10) for _ in range(rng.randint(1, 3))] for _ in range(52)]
        tasks = [asyncio.ensure_future(lane.run(engine.count_call(p) if i % 2 else (lambda p=p: engine.count(p))))
                 for i, p in enumerate(prompts)]
        await asyncio.sleep(0)  # every task is now pending in the lane
        assert lane.pending == 52
        with pytest.raises(Problem) as over:
            await lane.run(engine.count_call([1]))
        assert over.value.status == 503 and over.value.headers == {"Retry-After": "3"}
        tasks[1].cancel()  # a waiter that went away: its call still runs and is freed, the others are answered
        results = await asyncio.gather(*tasks, return_exceptions=True)
        assert isinstance(results[1], asyncio.CancelledError)
        assert [r for i, r in enumerate(results) if i != 1] == [engine.count(p) for i, p in enumerate(prompts)
                                                                 if i != 1]
        assert lane.pending == 0
        queued = [asyncio.ensure_future(lane.run(engine.ntd_call([2], 4))) for _ in range(20)]
        await asyncio.sleep(0)
        lane.shutdown()  # runs what is queued and answers its waiters
        answers = await asyncio.gather(*queued)
        assert all(a == engine.ntd([2], 4) for a in answers)

    asyncio.run(scenario())


@pytest.mark.usefixtures("no_spin")
def test_an_index_stays_in_use_until_its_pooled_calls_are_done(engine: native.Engine) -> None:
    """A broken index is unmapped only after its last call: a Call counts from its creation to its finish (or its
    discard when a full lane refuses it), not just while it is being built."""
    from service.registry import GuardedEngine, Lifetime

    life = Lifetime("pool-test", engine)
    guarded = GuardedEngine(engine, life)
    first, second = guarded.count_call([1]), guarded.ntd_call([2], 4)
    assert life.calls == 2
    assert first.run() == engine.count([1])
    assert life.calls == 1
    second.discard()
    assert life.calls == 0

    async def refused() -> None:
        lane = Lane("tiny", threads=1, max_queue=0, retry_after_s=1)
        try:
            busy = asyncio.ensure_future(lane.run(guarded.ntd_call([2], 4)))
            await asyncio.sleep(0)
            with pytest.raises(Problem):
                await lane.run(guarded.count_call([1]))  # discarded by the full lane
            assert life.calls == 1
            await busy
            assert life.calls == 0
        finally:
            lane.shutdown()

    asyncio.run(refused())


def _thread_nice_values() -> dict[int, int]:
    """The nice value of each of this process's threads, from /proc (field 19 of stat)."""
    out = {}
    for tid in os.listdir("/proc/self/task"):
        with contextlib.suppress(FileNotFoundError):
            stat = Path(f"/proc/self/task/{tid}/stat").read_text()
            out[int(tid)] = int(stat[stat.rindex(")") + 2:].split()[16])
    return out


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux /proc to read per-thread nice values")
def test_slow_lane_threads_run_at_lower_priority(engine: native.Engine) -> None:
    """Both kinds of slow-lane thread (native pool, Python executor) take the lane's nice value; the caller's own
    priority and the fast lane's stay as they were."""
    before = _thread_nice_values()

    async def main() -> None:
        slow, fast = Lane("slow", 2, 4, 1, nice=7), Lane("fast", 2, 4, 1)
        try:
            assert await slow.run(engine.count_call([1])) == engine.count([1])
            assert await slow.run(lambda: engine.count([2])) == engine.count([2])
            assert await fast.run(engine.count_call([1])) == engine.count([1])
            assert await fast.run(lambda: engine.count([2])) == engine.count([2])
            new = {t: n for t, n in _thread_nice_values().items() if t not in before}
            # the slow lane's 2 native threads and at least its first Python thread; none of the fast lane's
            assert sorted(new.values()).count(7) >= 3 and set(new.values()) <= {0, 7}, new
            assert os.getpriority(os.PRIO_PROCESS, 0) == before[threading.get_native_id()]
        finally:
            slow.shutdown()
            fast.shutdown()

    asyncio.run(main())
    with pytest.raises(native.GramdexError, match="nice"):
        Pool(1, 0, nice=20)


def test_a_refused_priority_change_leaves_the_lane_working(engine: native.Engine,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """A sandbox may refuse setpriority (EPERM): the slow lane's Python threads then run at the default priority."""
    def refuse(*_: Any) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "setpriority", refuse)

    async def main() -> None:
        lane = Lane("slow", 1, 4, 1, nice=5)
        try:
            assert await lane.run(lambda: engine.count([2])) == engine.count([2])
        finally:
            lane.shutdown()

    asyncio.run(main())
