"""The browser explorer at GET /: Debian's Chromium, driven by Playwright, against a real `gramdex serve`.

Each panel is typed into, submitted, and its rendering checked against the API's own answers. The page must work
offline: every request the browser makes goes to the server under test.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from gramdex_client import Client
from playwright import sync_api
from service_support.fixtures import Server

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = os.environ.get("GRAMDEX_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
NEWS = ("The council approved the new budget on Monday after a long debate. The plan adds money for schools and "
        "roads across the city. Critics said the budget ignores the housing shortage. The mayor will sign the plan "
        "next week. The weather on Monday was mild and sunny.")

if not shutil.which(CHROMIUM):
    pytest.skip(f"no Chromium at {CHROMIUM}: .ci/run installs Debian's chromium package", allow_module_level=True)


@pytest.fixture(scope="module")
def browser() -> Iterator[sync_api.Browser]:
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def outside() -> list[str]:
    """URLs the page tried to load from anywhere but the server: must stay empty."""
    return []


@pytest.fixture(scope="module")
def page(browser: sync_api.Browser, server: Server, outside: list[str]) -> Iterator[sync_api.Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 1600})

    def guard(route: sync_api.Route) -> None:
        url = route.request.url
        if url.startswith(server.url):
            route.continue_()
        else:
            outside.append(url)
            route.abort()

    context.route("**/*", guard)
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    pg.goto(server.url + "/")
    pg.wait_for_selector("body[data-ready='true']")
    yield pg
    context.close()
    assert errors == [], errors


@pytest.fixture(scope="module")
def api(server: Server) -> Iterator[Client]:
    with Client(server.url, index="demo") as c:
        yield c


def submit_query(page: sync_api.Page, text: str) -> None:
    page.fill("#query", text)
    page.click("#query-form button[type=submit]")
    for panel in ("count", "ntd", "infgram", "docs"):
        page.wait_for_selector(f"#{panel}-panel[data-state='done'], #{panel}-panel[data-state='error']")


def test_page_and_assets_are_served(server: Server) -> None:
    r = httpx.get(server.url + "/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "gramdex explorer" in r.text and "http://" not in r.text and "https://" not in r.text
    js = httpx.get(server.url + "/static/app.js")
    assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript")
    missing = httpx.get(server.url + "/static/..%2Fapp.py")
    assert missing.status_code == 404 and missing.json()["type"].endswith("not-found")
    # the page is not part of the API contract
    paths = httpx.get(server.url + "/openapi.json").json()["paths"]
    assert "get" not in paths.get("/", {}) and not any(p.startswith("/static") for p in paths)


def test_index_picker(page: sync_api.Page) -> None:
    assert page.eval_on_selector_all("#index option", "os => os.map(o => o.value)") == ["demo", "slow"]
    assert "300 documents" in page.text_content("#index-info")


def test_count_ntd_infgram_and_documents(page: sync_api.Page, api: Client) -> None:
    page.fill("#cont", "sat")
    submit_query(page, "the cat")
    count = api.count("the cat").count
    assert page.get_attribute("#count-panel .big", "data-count") == str(count)
    assert page.text_content("#count-panel .latency").endswith("ms")

    ntd = api.ntd("the cat").next_tokens
    bars = page.query_selector_all("#ntd-panel .bar-row")
    assert len(bars) == min(15, len(ntd))
    assert bars[0].get_attribute("data-token-id") == str(ntd[0].token_id)
    assert bars[0].text_content().startswith(f'" {ntd[0].token.removeprefix("Ġ")}"')
    width = bars[0].eval_on_selector(".bar", "b => b.style.width")
    assert float(width.rstrip("%")) == pytest.approx(ntd[0].prob * 100, abs=0.01)

    expected = api.infgram_prob("the cat", "sat").prob
    assert float(page.get_attribute("#infgram-panel .big", "data-prob")) == pytest.approx(expected)
    submit_query(page, "zqxj the cat")  # a word never seen: the ∞-gram backs off to " the cat"
    suffix = page.eval_on_selector_all("#infgram-panel mark.token", "ms => ms.map(m => m.textContent)")
    assert suffix == ['" the"', '" cat"']
    assert "The last 2 of" in page.text_content("#infgram-panel .suffix-note")

    page.fill("#maxnum", "2")
    page.fill("#cont", "")
    submit_query(page, "the cat")
    docs = page.query_selector_all("#docs-panel .doc")
    assert len(docs) == 2
    for doc in docs:
        assert [m.text_content().strip() for m in doc.query_selector_all("mark")][:1] == ["the cat"]
        assert "doc " in doc.query_selector(".meta").text_content()
    shown = [int(d.get_attribute("data-doc-ix")) for d in docs]
    assert shown == [d.doc_ix for d in api.search_documents("the cat", maxnum=2, max_disp_len=80).documents]


def test_errors_show_in_the_panel(page: sync_api.Page) -> None:
    submit_query(page, "cat AND  OR mat")
    assert page.get_attribute("#count-panel", "data-state") == "error"
    assert "The query is malformed" in page.text_content("#count-panel .error")
    assert page.is_visible("#count-panel .error")
    submit_query(page, "the cat")  # and go away on the next good answer
    assert page.get_attribute("#count-panel", "data-state") == "done" and page.is_hidden("#count-panel .error")


def test_attribution(page: sync_api.Page, api: Client) -> None:
    text = "My friend jumped over the big tree. Nothing like zqxj ever happened."
    page.fill("#attribute-text", text)
    page.fill("#min-len", "3")
    page.click("#attribute-form button[type=submit]")
    page.wait_for_selector("#attribute-panel[data-state='done']")
    assert page.text_content("#attribute-panel .attributed") == text
    spans = api.attribute(text, min_len=3).spans
    longest = max(spans, key=lambda s: s.end - s.start)
    shown = page.query_selector_all("#attribute-panel .attr")
    lengths = [int(s.get_attribute("data-len")) for s in shown]
    assert max(lengths) == longest.end - longest.start and min(lengths) >= 3
    top = shown[lengths.index(max(lengths))]
    assert top.text_content().strip() in longest.text
    top.click()
    page.wait_for_selector("#attribute-panel .where .doc mark")
    where = page.text_content("#attribute-panel .where")
    assert f"{longest.count} occurrences" in where and f"#{longest.locations[0].doc_ix}" in where
    marked = page.text_content("#attribute-panel .where .doc mark")
    assert marked == longest.text.strip()


def _summarizer_up(server: Server) -> None:
    """The server starts its summarizer workers in the background; until they answer, /v1/summarize says 503."""
    deadline = time.monotonic() + 30
    while httpx.post(server.url + "/v1/summarize", json={"text": "A cat.", "max_tokens": 2}).status_code == 503:
        assert time.monotonic() < deadline, "the summarizer workers did not start"
        time.sleep(0.1)


def test_summarize(page: sync_api.Page, server: Server) -> None:
    _summarizer_up(server)
    page.fill("#summarize-text", NEWS)
    page.fill("#max-tokens", "25")
    page.click("#summarize-form button[type=submit]")
    page.wait_for_selector("#summarize-panel[data-state='done'], #summarize-panel[data-state='error']")
    answer = httpx.post(server.url + "/v1/summarize", json={"text": NEWS, "max_tokens": 25, "mode": "extractive"},
                        timeout=30)
    if answer.status_code != 200:  # the panel shows the server's problem, whatever it is
        assert page.get_attribute("#summarize-panel", "data-state") == "error"
        assert answer.json()["title"] in page.text_content("#summarize-panel .error")
        pytest.fail(f"POST /v1/summarize answered {answer.status_code}: the summarizer is not served")
    body = answer.json()
    assert page.text_content("#summarize-panel .summary") == body["summary"]
    kept = page.eval_on_selector_all("#summarize-panel mark.kept", "ms => ms.map(m => m.textContent)")
    assert kept == [NEWS[a:b] for s in body["sentences"] for a, b in s["pieces"]]
    assert page.text_content("#summarize-panel .source") == NEWS


def test_screenshot_and_offline(page: sync_api.Page, outside: list[str]) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / "explorer.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 10_000
    assert outside == []
