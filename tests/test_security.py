"""Security properties, each checked against a real server: keys compared in constant time and never logged,
per-key and per-address rate limits, CORS off, admin reload behind an admin key, no traces or paths in errors."""

from __future__ import annotations

import hmac
import time
from collections.abc import Iterator
from typing import Any

import pytest
from service_support.fixtures import ADMIN_KEY, Indexes, Server, write_config

from service.auth import Guard
from service.settings import ApiKey, Settings

CLIENT = "client-key-" + "s3cr3t" * 4
OTHER = "client-key-" + "0th3r" * 4
KEYS = f"""
log_level = "debug"
[[api_keys]]
key = "{CLIENT}"
name = "alice"
rate_per_s = 2
burst = 2

[[api_keys]]
key = "{OTHER}"
name = "bob"
"""


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture(scope="module")
def keyed(indexes: Indexes, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server with client keys for the whole module (the tests below run in order; the last breaks its
    config on purpose)."""
    srv = Server(write_config(tmp_path_factory.mktemp("sec") / "gramdex.toml", {"demo": indexes.text}, KEYS))
    yield srv
    srv.stop()


def test_key_lookup_compares_every_key_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every configured key goes through hmac.compare_digest whatever the token, so neither the position of the
    matching key nor an early mismatch shows in the timing."""
    keys = [ApiKey(key=f"key-number-{i:04d}", name=f"k{i}") for i in range(5)]
    guard = Guard(Settings(api_keys=keys, demo=False))
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    for token in ("key-number-0000", "key-number-0004", "nope", "x" * 10_000):
        calls.clear()
        found = guard._find(token)
        assert len(calls) == len(keys)
        assert len({len(a) for a, _ in calls} | {len(b) for _, b in calls}) == 1  # equal lengths: no length leak
        assert (found is not None) == token.startswith("key-number")


def test_keys_are_never_logged_nor_in_metrics(keyed: Server) -> None:
    srv = keyed
    q = {"query": "the cat"}
    srv.client.post("/v1/indexes/demo/count", json=q, headers=bearer(CLIENT))
    srv.client.post("/v1/indexes/demo/count", json=q, headers=bearer(CLIENT[:-1] + "X"))  # wrong key
    srv.client.post("/v1/admin/reload", headers=bearer(CLIENT))  # a client key at the admin door
    srv.client.post("/v1/admin/reload", headers=bearer(ADMIN_KEY))
    for _ in range(4):  # rate-limited too
        srv.client.post("/v1/indexes/demo/count", json=q, headers=bearer(CLIENT))
    metrics = srv.client.get("/metrics").text
    time.sleep(0.2)  # the server's stderr goes straight to the file; give the last lines a moment
    log = srv.log.read_text(encoding="utf-8", errors="replace")
    assert "Application startup complete" in log  # the log was captured, at debug level
    for secret in (CLIENT, CLIENT[:-1] + "X", ADMIN_KEY, "s3cr3t"):
        assert secret not in log and secret not in metrics


def test_rate_limits_are_per_key(keyed: Server) -> None:
    srv = keyed
    time.sleep(1.0)  # a full bucket whatever ran before
    q = {"query": "the cat"}
    codes = [srv.client.post("/v1/indexes/demo/count", json=q, headers=bearer(CLIENT)).status_code
             for _ in range(4)]
    assert codes[:2] == [200, 200] and 429 in codes[2:]
    # bob has no limit and is not slowed by alice's empty bucket
    assert all(srv.client.post("/v1/indexes/demo/count", json=q, headers=bearer(OTHER)).status_code == 200
               for _ in range(10))
    limited = srv.client.post("/v1/indexes/demo/count", json=q, headers=bearer(CLIENT))
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
    time.sleep(1.0)
    assert srv.client.post("/v1/indexes/demo/count", json=q, headers=bearer(CLIENT)).status_code == 200
    # summarize is behind the same keys
    assert srv.client.post("/v1/summarize", json={"text": "a b .", "max_tokens": 2}).status_code == 401


def test_anonymous_clients_are_limited_per_address(make_server: Any, indexes: Indexes) -> None:
    srv = make_server({"demo": indexes.text}, "anonymous_rate_per_s = 1\nanonymous_burst = 3\n")
    codes = [srv.client.post("/v1/indexes/demo/count", json={"query": "the"}).status_code for _ in range(6)]
    assert codes[:3] == [200, 200, 200] and codes[3:] == [429, 429, 429]


def test_cors_is_off_by_default(server: Any) -> None:
    origin = {"Origin": "https://evil.example"}
    pre = server.client.options("/v1/indexes/demo/count", headers={
        **origin, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization"})
    assert "access-control-allow-origin" not in pre.headers and pre.status_code in (404, 405)
    r = server.client.post("/v1/indexes/demo/count", json={"query": "the"}, headers=origin)
    assert r.status_code == 200 and not any(h.startswith("access-control-") for h in r.headers)


def test_admin_reload_requires_an_admin_key(keyed: Server) -> None:
    srv = keyed
    cases = {None: 401, "Bearer": 401, "Basic YWRtaW46YWRtaW4=": 401, f"Bearer {ADMIN_KEY}x": 401,
             f"bearer {OTHER}": 403, f"Bearer {ADMIN_KEY}": 200, "Bearer " + "\u00e9" * 5000: 401}
    for auth, status in cases.items():
        headers = {"Authorization": auth.encode("utf-8")} if auth else {}  # bytes: non-ASCII goes on the wire
        r = srv.client.post("/v1/admin/reload", headers=headers)
        assert r.status_code == status, (auth and auth[:30], r.text)
        if status != 200:
            assert r.headers["content-type"].startswith("application/problem+json")
    # without a key, the query endpoints stay closed
    assert srv.client.post("/v1/indexes/demo/count", json={"query": "the"}).status_code == 401


def test_errors_carry_no_traces_or_paths(keyed: Server, indexes: Indexes) -> None:
    srv = keyed
    srv.config.write_text(srv.config.read_text(encoding="utf-8") + "\n[[[ not toml\n", encoding="utf-8")
    r = srv.client.post("/v1/admin/reload", headers=bearer(ADMIN_KEY))
    assert r.status_code == 500 and r.json()["type"] == "urn:gramdex:problem:reload-failed"
    missing = indexes.text.parent / "nowhere"
    srv.config.write_text(f'[indexes.x]\npath = "{missing}"\n[[api_keys]]\nkey = "{ADMIN_KEY}"\nadmin = true\n',
                          encoding="utf-8")
    r2 = srv.client.post("/v1/admin/reload", headers=bearer(ADMIN_KEY))
    assert r2.status_code == 500
    ready = srv.client.get("/readyz")
    for resp in (r, r2, ready):
        text = resp.text
        assert "Traceback" not in text and str(srv.config) not in text and str(missing) not in text
        assert str(indexes.text.parent) not in text and ".py" not in text


def test_guessing_keys_is_rate_limited_per_address() -> None:
    guard = Guard(Settings(demo=False, api_keys=[ApiKey(key="k" * 32, name="client")]))
    statuses = []
    for _ in range(12):
        try:
            guard.check("Bearer wrong-key-guess", "10.0.0.1")
        except Exception as exc:  # noqa: BLE001 - every outcome is a Problem; its status is what matters
            statuses.append(exc.status)  # type: ignore[attr-defined]
    assert statuses[:10] == [401] * 10 and statuses[10:] == [429, 429]
    with pytest.raises(Exception) as other:  # another address still gets its own tries
        guard.check("Bearer wrong-key-guess", "10.0.0.2")
    assert other.value.status == 401  # type: ignore[attr-defined]
    guard.check(f"Bearer {'k' * 32}", "10.0.0.1")  # the right key still passes from the throttled address


def test_buckets_for_many_addresses_stay_bounded() -> None:
    guard = Guard(Settings(demo=False, anonymous_rate_per_s=1000.0, anonymous_burst=5))
    guard.max_client_buckets = 50
    for i in range(1_000):
        guard.check(None, f"10.1.{i // 256}.{i % 256}")
    assert len(guard._buckets) <= 50
