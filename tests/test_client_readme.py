"""The README's SDK examples run against a real server, and its configuration and error tables match the code."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import get_args

import gramdex_client.errors as client_errors
import pytest
from pydantic import BaseModel
from service_support.fixtures import Server

from service.errors import PROBLEMS
from service.settings import Settings

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text(encoding="utf-8")
README_URL = "http://127.0.0.1:8000"


def section(title: str) -> str:
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## )", README, re.S | re.M)
    assert match, f"README has no section {title!r}"
    return match.group(1)


def blocks(text: str, lang: str) -> list[str]:
    return re.findall(rf"^```{lang}\n(.*?)^```", text, re.S | re.M)


SDK_EXAMPLES = blocks(section("Python SDK"), "python")


@pytest.mark.parametrize("code", SDK_EXAMPLES, ids=[f"example{i}" for i in range(len(SDK_EXAMPLES))])
def test_sdk_examples_run(code: str, server: Server, tmp_path: Path) -> None:
    assert README_URL in code
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRAMDEX_")}
    r = subprocess.run([sys.executable, "-c", code.replace(README_URL, server.url)], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip()  # every example prints what it found


def test_sdk_examples_cover_every_endpoint() -> None:
    code = "\n".join(SDK_EXAMPLES)
    for method in ("indexes", "count", "prob", "ntd", "infgram_prob", "search_documents", "get_document",
                   "attribute", "score", "summarize", "summarize_batch"):
        assert f".{method}(" in code, method


def _leaf_settings(model: type[BaseModel], prefix: str = "") -> dict[str, object]:
    out: dict[str, object] = {}
    for name, field in model.model_fields.items():
        ann = field.annotation
        if any(isinstance(t, type) and issubclass(t, BaseModel) for t in get_args(ann)):
            continue  # tables of sub-settings (indexes, API keys, the router's indexes) have sections of their own
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            out |= _leaf_settings(ann, f"{prefix}{name}.")
        else:
            out[prefix + name] = field.default if field.default_factory is None else field.default_factory()
    return out


def test_configuration_reference_lists_every_setting() -> None:
    rows = {m.group(1): m for m in re.finditer(r"^\| `([\w.]+)` \| `(GRAMDEX_\w+)` \| `([^`]*)` \|",
                                                 section("Configuration reference"), re.M)}
    settings = _leaf_settings(Settings)
    assert set(rows) == set(settings)
    for key, default in settings.items():
        assert rows[key].group(2) == "GRAMDEX_" + key.upper().replace(".", "__")
        shown = "none" if default is None else str(default).lower() if isinstance(default, bool) else str(default)
        assert rows[key].group(3) == shown, key


def test_error_table_lists_every_problem_type() -> None:
    rows = re.findall(r"^\| (\d{3}) \| `([\w-]+)` \| (.+?) \| `(\w+)` \|$", section("Limits and error types"), re.M)
    assert {slug: (int(status), title) for status, slug, title, _ in rows} == PROBLEMS
    for _, slug, _, exception in rows:
        assert client_errors.BY_SLUG[slug].__name__ == exception
