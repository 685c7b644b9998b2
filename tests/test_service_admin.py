"""API keys, per-key rate limits, and adding/removing indexes without a restart (admin endpoint and SIGHUP)."""

from __future__ import annotations

import time

from service_support.fixtures import ADMIN_KEY, Indexes, write_config

CLIENT_KEYS = """
[[api_keys]]
key = "client-key-aaaaaaaa"
name = "fast"

[[api_keys]]
key = "client-key-bbbbbbbb"
name = "limited"
rate_per_s = 1
burst = 3
"""


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_keys_and_rate_limits(make_server, indexes: Indexes) -> None:  # noqa: ANN001
    srv = make_server({"demo": indexes.text}, CLIENT_KEYS)
    q = {"query": "the cat"}
    r = srv.client.post("/v1/indexes/demo/count", json=q)
    assert r.status_code == 401 and r.json()["type"].endswith("unauthorized")
    assert "Bearer" in r.headers["www-authenticate"]
    assert srv.client.post("/v1/indexes/demo/count", json=q, headers=bearer("wrong-key-xxxxxxxx")).status_code == 401
    assert srv.client.get("/v1/indexes").status_code == 401
    assert srv.client.post("/", json={"index": "demo", "query_type": "count", "query": "a"}).status_code == 401
    for _ in range(10):
        r = srv.client.post("/v1/indexes/demo/count", json=q, headers=bearer("client-key-aaaaaaaa"))
        assert r.status_code == 200
    codes = [srv.client.post("/v1/indexes/demo/count", json=q, headers=bearer("client-key-bbbbbbbb")).status_code
             for _ in range(5)]
    assert codes[:3] == [200, 200, 200] and codes[3] == 429
    limited = srv.client.post("/v1/indexes/demo/count", json=q, headers=bearer("client-key-bbbbbbbb"))
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
    assert limited.json()["type"].endswith("rate-limited")
    time.sleep(1.1)
    assert srv.client.post("/v1/indexes/demo/count", json=q, headers=bearer("client-key-bbbbbbbb")).status_code == 200
    # health and metrics stay open to probes
    assert srv.client.get("/healthz").status_code == 200 and srv.client.get("/metrics").status_code == 200
    # a client key is no admin key
    r = srv.client.post("/v1/admin/reload", headers=bearer("client-key-aaaaaaaa"))
    assert r.status_code == 403 and r.json()["type"].endswith("forbidden")


def test_reload_endpoint_adds_and_removes_indexes(make_server, indexes: Indexes) -> None:  # noqa: ANN001
    srv = make_server({"demo": indexes.text})
    assert srv.client.post("/v1/admin/reload").status_code == 401
    write_config(srv.config, {"demo": indexes.text, "bytes": indexes.slow})
    r = srv.client.post("/v1/admin/reload", headers=bearer(ADMIN_KEY))
    assert r.status_code == 200 and r.json()["added"] == ["bytes"] and r.json()["removed"] == []
    assert srv.client.post("/v1/indexes/bytes/count", json={"query": "ab"}).json()["count"] > 0
    write_config(srv.config, {"bytes": indexes.slow})
    r = srv.client.post("/v1/admin/reload", headers=bearer(ADMIN_KEY))
    assert r.json()["removed"] == ["demo"] and r.json()["indexes"] == ["bytes"]
    assert srv.client.post("/v1/indexes/demo/count", json={"query": "a"}).status_code == 404
    # a broken config leaves the served set as it was
    write_config(srv.config, {"bytes": indexes.slow, "broken": indexes.slow.parent / "missing"})
    r = srv.client.post("/v1/admin/reload", headers=bearer(ADMIN_KEY))
    assert r.status_code == 500 and r.json()["type"].endswith("reload-failed") and "/" not in r.json()["detail"]
    assert srv.client.post("/v1/indexes/bytes/count", json={"query": "ab"}).status_code == 200


def test_sighup_reloads(make_server, indexes: Indexes) -> None:  # noqa: ANN001
    srv = make_server({"demo": indexes.text})
    write_config(srv.config, {"demo": indexes.text, "bytes": indexes.slow})
    srv.hup()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        names = [i["name"] for i in srv.client.get("/v1/indexes").json()["indexes"]]
        if "bytes" in names:
            break
        time.sleep(0.05)
    assert names == ["demo", "bytes"]
