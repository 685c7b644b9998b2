"""`gramdex count|ntd|prob|infgram|docs|attribute|summarize`: queries from a terminal, against an index directory
(`--index DIR`, through the engine in this process) or a server (`--url`, through the SDK). Readable tables by
default; `--json` prints the API's response body, the same from either source."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

Body = dict[str, Any]
Handler = Callable[[argparse.Namespace], int]
NUMERIC = (int, float)


# --- where answers come from ---

class Local:
    """An index directory opened in this process; text is tokenized with the index's own tokenizer, and queries
    are checked against the server's default limits."""

    def __init__(self, path: Path | None) -> None:
        from service.registry import LoadedIndex, open_index
        from service.settings import IndexSettings, Limits

        self.path = path
        self.abstractive_model: Path | None = None
        self.limits = Limits()
        self.timeout_ms = self.limits.default_timeout_ms
        self._ix: LoadedIndex | None = open_index(path.name, IndexSettings(path=path)) if path else None

    @property
    def ix(self) -> Any:
        if self._ix is None:
            raise _Failure("give --index DIR (an index directory) or --url URL (a server; also GRAMDEX_URL)")
        return self._ix

    @staticmethod
    def _split(q: str | list[int]) -> tuple[str | None, list[int] | None]:
        return (q, None) if isinstance(q, str) else (None, q)

    def _tokens(self, ids: Any) -> Any:
        from service import inputs

        return inputs.tokens(self.ix, ids)

    def count(self, q: str | list[int]) -> Body:
        from service import inputs

        query = inputs.query(self.ix, *self._split(q), self.limits, allow_cnf=True)
        e = self.ix.engine
        if query.ids is not None:
            n, approx = e.count(query.ids), False
        else:
            r = e.count_cnf(query.cnf, 50_000, 100, self.timeout_ms)
            n, approx = r.count, r.approx
        return {"count": n, "approx": approx, "token_ids": query.echo, "tokens": self._tokens(query.echo)}

    def ntd(self, prompt: str | list[int], infgram: bool, max_support: int) -> Body:
        from service import inputs

        ids = inputs.sequence(self.ix, "prompt", *self._split(prompt), self.limits)
        fn = self.ix.engine.infgram_ntd if infgram else self.ix.engine.ntd
        r = fn(ids, max_support, self.timeout_ms)
        ranked = sorted(r.counts.items(), key=lambda kv: (-kv[1], kv[0]))
        names = self._tokens([t for t, _ in ranked]) or [None] * len(ranked)
        nexts = [{"token_id": t, "token": s, "cont_cnt": c, "prob": c / r.prompt_cnt}
                 for (t, c), s in zip(ranked, names, strict=True)]
        return {"prompt_ids": ids, "prompt_tokens": self._tokens(ids), "prompt_cnt": r.prompt_cnt,
                "approx": r.approx, "suffix_len": r.suffix_len, "next_tokens": nexts}

    def prob(self, prompt: str | list[int], cont: str | int, infgram: bool) -> Body:
        from service import inputs

        ids = inputs.sequence(self.ix, "prompt", *self._split(prompt), self.limits)
        text, cid = (cont, None) if isinstance(cont, str) else (None, cont)
        tok = inputs.single_token(self.ix, text, cid, self.limits)
        r = (self.ix.engine.infgram_prob if infgram else self.ix.engine.prob)(ids, tok)
        return {"prompt_ids": ids, "prompt_tokens": self._tokens(ids), "cont_id": tok,
                "cont_token": (self._tokens([tok]) or [None])[0], "prompt_cnt": r.prompt_cnt,
                "cont_cnt": r.cont_cnt, "prob": r.prob if r.prompt_cnt else None, "suffix_len": r.suffix_len}

    def docs(self, q: str | list[int], maxnum: int, max_disp_len: int, seed: int) -> Body:
        from service import inputs
        from service.documents import document, needles_of

        query = inputs.query(self.ix, *self._split(q), self.limits, allow_cnf=True)
        e = self.ix.engine
        if query.ids is not None:
            r = e.search_docs(query.ids, maxnum, max_disp_len, seed)
        else:
            r = e.search_docs_cnf(query.cnf, maxnum, max_disp_len, 50_000, 100, seed, self.timeout_ms)
        needles = needles_of(query.ids, query.cnf)
        return {"count": r.cnt, "approx": r.approx, "idxs": r.idxs, "token_ids": query.echo,
                "tokens": self._tokens(query.echo), "documents": [document(self.ix, d, needles) for d in r.documents]}

    def attribute(self, text: str | list[int], min_len: int, max_locations: int) -> Body:
        from service import inputs

        ids = inputs.sequence(self.ix, "query", *self._split(text), self.limits)
        e, codec = self.ix.engine, self.ix.codec
        spans = [{"start": s.start, "end": s.end, "count": s.count,
                  "text": codec.decode(ids[s.start:s.end]) if codec else None,
                  "locations": [{"shard": sh, "ptr": p, "doc_ix": e.get_doc_by_ptr(sh, p, 1).doc_ix}
                                for sh, p in s.locations]}
                 for s in e.attribute(ids, min_len, max_locations, self.timeout_ms)]
        return {"spans": spans, "token_ids": ids, "tokens": self._tokens(ids)}

    def summarize(self, text: str, max_tokens: int | None, ratio: float | None, mode: str) -> Body:
        # the worker's own app, in this process: the same validation and the same answer as over HTTP
        from fastapi.testclient import TestClient

        from service.summarize.worker import UnusableIndexError, create_app
        from summarizer.abstractive import AbstractiveModelError

        index = {"local": self.path} if self.path else {}
        try:
            app = create_app(indexes=index, abstractive_model=self.abstractive_model)
        except AbstractiveModelError as exc:
            raise _Failure(f"--abstractive-model: {exc}") from None
        except UnusableIndexError as exc:
            raise _Failure(f"--index: {exc}") from None
        with TestClient(app) as c:
            body = {"text": text, "max_tokens": max_tokens, "ratio": ratio, "mode": mode,
                    "index": next(iter(index), None)}
            r = c.post("/summarize", json={k: v for k, v in body.items() if v is not None})
        if r.status_code != 200:
            raise _Failure(f"{r.json().get('title')}: {r.json().get('detail')}")
        return dict(r.json())


class Remote:
    """A server, through the SDK; the index is --name, else GRAMDEX_INDEX, else the server's only index."""

    def __init__(self, url: str, name: str | None, api_key: str | None) -> None:
        from gramdex_client import Client

        self.c = Client(url, api_key=api_key, index=name)

    @property
    def index(self) -> str:
        """The index queries go to; looked up only when a command needs one (summarize does not)."""
        if self.c.calls.default_index is None:
            names = [i.name for i in self.c.indexes()]
            if len(names) != 1:
                raise _Failure(f"the server has indexes {', '.join(names) or '(none)'}: choose one with --name")
            self.c.calls.default_index = names[0]
        return self.c.calls.default_index

    def count(self, q: str | list[int]) -> Body:
        return self.c.count(q, index=self.index).model_dump()

    def ntd(self, prompt: str | list[int], infgram: bool, max_support: int) -> Body:
        fn = self.c.infgram_ntd if infgram else self.c.ntd
        return fn(prompt, index=self.index, max_support=max_support).model_dump()

    def prob(self, prompt: str | list[int], cont: str | int, infgram: bool) -> Body:
        return (self.c.infgram_prob if infgram else self.c.prob)(prompt, cont, index=self.index).model_dump()

    def docs(self, q: str | list[int], maxnum: int, max_disp_len: int, seed: int) -> Body:
        return self.c.search_documents(q, index=self.index, maxnum=maxnum, max_disp_len=max_disp_len,
                                       seed=seed).model_dump()

    def attribute(self, text: str | list[int], min_len: int, max_locations: int) -> Body:
        return self.c.attribute(text, index=self.index, min_len=min_len, max_locations=max_locations).model_dump()

    def summarize(self, text: str, max_tokens: int | None, ratio: float | None, mode: str) -> Body:
        return self.c.summarize(text, max_tokens=max_tokens, ratio=ratio, mode=mode).model_dump()  # type: ignore[arg-type]


class _Failure(Exception):
    """A message for the user, without a traceback."""


def _source(a: argparse.Namespace) -> Local | Remote:
    url = a.url or (None if a.index else os.environ.get("GRAMDEX_URL"))
    if a.index and url:
        raise _Failure("give --index DIR or --url URL, not both")
    if url:
        return Remote(url, a.name, a.api_key)
    if a.index is not None and not a.index.is_dir():
        raise _Failure(f"{a.index} is not an index directory")
    return Local(a.index)  # with no index, only summarize can answer


# --- tables ---

def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Columns padded to their widest cell; numbers right-aligned."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(headers)]
    numeric = [bool(rows) and all(isinstance(r[i], NUMERIC) for r in rows) for i in range(len(headers))]

    def line(values: Sequence[str]) -> str:
        return "  ".join(v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric, strict=True))

    return "\n".join(line(r).rstrip() for r in [headers, ["-" * w for w in widths], *cells])


def _cell(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v).replace("\n", "\\n")


def _text(tokens: list[str]) -> str:
    """Tokens joined and quoted, so leading spaces show; byte-level BPE writes a space as Ġ and a newline as Ċ."""
    return json.dumps("".join(tokens).replace("Ġ", " ").replace("Ċ", "\n"), ensure_ascii=False)


def _shown(tokens: Any, ids: Any) -> str:
    if tokens and isinstance(tokens[0], str):
        return _text(tokens)
    if tokens:  # a CNF: clauses of alternatives
        return " AND ".join(" OR ".join(_text(t) for t in clause) for clause in tokens)
    return " ".join(map(str, ids))


def _bar(share: float, width: int = 30) -> str:
    return "█" * max(1, round(share * width)) if share > 0 else ""


def show_count(b: Body) -> str:
    return table(["query tokens", "count", "approx"], [[_shown(b.get("tokens"), b["token_ids"]), b["count"],
                                                       "yes" if b["approx"] else "no"]])


def show_ntd(b: Body) -> str:
    head = (f"prompt: {_shown(b.get('prompt_tokens'), b['prompt_ids'])}  count {b['prompt_cnt']:,}"
            + (f"  suffix used: {b['suffix_len']} tokens" if b.get("suffix_len") is not None else "")
            + ("  (approximate)" if b["approx"] else ""))
    rows = [[_text([t["token"]]) if t["token"] is not None else "-", t["token_id"], t["cont_cnt"], t["prob"],
             _bar(t["prob"])] for t in b["next_tokens"]]
    return head + "\n" + table(["next token", "id", "count", "prob", ""], rows)


def show_prob(b: Body) -> str:
    cont = _shown([b["cont_token"]] if b.get("cont_token") else None, [b["cont_id"]])
    return table(["prompt", "cont", "prompt count", "cont count", "prob", "suffix used"],
                 [[_shown(b.get("prompt_tokens"), b["prompt_ids"]), cont,
                   b["prompt_cnt"], b["cont_cnt"], b["prob"], b.get("suffix_len")]])


def show_docs(b: Body) -> str:
    out = [f"{b['count']:,} occurrence(s){' (approximate)' if b['approx'] else ''}; "
           f"{len(b['documents'])} document(s) drawn, matches in [brackets]"]
    for d in b["documents"]:
        text = "".join(f"[{s['text']}]" if s["match"] is not None else s["text"] for s in d["spans"])
        meta = json.dumps(d["metadata"], ensure_ascii=False) if d["metadata"] is not None else "-"
        out += ["", f"document {d['doc_ix']} ({d['doc_len']:,} tokens, showing from {d['disp_start']:,})",
                f"metadata: {meta}", text.strip()]
    return "\n".join(out)


def show_attribute(b: Body) -> str:
    rows = [[s["start"], s["end"], s["end"] - s["start"], s["count"], s.get("text") or "-",
             ", ".join(str(loc["doc_ix"]) for loc in s["locations"]) or "-"] for s in b["spans"]]
    return table(["start", "end", "tokens", "count", "text", "documents"], rows) if rows else "no span found"


def show_summary(b: Body) -> str:
    sc = b["scores"]
    backend = f", {b['backend']} text" if b.get("backend") == "abstractive" else ""
    rows = [[s["index"], s["start"], s["end"], s["text"]] for s in b["sentences"]]
    return "\n".join([b["summary"], "", table(["sentence", "start", "end", "kept text"], rows), "",
                      f"model {b['model']}{backend}, budget {b['budget']} tokens, used {sc['tokens']}; saliency "
                      f"{sc['saliency']:.3f}, faithfulness {sc['faithfulness']:.3f}, support {sc['support']:.3f}"])


# --- commands ---

def _ids(text: str) -> list[int]:
    try:
        return [int(t) for t in text.replace(",", " ").split()]
    except ValueError:
        raise _Failure(f"--ids expects token ids separated by spaces or commas, not {text!r}") from None


def _query(a: argparse.Namespace, value: str) -> str | list[int]:
    return _ids(value) if a.ids else value


def _read(value: str) -> str:
    """The text itself, or @FILE, or - for standard input."""
    if value == "-":
        return sys.stdin.read()
    if value.startswith("@"):
        return Path(value[1:]).read_text(encoding="utf-8")
    return value


def _run_count(a: argparse.Namespace, s: Local | Remote) -> tuple[Body, Callable[[Body], str]]:
    return s.count(_query(a, a.query)), show_count


def _run_ntd(a: argparse.Namespace, s: Local | Remote) -> tuple[Body, Callable[[Body], str]]:
    body = s.ntd(_query(a, a.prompt), False, a.max_support)
    return body, lambda b: show_ntd({**b, "next_tokens": b["next_tokens"][:a.top]})


def _cont(a: argparse.Namespace) -> str | int:
    return int(a.cont) if a.ids else a.cont


def _run_prob(a: argparse.Namespace, s: Local | Remote) -> tuple[Body, Callable[[Body], str]]:
    return s.prob(_query(a, a.prompt), _cont(a), False), show_prob


def _run_infgram(a: argparse.Namespace, s: Local | Remote) -> tuple[Body, Callable[[Body], str]]:
    if a.cont is not None:
        return s.prob(_query(a, a.prompt), _cont(a), True), show_prob
    body = s.ntd(_query(a, a.prompt), True, a.max_support)
    return body, lambda b: show_ntd({**b, "next_tokens": b["next_tokens"][:a.top]})


def _run_docs(a: argparse.Namespace, s: Local | Remote) -> tuple[Body, Callable[[Body], str]]:
    return s.docs(_query(a, a.query), a.maxnum, a.max_disp_len, a.seed), show_docs


def _run_attribute(a: argparse.Namespace, s: Local | Remote) -> tuple[Body, Callable[[Body], str]]:
    text = _read(a.text)
    return s.attribute(_ids(text) if a.ids else text, a.min_len, a.max_locations), show_attribute


def _run_summarize(a: argparse.Namespace, s: Local | Remote) -> tuple[Body, Callable[[Body], str]]:
    if (a.max_tokens is None) == (a.ratio is None):
        raise _Failure("give exactly one of --max-tokens and --ratio")
    if a.abstractive_model is not None and isinstance(s, Remote):
        raise _Failure("--abstractive-model is for summarizing in this process; a server uses its own model")
    if isinstance(s, Local):
        s.abstractive_model = a.abstractive_model
    return s.summarize(_read(a.text), a.max_tokens, a.ratio, a.mode), show_summary


def _execute(run: Callable[[argparse.Namespace, Local | Remote], tuple[Body, Callable[[Body], str]]]) -> Handler:
    """Open the source, run the query, print the table (or JSON); errors become one line on stderr."""

    def handler(a: argparse.Namespace) -> int:
        from gramdex_client import ApiError, GramdexClientError

        from native.errors import GramdexError
        from service.errors import Problem, from_engine

        try:
            start = time.perf_counter()
            body, show = run(a, _source(a))
            body.setdefault("latency_ms", (time.perf_counter() - start) * 1000)
        except Problem as p:
            return _fail(a, f"{p.title}: {p.detail}")
        except GramdexError as exc:
            p = from_engine(exc)
            return _fail(a, f"{p.title}: {p.detail}")
        except ApiError as exc:
            return _fail(a, f"{exc.status} {exc.title}: {exc.detail}")
        except (GramdexClientError, _Failure, OSError) as exc:
            return _fail(a, str(exc))
        print(json.dumps(body, ensure_ascii=False, indent=2) if a.json else show(body))
        if not a.json:
            print(f"({body['latency_ms']:.2f} ms)")
        return 0

    return handler


def _fail(a: argparse.Namespace, message: str) -> int:
    print(f"gramdex {a.command}: error: {message}", file=sys.stderr)
    return 1


def _common(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    src = p.add_argument_group("source (one of)")
    src.add_argument("--index", type=Path, metavar="DIR", help="an index directory, queried in this process")
    src.add_argument("--url", help="a gramdex server (default: GRAMDEX_URL when --index is not given)")
    src.add_argument("--name", help="with --url: the index's name on the server (default: GRAMDEX_INDEX, or the "
                                    "server's only index)")
    src.add_argument("--api-key", default=None, help="with --url: an API key (default: GRAMDEX_API_KEY)")
    p.add_argument("--json", action="store_true", help="print the API's JSON response body")
    return p


def _parser(sub: argparse._SubParsersAction, name: str, help: str, *, ids: bool = True,  # type: ignore[type-arg]
            description: str | None = None) -> argparse.ArgumentParser:
    p = _common(sub.add_parser(name, help=help, description=description or help))
    if ids:
        p.add_argument("--ids", action="store_true", help="the query is token ids (spaces or commas between them)")
    return p


def _add_count(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    p = _parser(sub, "count", "occurrences of an n-gram, or of 'a AND b OR c' (a CNF)")
    p.add_argument("query")
    return p


def _ntd_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--max-support", type=int, default=1000, help="suffix-array entries read (default 1000)")
    p.add_argument("--top", type=int, default=20, help="rows shown in the table (default 20)")


def _add_ntd(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    p = _parser(sub, "ntd", "next-token distribution after a prompt")
    p.add_argument("prompt")
    _ntd_options(p)
    return p


def _add_prob(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    p = _parser(sub, "prob", "P(cont | prompt) from n-gram counts")
    p.add_argument("prompt")
    p.add_argument("cont", help="one token (text, or an id with --ids)")
    return p


def _add_infgram(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    p = _parser(sub, "infgram", "∞-gram probability (with --cont) or next-token distribution, backing off to the "
                           "longest suffix of the prompt that occurs")
    p.add_argument("prompt")
    p.add_argument("--cont", help="one token: print P(cont | prompt) instead of the distribution")
    _ntd_options(p)
    return p


def _add_docs(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    p = _parser(sub, "docs", "documents holding an n-gram or a CNF, matches marked")
    p.add_argument("query")
    p.add_argument("--maxnum", type=int, default=3, help="documents to draw (default 3)")
    p.add_argument("--max-disp-len", type=int, default=60, help="tokens shown per document (default 60)")
    p.add_argument("--seed", type=int, default=0, help="draws are reproducible for a seed")
    return p


def _add_attribute(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    p = _parser(sub, "attribute", "spans of a text found verbatim in the corpus, with the documents holding them")
    p.add_argument("text", help="the text, @FILE, or - for standard input")
    p.add_argument("--min-len", type=int, default=2, help="shortest span shown, in tokens (default 2)")
    p.add_argument("--max-locations", type=int, default=5, help="documents listed per span (default 5)")
    return p


def _add_summarize(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    p = _parser(sub, "summarize", "summarize a document (the text, @FILE, or - for standard input)", ids=False,
                description="Summarize a document: through a server (--url), or in this process with --index DIR "
                            "as the critics' word-level corpus index (from gramdex distill).")
    p.add_argument("text", help="the text, @FILE, or - for standard input")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--max-tokens", type=int, help="budget in words and punctuation tokens")
    budget.add_argument("--ratio", type=float, help="budget as a share of the document's tokens")
    p.add_argument("--mode", choices=["extractive", "compressive", "abstractive"], default="extractive")
    p.add_argument("--abstractive-model", type=Path, metavar="DIR",
                   help="in this process: an ONNX model directory for --mode abstractive (a server has its own)")
    return p


# registered in index_tools/cli.py COMMANDS
TERMINAL_COMMANDS: dict[str, tuple[Callable[..., argparse.ArgumentParser], Handler]] = {
    "count": (_add_count, _execute(_run_count)),
    "ntd": (_add_ntd, _execute(_run_ntd)),
    "prob": (_add_prob, _execute(_run_prob)),
    "infgram": (_add_infgram, _execute(_run_infgram)),
    "docs": (_add_docs, _execute(_run_docs)),
    "attribute": (_add_attribute, _execute(_run_attribute)),
    "summarize": (_add_summarize, _execute(_run_summarize)),
}
