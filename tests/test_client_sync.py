"""The blocking SDK client against a real `gramdex serve`: every endpoint, text and ids, CNF, typed errors."""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterator
from pathlib import Path

import gramdex_client as gc
import pytest
import yaml
from gramdex_client import Client, all_of, any_of
from gramdex_client import models as m
from service_support.fixtures import Server

from service.errors import PROBLEMS

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def client(server: Server) -> Iterator[Client]:
    with Client(server.url, index="demo", retry=0) as c:
        yield c


def test_indexes(client: Client) -> None:
    infos = {i.name: i for i in client.indexes()}
    assert set(infos) == {"demo", "slow"}
    assert infos["demo"].documents == 300 and infos["demo"].token_width == 2 and infos["demo"].tokenizer
    assert infos["slow"].token_width == 1 and infos["slow"].documents == 60


def test_count_text_ids_and_cnf(client: Client) -> None:
    cat = client.count("the cat")
    assert cat.count > 0 and not cat.approx and cat.tokens and cat.latency_ms >= 0
    assert client.count(cat.token_ids).count == cat.count
    dog = client.count("the dog")
    # one OR clause counts the occurrences of either n-gram
    either = client.count(all_of(any_of("the cat", "the dog")))
    assert either.count == cat.count + dog.count
    assert client.count(all_of(any_of(cat.token_ids, dog.token_ids))).count == either.count
    both = client.count(all_of("the cat", "the mat"), max_diff_tokens=50)
    assert 0 < both.count <= min(cat.count, client.count("the mat").count)
    with pytest.raises(ValueError):
        all_of(any_of("a", [1]))


def test_find_and_probabilities(client: Client) -> None:
    ids = client.count("the cat sat").token_ids
    prompt, cont = ids[:-1], ids[-1]
    found = client.find(prompt)
    assert found.count == client.count(prompt).count and found.segment_by_shard
    p = client.prob(prompt, cont)
    assert p.prompt_cnt == found.count and p.cont_cnt == client.count(ids).count
    assert p.prob == pytest.approx(p.cont_cnt / p.prompt_cnt)
    # an unseen first word: the ∞-gram backs off to the suffix that occurs
    seen = client.count("the cat").token_ids
    novel = client.count("zqxj").token_ids + seen
    inf = client.infgram_prob(novel, cont)
    assert inf.suffix_len is not None and inf.suffix_len < len(novel) and inf.prob is not None
    assert client.prob(novel, cont).prob is None


def test_next_token_distributions(client: Client) -> None:
    d = client.ntd("the cat")
    assert d.prompt_cnt == client.count("the cat").count
    assert math.isclose(sum(t.prob for t in d.next_tokens), 1.0)
    counts = [t.cont_cnt for t in d.next_tokens]
    assert counts == sorted(counts, reverse=True)
    top = d.next_tokens[0]
    assert client.count([*d.prompt_ids, top.token_id]).count == top.cont_cnt
    inf = client.infgram_ntd(client.count("zqxj").token_ids + d.prompt_ids)
    assert inf.suffix_len == len(d.prompt_ids) and inf.next_tokens == d.next_tokens


def test_documents(client: Client) -> None:
    r = client.search_documents("the cat", maxnum=2, max_disp_len=30, seed=1)
    assert r.count == client.count("the cat").count and len(r.documents) == 2
    doc = r.documents[0]
    assert any(s.match == "0" and "cat" in s.text for s in doc.spans)
    assert doc.metadata["metadata"]["title"] == f"doc {doc.metadata['metadata']['id']}"
    whole = client.get_document(doc.doc_ix, max_disp_len=5000)
    assert whole.doc_ix == doc.doc_ix and whole.disp_start == 0 and whole.disp_len == whole.doc_len
    assert doc.text.strip() in whole.text


def test_attribute_and_score(client: Client) -> None:
    a = client.attribute("the cat sat on the mat. zqxj", min_len=2, max_locations=2)
    assert a.spans and all(s.end - s.start >= 2 and s.count > 0 and len(s.locations) <= 2 for s in a.spans)
    longest = max(a.spans, key=lambda s: s.end - s.start)
    assert longest.text and client.count(a.token_ids[longest.start:longest.end]).count == longest.count
    s = client.score("the cat sat")
    assert len(s.scores) == len(s.token_ids) and all(0 < t.prob <= 1 for t in s.scores)


NEWS = ("The council approved the new budget on Monday after a long debate. The plan adds money for schools and "
        "roads. Critics said the budget ignores the housing shortage. The mayor will sign the plan next week.")


def _first_summary(client: Client) -> m.Summary:
    for _ in range(150):  # the server's summarizer workers start in the background
        try:
            return client.summarize(NEWS, max_tokens=20)
        except gc.SummarizerUnavailableError:
            time.sleep(0.1)
    raise AssertionError("no summarizer worker came up")


def test_summarize(client: Client) -> None:
    s = _first_summary(client)
    assert s.sentences and s.scores.tokens <= s.budget == 20 and 0 <= s.scores.support <= 1
    assert s.summary == " ".join(x.text for x in s.sentences)
    for x in s.sentences:
        assert NEWS[x.start:x.end] == x.text and [x.start, x.end] == [x.pieces[0][0], x.pieces[-1][1]]
    assert client.summarize(NEWS, ratio=0.5, mode="compressive").budget > 0
    with pytest.raises(gc.ImpossibleBudgetError) as e:
        client.summarize(NEWS, ratio=1.5)
    assert e.value.status == 422 and e.value.field == "ratio"
    with pytest.raises(ValueError):
        client.summarize(NEWS)


def test_summarize_batch(client: Client) -> None:
    one = _first_summary(client)
    other = NEWS.replace("council", "committee")
    batch = client.summarize_batch([NEWS, other, NEWS], max_tokens=20)
    assert [b.model_dump() for b in (batch[0], batch[2])] == [one.model_dump()] * 2   # in order, as one by one
    assert "committee" in batch[1].summary and batch[1].scores.tokens <= 20
    ratio = client.summarize_batch([NEWS, NEWS + " " + NEWS], ratio=0.5)
    assert ratio[1].budget == 2 * ratio[0].budget   # each text's own budget
    with pytest.raises(gc.ImpossibleBudgetError) as e:
        client.summarize_batch([NEWS, other], ratio=1.5)
    assert e.value.field == "documents[0].ratio"
    with pytest.raises(gc.InvalidQueryError) as empty:
        client.summarize_batch([NEWS, "  "], max_tokens=20)
    assert empty.value.field == "documents[1].text" and empty.value.detail.startswith("documents[1]: ")
    with pytest.raises(TypeError):
        client.summarize_batch(NEWS, max_tokens=20)


def test_typed_errors(client: Client) -> None:
    with pytest.raises(gc.UnknownIndexError) as e:
        client.count("x", index="nope")
    assert isinstance(e.value, gc.NotFoundError) and e.value.status == 404 and e.value.slug == "unknown-index"
    assert e.value.title == PROBLEMS["unknown-index"][1] and "nope" in e.value.detail
    with pytest.raises(gc.ValidationError) as v:
        client.ntd("the cat", max_support=0)
    assert v.value.field == "max_support" and v.value.status == 422
    with pytest.raises(gc.QueryTooLargeError):
        client.count("cat " * 5000)
    with pytest.raises(gc.UnknownDocumentError):
        client.get_document(10**6)
    with pytest.raises(gc.InvalidQueryError):
        client.prob("the cat", "sat on the mat")
    with pytest.raises(ValueError, match="name an index"):
        Client("http://127.0.0.1:1").count("x")


def test_a_4xx_is_sent_once(server: Server) -> None:
    def errors() -> float:
        line = re.search(r'gramdex_errors_total\{route="/v1/indexes/\{index\}/ntd",type="unknown-index"\} (\S+)',
                         server.client.get("/metrics").text)
        return float(line.group(1)) if line else 0.0

    before = errors()
    with Client(server.url, index="missing", retry=5) as c, pytest.raises(gc.UnknownIndexError):
        c.ntd("x")
    assert errors() == before + 1


def test_configuration_from_the_environment(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRAMDEX_URL", server.url + "/")
    monkeypatch.setenv("GRAMDEX_INDEX", "slow")
    monkeypatch.setenv("GRAMDEX_TIMEOUT", "7.5")
    monkeypatch.setenv("GRAMDEX_MAX_RETRIES", "1")
    with Client() as c:
        assert c.config.timeout_s == 7.5 and c.config.retry.max_retries == 1
        assert c.count("ab").count == c.count([97, 98]).count > 0
    with Client(server.url, index="demo", timeout=3, retry=gc.Retry(max_retries=0)) as c:
        assert c.config.timeout_s == 3 and c.config.retry.max_retries == 0 and c.count("the").count > 0


def test_every_problem_type_has_its_exception() -> None:
    assert set(gc.errors.BY_SLUG) == set(PROBLEMS)
    for slug, (status, _) in PROBLEMS.items():
        assert gc.errors.BY_SLUG[slug].status == status, slug
    unknown = gc.errors.error_for(503, {"type": "about:blank", "title": "summarizer busy", "detail": "later"}, 2.0)
    assert type(unknown) is gc.ServiceUnavailableError and unknown.retry_after == 2.0 and unknown.slug is None
    assert type(gc.errors.error_for(418, "<html>teapot</html>")) is gc.ClientError


def test_models_mirror_the_contract() -> None:
    schemas = yaml.safe_load((REPO / "openapi.yaml").read_text())["components"]["schemas"]
    pairs = {"CountResponse": m.CountResult, "FindResponse": m.FindResult, "ProbResponse": m.ProbResult,
             "NtdResponse": m.NtdResult, "NextToken": m.NextToken, "Span": m.Span, "DocumentOut": m.Document,
             "SearchResponse": m.SearchResult, "Location": m.Location, "AttributedSpan": m.AttributedSpan,
             "AttributeResponse": m.AttributeResult, "TokenScoreOut": m.TokenScore, "ScoreResponse": m.ScoreResult,
             "IndexInfo": m.IndexInfo, "SummarizeResponse": m.Summary, "SummarySentence": m.SummarySentence,
             "SummaryScores": m.SummaryScores}
    for name, model in pairs.items():
        assert set(model.model_fields) == set(schemas[name]["properties"]), name
        assert {f for f, info in model.model_fields.items() if info.is_required()} == set(
            schemas[name].get("required", [])), name
