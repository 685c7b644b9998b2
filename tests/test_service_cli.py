"""`gramdex serve`: the demo index (built once from the standard library, cached) and --index NAME=DIR,options."""

from __future__ import annotations

from pathlib import Path

import pytest
from service_support.fixtures import Indexes, Server, write_config

import service.demo_index as demo


def test_demo_index_is_built_once_and_served(make_server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    # a small demo so the test stays quick; the real one reads MAX_BYTES of the standard library
    monkeypatch.setattr(demo, "MAX_BYTES", 400_000)
    monkeypatch.setattr(demo, "VOCAB_SIZE", 600)
    monkeypatch.setenv("GRAMDEX_CACHE_DIR", str(tmp_path / "cache"))
    path = demo.demo_index()
    assert (path / "index.json").exists() and (path / "tokenizer.json.gz").exists()
    stamp = (path / "table.0").stat().st_mtime_ns
    assert demo.demo_index() == path and (path / "table.0").stat().st_mtime_ns == stamp  # cached
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".demo-build-")]  # no leftovers
    srv = make_server({}, env={"GRAMDEX_CACHE_DIR": str(tmp_path / "cache")})
    names = [i["name"] for i in srv.client.get("/v1/indexes").json()["indexes"]]
    assert names == ["demo"]
    r = srv.client.post("/v1/indexes/demo/count", json={"query": "import"})
    assert r.status_code == 200 and r.json()["count"] > 0


def test_index_option_for_an_index_without_manifest(indexes: Indexes, tmp_path: Path) -> None:
    bare = tmp_path / "bare"
    bare.mkdir()
    for f in indexes.text.iterdir():
        if f.name not in ("index.json", "tokenizer.json.gz"):
            (bare / f.name).symlink_to(f)
    cfg = write_config(tmp_path / "none.toml", {})
    spec = f"wiki={bare},tokenizer={indexes.text / 'tokenizer.json.gz'},token_width=2,eos_token_id=0"
    srv = Server(cfg, "--index", spec)
    try:
        info = srv.client.get("/v1/indexes").json()["indexes"]
        assert [i["name"] for i in info] == ["wiki"] and info[0]["tokenizer"] == "tokenizer.json"
        assert srv.client.post("/v1/indexes/wiki/count", json={"query": "the cat"}).json()["count"] > 0
    finally:
        srv.stop()
