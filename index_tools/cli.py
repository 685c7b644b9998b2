"""The `gramdex` command. Each subcommand is a (register, run) pair in COMMANDS, so later tools
(serve, count, ...) plug in by adding an entry."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path

from index_tools.terminal import TERMINAL_COMMANDS
from service.cli import add_serve_parser, run_serve
from service.summarize.worker import add_summarize_worker_parser, run_summarize_worker
from summarizer.distill import add_distill_parser, run_distill

Handler = Callable[[argparse.Namespace], int]


def _add_build(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    p = sub.add_parser("build", help="build an index from raw documents",
                       description="Tokenize documents and build infini-gram v4 shards, index.json and "
                                   "the tokenizer, atomically (the output appears only when complete).")
    p.add_argument("--input", "-i", nargs="+", type=Path, required=True,
                   help=".jsonl/.jsonl.gz/.jsonl.zst/.txt files or directories (recursive, sorted)")
    p.add_argument("--output", "-o", type=Path, required=True, help="index directory to create")
    p.add_argument("--text-field", default="text", help="JSON field holding the text (default: text)")
    tok = p.add_mutually_exclusive_group(required=True)
    tok.add_argument("--tokenizer", type=Path, help="a Hugging Face tokenizers JSON file (.json or .json.gz)")
    tok.add_argument("--train-tokenizer", action="store_true", help="train a byte-level BPE on the input")
    tok.add_argument("--bytes", action="store_true", help="UTF-8 bytes as tokens (u8)")
    p.add_argument("--vocab-size", type=int, help="vocabulary size for --train-tokenizer")
    p.add_argument("--shards", type=int, default=1, help="number of shards (documents dealt round-robin)")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="threads (tokenize, sort)")
    p.add_argument("--memory-gb", type=float, help="hard memory budget for suffix sorting; larger "
                                                 "shards are sorted in parts and merged on disk")
    p.add_argument("--workers", type=int, default=1,
                   help="independent machines building the corpus: worker I builds global shards I, "
                        "I+W, ... into its own --output (numbered 0.. there, global numbers in "
                        "index.json); open all workers' directories together")
    p.add_argument("--worker-id", type=int, default=0, help="this machine's number in [0, --workers)")
    p.add_argument("--skip-bad-lines", action="store_true", help="skip malformed lines (counted)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted build")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress output")
    p.add_argument("--max-part-tokens", type=int, default=0, help=argparse.SUPPRESS)
    return p


def _run_build(a: argparse.Namespace) -> int:
    # tokenizers' Rust thread pool reads this once, when it first starts
    os.environ.setdefault("RAYON_NUM_THREADS", str(max(1, a.threads)))
    from index_tools.build import BuildError, BuildOptions, build_index

    opts = BuildOptions(
        inputs=a.input, output=a.output, text_field=a.text_field, tokenizer=a.tokenizer,
        train_tokenizer=a.train_tokenizer, vocab_size=a.vocab_size, use_bytes=a.bytes, shards=a.shards,
        threads=a.threads, memory_gb=a.memory_gb, workers=a.workers, worker_id=a.worker_id,
        skip_bad_lines=a.skip_bad_lines, resume=a.resume, quiet=a.quiet, max_part_tokens=a.max_part_tokens)
    try:
        build_index(opts)
    except BuildError as e:
        print(f"gramdex build: error: {e}", file=sys.stderr)
        return 1
    return 0


def _add_verify(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    p = sub.add_parser("verify", help="check an index", description="Check sizes, the manifest, document "
                       "offsets and suffix order (a sample of adjacent pairs, or all with --full).")
    p.add_argument("index", type=Path)
    p.add_argument("--full", action="store_true", help="check every suffix pair and the whole permutation")
    return p


def _run_verify(a: argparse.Namespace) -> int:
    from index_tools.verify import verify_index

    report = verify_index(a.index, full=a.full)
    for line in report.checked:
        print(f"ok: {line}")
    for line in report.problems:
        print(f"PROBLEM: {line}", file=sys.stderr)
    print("index OK" if report.ok else f"index BROKEN: {len(report.problems)} problem(s)")
    return 0 if report.ok else 1


def _add_info(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    p = sub.add_parser("info", help="print what an index holds")
    p.add_argument("index", type=Path)
    p.add_argument("--json", action="store_true", help="print index.json as is")
    return p


def _run_info(a: argparse.Namespace) -> int:
    from native.manifest import ManifestError, read_manifest

    try:
        m = read_manifest(a.index)
    except ManifestError as e:
        print(f"gramdex info: error: {e}", file=sys.stderr)
        return 1
    if a.json:
        print(m.to_json(), end="")
        return 0
    size = sum(sum(s.files.values()) for s in m.shards)
    print(f"index:       {a.index}")
    print(f"documents:   {m.document_count:,}")
    print(f"tokens:      {m.token_count:,} ({m.token_dtype}, separator id {m.sep_token_id}, "
          f"eos id {m.eos_token_id})")
    print(f"vocabulary:  {m.vocab_size:,} ids, tokenizer: {m.tokenizer_file or 'UTF-8 bytes'}")
    print(f"shards:      {len(m.shards)} here of {m.total_shards} (worker {m.worker_id} of {m.workers})")
    print(f"disk:        {size:,} bytes ({size / max(1, m.token_count):.2f} B/token)")
    for s in m.shards:
        print(f"  shard {s.shard} (global {s.global_shard}): {s.doc_count:,} docs, {s.token_count:,} tokens")
    return 0


COMMANDS: dict[str, tuple[Callable[..., argparse.ArgumentParser], Handler]] = {
    "build": (_add_build, _run_build),
    "verify": (_add_verify, _run_verify),
    "info": (_add_info, _run_info),
    "serve": (add_serve_parser, run_serve),
    "distill": (add_distill_parser, run_distill),
    "summarize-worker": (add_summarize_worker_parser, run_summarize_worker),
    **TERMINAL_COMMANDS,
}


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gramdex", description="n-gram indexes over large corpora")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for register, handler in COMMANDS.values():
        register(sub).set_defaults(handler=handler)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    return int(args.handler(args))


if __name__ == "__main__":
    sys.exit(main())
