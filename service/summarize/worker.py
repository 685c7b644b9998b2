"""`gramdex summarize-worker`: one process that loads the model (and any named indexes, and the optional abstractive
model) and summarizes.

CPU-bound work stays out of the gateway's event loop this way, and a crash or hang costs one worker, which the
gateway's supervisor replaces. A configured abstractive model and every named index are validated at start-up: a
broken one stops the worker with the reason rather than failing requests later.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI
from fastapi.responses import JSONResponse

from native.errors import GramdexError
from summarizer.abstractive import AbstractiveModel, AbstractiveModelError, Candidate, summarize_abstractive
from summarizer.corpus_lm import InfiniGram
from summarizer.critics import DocumentTooLargeError, Scores
from summarizer.model import DEFAULT_PATH, Model
from summarizer.summarize import BudgetError, Summarizer, Summary

# generation stops at this share of the gateway's deadline, leaving time for the critics and the answer
GENERATION_SHARE = 0.8


def _problem(status: int, title: str, detail: str, slug: str | None = None, field: str | None = None) -> JSONResponse:
    body: dict[str, Any] = {"title": title, "status": status, "detail": detail}
    if slug is not None:
        body["slug"] = slug   # the gateway answers with this problem type
    if field is not None:
        body["field"] = field
    return JSONResponse(body, status_code=status, media_type="application/problem+json")


def _scores(s: Scores, coherence: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {"saliency": s.saliency, "faithfulness": s.faithfulness, "support": s.support,
                           "tokens": s.tokens}
    if coherence:
        out["coherence"] = s.coherence
    return out


def _candidate(c: Candidate) -> dict[str, Any]:
    out: dict[str, Any] = {"model": c.model, "text": c.text, "passed": c.passed, "failed": list(c.failed),
                           "scores": _scores(c.scores, coherence=True)}
    if c.backend == "abstractive":
        out["sentences"] = [{"text": t, "source": i} for t, i in zip(c.sentences, c.sources, strict=True)]
        if c.generation is not None:
            g = c.generation
            out |= {"stopped": g.stopped, "generated_tokens": len(g.token_ids), "prompt_tokens": g.prompt_tokens,
                    "document_truncated": g.truncated}
        if c.error is not None:
            out["error"] = c.error
    return out


class UnusableIndexError(ValueError):
    """A named index cannot serve the critics: missing, unreadable, or not word-level; or an unknown default."""


def open_indexes(indexes: dict[str, Path], default: str | None) -> dict[str, InfiniGram]:
    """Every index opened at start, so a worker given a path that cannot serve fails before taking requests."""
    if default is not None and default not in indexes:
        raise UnusableIndexError(f"the default index {default!r} is not among the indexes "
                                 f"({', '.join(indexes) or 'none'})")
    opened: dict[str, InfiniGram] = {}
    for name, path in indexes.items():
        try:
            opened[name] = InfiniGram(path)
        except (GramdexError, OSError, ValueError, KeyError) as exc:
            raise UnusableIndexError(f"index {name!r} at {path}: {exc}") from exc
    return opened


def create_app(model_path: Path = DEFAULT_PATH, indexes: dict[str, Path] | None = None,
               abstractive_model: Path | None = None, default_index: str | None = None) -> FastAPI:
    """Raises AbstractiveModelError when `abstractive_model` is given and not a usable model directory, and
    UnusableIndexError when an index cannot serve the critics."""
    summarizer = Summarizer(Model.load(model_path))
    abstractive = AbstractiveModel(abstractive_model) if abstractive_model is not None else None
    opened = open_indexes(dict(indexes or {}), default_index)
    app = FastAPI(title="gramdex summarize worker")

    def lm(name: str | None) -> InfiniGram | None:
        return opened[name] if name is not None else None

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        return {"ok": True, "pid": os.getpid(), "model": summarizer.model.name,
                "abstractive_model": abstractive.name if abstractive is not None else None}

    @app.post("/summarize")
    def summarize(body: dict[str, Any]) -> Any:
        start = time.monotonic()
        index = body.get("index", default_index)
        if index is not None and index not in opened:
            return _problem(404, "unknown index",
                            f"no summarizer index named {index!r}; this summarizer has "
                            f"{', '.join(repr(n) for n in opened) or 'none'}. The critics need a word-level index "
                            "from gramdex distill (setting summarizer.indexes; gramdex summarize-worker --index "
                            "NAME=DIR); the indexes served for n-gram queries are not word-level")
        mode = body.get("mode", "extractive")
        if mode == "abstractive":
            if abstractive is None:
                return _problem(422, "abstractive mode not configured",
                                "mode 'abstractive' needs an abstractive model, and this summarizer has none "
                                "configured (setting summarizer.abstractive_model, "
                                "GRAMDEX_SUMMARIZER__ABSTRACTIVE_MODEL; gramdex summarize-worker --abstractive-model "
                                "DIR)", "validation-error", "mode")
            deadline_s = body.get("deadline_s")
            deadline = (start + GENERATION_SHARE * deadline_s
                        if isinstance(deadline_s, int | float) and deadline_s > 0 else None)
            try:
                r = summarize_abstractive(summarizer, abstractive, body["text"], max_tokens=body.get("max_tokens"),
                                          ratio=body.get("ratio"), lm=lm(index), deadline=deadline)
            except DocumentTooLargeError as exc:
                return _too_large(exc)
            except BudgetError as exc:
                return _problem(422, "impossible request", str(exc))
            w = r.winner
            return {"summary": w.text, "model": w.model, "budget": r.budget, "backend": w.backend,
                    "sentences": _sentences(r.student_summary) if w.backend == "student" else [],
                    "scores": _scores(w.scores),
                    "candidates": {"abstractive": _candidate(r.abstractive), "student": _candidate(r.student)},
                    "thresholds": {"faithfulness": r.thresholds.faithfulness, "support": r.thresholds.support,
                                   "saliency": r.thresholds.saliency, "coherence": r.thresholds.coherence}}
        try:
            s = summarizer.summarize(body["text"], max_tokens=body.get("max_tokens"), ratio=body.get("ratio"),
                                     mode=mode, lm=lm(index))
        except DocumentTooLargeError as exc:
            return _too_large(exc)
        except (BudgetError, ValueError) as exc:
            return _problem(422, "impossible request", str(exc))
        return {"summary": s.text, "model": s.model, "budget": s.budget, "backend": "student",
                "sentences": _sentences(s), "scores": _scores(s.scores)}

    return app


def _too_large(exc: DocumentTooLargeError) -> JSONResponse:
    return _problem(413, "document too large", str(exc), "query-too-large", "text")


def _sentences(s: Summary) -> list[dict[str, Any]]:
    return [{"index": p.index, "text": p.text, "start": p.pieces[0][0], "end": p.pieces[-1][1],
             "pieces": [list(x) for x in p.pieces]} for p in s.sentences]


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
    p.add_argument("--default-index", metavar="NAME", help="the index a request that names none uses")
    p.add_argument("--abstractive-model", type=Path, default=None, metavar="DIR",
                   help="an ONNX model directory (model.onnx, tokenizer.json) for mode 'abstractive'")
    return p


def run_summarize_worker(a: argparse.Namespace) -> int:
    try:
        app = create_app(a.model, dict(a.index), a.abstractive_model, a.default_index)
    except AbstractiveModelError as exc:
        print(f"gramdex summarize-worker: abstractive model: {exc}", file=sys.stderr)
        return 2
    except UnusableIndexError as exc:
        print(f"gramdex summarize-worker: {exc}", file=sys.stderr)
        return 2
    uvicorn.run(app, host=a.host, port=a.port, log_level="warning", access_log=False)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gramdex")
    sub = parser.add_subparsers(dest="command", required=True)
    add_summarize_worker_parser(sub)
    return run_summarize_worker(parser.parse_args(["summarize-worker", *(argv or [])]))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
