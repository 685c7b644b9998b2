"""The asyncio SDK client against a real `gramdex serve`: the same endpoints and errors, concurrently."""

from __future__ import annotations

import asyncio

import gramdex_client as gc
import pytest
from gramdex_client import AsyncClient, all_of, any_of
from service_support.fixtures import Server


def test_async_endpoints(server: Server) -> None:
    async def main() -> None:
        async with AsyncClient(server.url, index="demo", retry=0) as c:
            infos, cat, dog, either = await asyncio.gather(
                c.indexes(), c.count("the cat"), c.count("the dog"), c.count(all_of(any_of("the cat", "the dog"))))
            assert {i.name for i in infos} == {"demo", "slow"} and either.count == cat.count + dog.count
            d = await c.ntd(cat.token_ids)
            assert d.prompt_cnt == cat.count and d.next_tokens
            top = d.next_tokens[0]
            p = await c.prob(cat.token_ids, top.token_id)
            assert p.prob == pytest.approx(top.prob)
            inf = await c.infgram_prob("zqxj the cat", top.token_id)
            assert inf.prob == pytest.approx(top.prob) and inf.suffix_len == len(cat.token_ids)
            found, ntd_inf = await asyncio.gather(c.find("the cat"), c.infgram_ntd("the cat"))
            assert found.count == cat.count and ntd_inf.next_tokens == d.next_tokens
            docs = await c.search_documents("the cat", maxnum=1)
            doc = await c.get_document(docs.documents[0].doc_ix)
            assert doc.doc_ix == docs.documents[0].doc_ix and "cat" in doc.text
            a, s = await asyncio.gather(c.attribute("the cat sat", min_len=1), c.score("the cat sat"))
            assert a.spans and len(s.scores) == len(s.token_ids)
            with pytest.raises(gc.UnknownIndexError) as e:
                await c.count("the", index="nope")
            assert e.value.status == 404
            with pytest.raises(gc.QueryTooLargeError) as big:
                await c.search_documents("the cat", maxnum=10**6)
            assert big.value.field == "maxnum"
            # many requests in flight on one client
            counts = await asyncio.gather(*(c.count([t]) for t in cat.token_ids * 20))
            assert [r.count for r in counts[:len(cat.token_ids)]] == [r.count for r in counts[-len(cat.token_ids):]]

    asyncio.run(main())


def test_async_summarize_batch(server: Server) -> None:
    text = "The council met on Monday. It approved the budget. The weather was mild."

    async def main() -> None:
        async with AsyncClient(server.url, retry=0) as c:
            for _ in range(150):  # the server's summarizer workers start in the background
                try:
                    one = await c.summarize(text, max_tokens=8)
                    break
                except gc.SummarizerUnavailableError:
                    await asyncio.sleep(0.1)
            else:
                raise AssertionError("no summarizer worker came up")
            both, alone = await asyncio.gather(c.summarize_batch([text, text], max_tokens=8),
                                               c.summarize(text, max_tokens=8))
            assert [s.summary for s in both] == [one.summary] * 2 == [alone.summary] * 2
            with pytest.raises(gc.ImpossibleBudgetError) as e:
                await c.summarize_batch([text, text], ratio=1.5)
            assert e.value.status == 422 and e.value.field == "documents[0].ratio"
            with pytest.raises(ValueError, match="exactly one"):
                await c.summarize_batch([text], max_tokens=8, ratio=0.5)

    asyncio.run(main())
