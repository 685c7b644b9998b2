"""Starting the router on uvicorn (`gramdex serve --router`)."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from service.settings import Settings, export_for_workers


def run_router(settings: Settings, config: Path | None, overrides: dict[str, Any]) -> int:
    import uvicorn

    if not settings.router.indexes:
        print("gramdex serve --router: no routed index; configure [router.indexes.NAME] with shards = "
              "[{urls = [...]}, ...] (or GRAMDEX_ROUTER__INDEXES)", file=sys.stderr)
        return 2
    export_for_workers(config, overrides)
    if settings.workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="gramdex-metrics-")
    layout = ", ".join(f"{name} ({len(ix.shards)} shard group(s))" for name, ix in settings.router.indexes.items())
    print(f"gramdex: routing {layout} on http://{settings.host}:{settings.port} ({settings.workers} worker(s))",
          file=sys.stderr, flush=True)
    uvicorn.run("service.router.app:create_app", factory=True, host=settings.host, port=settings.port,
                workers=settings.workers, log_level=settings.log_level, access_log=False)
    return 0
