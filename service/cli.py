"""`gramdex serve`: the HTTP API on uvicorn. Heavy imports wait until the command runs, so other subcommands
start as fast as before."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Any


def _index_arg(value: str) -> tuple[str, dict[str, Any]]:
    """NAME=DIR[,tokenizer=FILE][,token_width=N][,eos_token_id=N][,vocab_size=N][,add_prefix_space=BOOL]"""
    name, sep, rest = value.partition("=")
    if not sep or not name or not rest:
        raise argparse.ArgumentTypeError(f"expected NAME=DIR[,key=value...], not {value!r}")
    path, *options = rest.split(",")
    cfg: dict[str, Any] = {"path": path}
    for option in options:
        key, sep, val = option.partition("=")
        if key not in ("tokenizer", "token_width", "eos_token_id", "vocab_size", "add_prefix_space") or not sep:
            raise argparse.ArgumentTypeError(f"unknown index option {option!r}")
        cfg[key] = val
    return name, cfg


def add_serve_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    p = sub.add_parser("serve", help="serve indexes over HTTP",
                       description="Serve indexes over HTTP (JSON API under /v1, infini-gram compatible POST /, "
                                   "/metrics, /healthz, /readyz). With no index configured it serves the demo "
                                   "index, built once from the Python standard library's sources.")
    p.add_argument("--config", type=Path, help="TOML settings file (also: GRAMDEX_CONFIG); reloaded on SIGHUP")
    p.add_argument("--index", action="append", type=_index_arg, default=[], metavar="NAME=DIR[,key=value]",
                   help="serve DIR as NAME; options: tokenizer=FILE, token_width=N, eos_token_id=N, vocab_size=N, "
                        "add_prefix_space=true|false (repeatable)")
    p.add_argument("--host", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (default 8000)")
    p.add_argument("--workers", type=int, help="uvicorn worker processes sharing the mapped files (default 1)")
    p.add_argument("--log-level", help="uvicorn log level (default warning)")
    p.add_argument("--router", action="store_true",
                   help="route queries to shard servers ([router] settings) instead of serving index files")
    p.set_defaults(handler=run_serve)
    return p


def run_serve(a: argparse.Namespace) -> int:
    import uvicorn
    from pydantic import ValidationError

    from service.reload import index_configs
    from service.settings import export_for_workers, load_settings

    overrides: dict[str, Any] = {}
    if a.index:
        overrides["indexes"] = dict(a.index)
    for key in ("host", "port", "workers", "log_level"):
        if getattr(a, key) is not None:
            overrides[key] = getattr(a, key)
    try:
        settings = load_settings(a.config, overrides)
    except (ValidationError, FileNotFoundError, ValueError) as exc:
        print(f"gramdex serve: invalid settings: {exc}", file=sys.stderr)
        return 2
    if a.router:
        from service.router.cli import run_router

        return run_router(settings, a.config, overrides)
    if not settings.indexes and settings.demo:
        from service.demo_index import demo_index

        demo_index(quiet=False)  # built here once, before any worker starts
    names = ", ".join(index_configs(settings)) or "none"
    export_for_workers(a.config, overrides)
    if settings.workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="gramdex-metrics-")
    print(f"gramdex: serving {names} on http://{settings.host}:{settings.port} ({settings.workers} worker(s))",
          file=sys.stderr, flush=True)
    uvicorn.run("service.app:create_app", factory=True, host=settings.host, port=settings.port,
                workers=settings.workers, log_level=settings.log_level, access_log=False)
    return 0
