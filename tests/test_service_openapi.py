"""openapi.yaml is the contract: equal to what the server serves, and every example in it runs."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import yaml
from service_support.fixtures import Server

CONTRACT = Path(__file__).resolve().parents[1] / "openapi.yaml"


def test_contract_equals_served_schema(server: Server) -> None:
    served = server.client.get("/openapi.json").json()
    written = yaml.safe_load(CONTRACT.read_text(encoding="utf-8"))
    assert written == served, "openapi.yaml differs from the served schema: run `python -m service.openapi`"


def _schema(spec: dict[str, Any], ref: str) -> dict[str, Any]:
    return spec["components"]["schemas"][ref.rsplit("/", 1)[1]]  # type: ignore[no-any-return]


def _wait_for_summarizer(server: Server) -> None:
    """The shared server starts one summarizer worker in the background."""
    end = time.monotonic() + 60
    while time.monotonic() < end:
        probe = {"text": "one sentence here .", "max_tokens": 3}
        if server.client.post("/v1/summarize", json=probe).status_code != 503:
            return
        time.sleep(0.2)


def test_every_example_runs(server: Server) -> None:
    spec = yaml.safe_load(CONTRACT.read_text(encoding="utf-8"))
    _wait_for_summarizer(server)
    ran = 0
    for path, item in spec["paths"].items():
        for method, op in item.items():
            url = path.replace("{index}", "demo").replace("{doc_ix}", "3")
            ok = op["responses"].get("200", {}).get("content", {}).get("application/json", {})
            documented = ok.get("example")
            props = _schema(spec, ok["schema"]["$ref"]).get("properties") if "$ref" in ok.get("schema", {}) else None
            body = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
            if body is None:
                if method != "get" or "admin" in path:
                    continue
                requests = [None]
            else:
                examples = _schema(spec, body["$ref"]).get("examples", [])
                assert examples or "admin" in path, f"{method} {path} has no request example"
                requests = examples
            for example in requests:
                r = server.client.request(method, url, json=example)
                assert r.status_code == 200, (path, example, r.text)
                ran += 1
                if props is not None:  # the answer and the documented example use the schema's fields
                    assert set(r.json()) <= set(props), (path, example)
                    assert documented is not None and set(documented) <= set(props), path
    assert ran >= 20
