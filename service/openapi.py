"""openapi.yaml, the API contract, from the app itself: `python -m service.openapi` rewrites it after an API change
(a test fails while the file and what the server serves differ)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

CONTRACT = Path(__file__).resolve().parents[1] / "openapi.yaml"


def spec() -> dict[str, Any]:
    from service.app import create_app
    from service.settings import Settings

    return create_app(Settings(demo=False)).openapi()  # the schema needs no index


def render(doc: dict[str, Any]) -> str:
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=120)


def main() -> int:
    CONTRACT.write_text(render(spec()), encoding="utf-8")
    print(f"wrote {CONTRACT}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
