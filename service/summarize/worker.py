"""`gramdex summarize-worker`: one process that loads the model (and any named indexes) and summarizes.

CPU-bound work stays out of the gateway's event loop this way, and a crash or hang costs one worker, which the
gateway's supervisor replaces.
"""

from __future__ import annotations

import argparse
import os
import threading
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI
from fastapi.responses import JSONResponse

from summarizer.corpus_lm import InfiniGram
from summarizer.model import DEFAULT_PATH, Model
from summarizer.summarize import BudgetError, Summarizer


def create_app(model_path: Path = DEFAULT_PATH, indexes: dict[str, Path] | None = None) -> FastAPI:
    summarizer = Summarizer(Model.load(model_path))
    paths = dict(indexes or {})
    opened: dict[str, InfiniGram] = {}
    lock = threading.Lock()
    app = FastAPI(title="gramdex summarize worker")

    def lm(name: str | None) -> InfiniGram | None:
        if name is None:
            return None
        with lock:  # open each index once, on first use
            if name not in opened:
                opened[name] = InfiniGram(paths[name])
            return opened[name]

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        return {"ok": True, "pid": os.getpid(), "model": summarizer.model.name}

    @app.post("/summarize")
    def summarize(body: dict[str, Any]) -> Any:
        index = body.get("index")
        if index is not None and index not in paths:
            return JSONResponse({"title": "unknown index", "status": 404, "detail": f"no index named {index!r}"},
                                status_code=404, media_type="application/problem+json")
        try:
            s = summarizer.summarize(body["text"], max_tokens=body.get("max_tokens"), ratio=body.get("ratio"),
                                     mode=body.get("mode", "extractive"), lm=lm(index))
        except (BudgetError, ValueError) as exc:
            return JSONResponse({"title": "impossible request", "status": 422, "detail": str(exc)}, status_code=422,
                                media_type="application/problem+json")
        return {"summary": s.text, "model": s.model, "budget": s.budget,
                "sentences": [{"index": p.index, "text": p.text, "start": p.pieces[0][0], "end": p.pieces[-1][1],
                               "pieces": [list(x) for x in p.pieces]} for p in s.sentences],
                "scores": {"saliency": s.scores.saliency, "faithfulness": s.scores.faithfulness,
                           "support": s.scores.support, "tokens": s.scores.tokens}}

    return app


def _index_arg(value: str) -> tuple[str, Path]:
    name, sep, path = value.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=DIR, not {value!r}")
    return name, Path(path)


def add_summarize_worker_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    p = sub.add_parser("summarize-worker", help="run one summarizer worker process (HTTP)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8100)
    p.add_argument("--model", type=Path, default=DEFAULT_PATH)
    p.add_argument("--index", type=_index_arg, action="append", default=[], metavar="NAME=DIR",
                   help="a word-level index (from gramdex distill) that requests may name")
    return p


def run_summarize_worker(a: argparse.Namespace) -> int:
    uvicorn.run(create_app(a.model, dict(a.index)), host=a.host, port=a.port, log_level="warning",
                access_log=False)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gramdex")
    sub = parser.add_subparsers(dest="command", required=True)
    add_summarize_worker_parser(sub)
    return run_summarize_worker(parser.parse_args(["summarize-worker", *(argv or [])]))


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))
