"""`gramdex build`: raw documents -> infini-gram v4 shards + index.json + tokenizer, atomically.

The index is built in a hidden sibling directory (`.NAME.partial`) that records finished phases in
`build-state.json`; only a complete index is renamed to NAME, so a killed build leaves nothing that
looks like an index and `--resume` continues from the last finished phase (tokenize, then each
shard's suffix array).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from index_tools import inputs as inp
from index_tools.progress import Progress, note
from index_tools.tokenize import TOKENIZER_FILE, BytesTokenizer, HFTokenizer, Tokenizer, sep_id, train_bpe
from native.manifest import MANIFEST_FILE, Manifest, ShardEntry, shard_file_sizes

STATE_FILE = "build-state.json"
TRAIN_SAMPLE_BYTES = 64 << 20


class BuildError(Exception):
    """The build cannot go on; the message says why and what to do."""


@dataclass
class BuildOptions:
    inputs: list[Path]
    output: Path
    text_field: str = "text"
    tokenizer: Path | None = None
    train_tokenizer: bool = False
    vocab_size: int | None = None
    use_bytes: bool = False
    shards: int = 1
    threads: int = 1
    memory_gb: float | None = None
    workers: int = 1
    worker_id: int = 0
    skip_bad_lines: bool = False
    resume: bool = False
    quiet: bool = False
    batch_docs: int = 1024
    batch_bytes: int = 8 << 20
    max_part_tokens: int = 0  # tests: force the parts-and-merge path
    train_sample_bytes: int = TRAIN_SAMPLE_BYTES

    def local_shards(self) -> list[int]:
        """Global shard numbers this worker builds, in order; file N holds local_shards()[N]."""
        return [s for s in range(self.shards) if s % self.workers == self.worker_id]


@dataclass
class _State:
    fingerprint: str
    done: list[str] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)


def partial_dir(output: Path) -> Path:
    return output.parent / f".{output.name}.partial"


def _check_options(o: BuildOptions) -> None:
    modes = [o.tokenizer is not None, o.train_tokenizer, o.use_bytes]
    if sum(modes) != 1:
        raise BuildError("choose exactly one of --tokenizer FILE, --train-tokenizer, --bytes")
    if o.train_tokenizer and not o.vocab_size:
        raise BuildError("--train-tokenizer needs --vocab-size")
    if o.shards < 1 or o.workers < 1 or not 0 <= o.worker_id < o.workers:
        raise BuildError("need --shards >= 1, --workers >= 1 and 0 <= --worker-id < --workers")
    if o.workers > o.shards:
        raise BuildError(f"--workers ({o.workers}) cannot exceed --shards ({o.shards})")
    if o.threads < 1:
        raise BuildError("--threads must be >= 1")
    if o.memory_gb is not None and o.memory_gb <= 0:
        raise BuildError("--memory-gb must be positive")
    if not o.inputs:
        raise BuildError("no --input given")


def _fingerprint(o: BuildOptions, files: list[inp.InputFile]) -> str:
    """What determines the output bytes: a resumed build must match it exactly."""
    h = hashlib.sha256()
    tok_digest = hashlib.sha256(o.tokenizer.read_bytes()).hexdigest() if o.tokenizer else None
    h.update(json.dumps({
        "files": [[str(f.path.resolve()), f.rel, f.path.stat().st_size, f.path.stat().st_mtime_ns]
                  for f in files],
        "text_field": o.text_field, "tokenizer": tok_digest, "train": o.train_tokenizer,
        "vocab_size": o.vocab_size, "bytes": o.use_bytes, "shards": o.shards, "workers": o.workers,
        "worker_id": o.worker_id, "skip_bad_lines": o.skip_bad_lines,
        "train_sample_bytes": o.train_sample_bytes,
    }, sort_keys=True).encode())
    return h.hexdigest()


def _fsync(path: Path) -> None:
    """Flush a file's (or a directory's entries') data to disk: a power cut after a rename must not leave a
    complete-looking index whose files are still partly in the page cache."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _save_state(work: Path, state: _State) -> None:
    tmp = work / (STATE_FILE + ".tmp")
    tmp.write_text(json.dumps(asdict(state), sort_keys=True), encoding="utf-8")
    os.replace(tmp, work / STATE_FILE)


def _load_state(work: Path) -> _State | None:
    try:
        return _State(**json.loads((work / STATE_FILE).read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
        return None


def _prepare_workdir(o: BuildOptions, fingerprint: str) -> tuple[Path, _State]:
    if o.output.exists():
        raise BuildError(f"{o.output} already exists; choose a new --output or remove it")
    work = partial_dir(o.output)
    if work.exists():
        state = _load_state(work)
        if not o.resume:
            raise BuildError(f"an unfinished build is in {work}: rerun with --resume to continue it, "
                             "or delete that directory")
        if state is None or state.fingerprint != fingerprint:
            raise BuildError(f"{work} holds an unfinished build of different inputs or options; "
                             "delete it to start over")
        note(f"resuming: phases already done: {', '.join(state.done) or 'none'}", o.quiet)
        return work, state
    o.output.parent.mkdir(parents=True, exist_ok=True)
    work.mkdir()
    state = _State(fingerprint)
    _save_state(work, state)
    return work, state


def _make_tokenizer(o: BuildOptions, files: list[inp.InputFile], work: Path, state: _State) -> Tokenizer:
    if o.use_bytes:
        return BytesTokenizer()
    if o.tokenizer is not None:
        try:
            return HFTokenizer.from_file(o.tokenizer)
        except Exception as e:  # tokenizers raises plain Exceptions for malformed files
            raise BuildError(f"{o.tokenizer}: cannot load tokenizer: {e}") from e
    saved = work / TOKENIZER_FILE
    if "tokenizer" in state.done and saved.exists():
        return HFTokenizer.from_file(saved)
    note(f"training a byte-level BPE tokenizer (vocab {o.vocab_size}) on up to "
         f"{o.train_sample_bytes >> 20} MiB of the input", o.quiet)
    docs = (d.text for d in inp.read_documents(files, o.text_field, True))
    from index_tools.tokenize import sample_texts

    tok = train_bpe(sample_texts(docs, o.train_sample_bytes), int(o.vocab_size or 0))
    tok.save(work)
    state.done.append("tokenizer")
    _save_state(work, state)
    return tok


class _ShardWriter:
    """Appends documents to one shard's tokenized/offset/metadata/metaoff files."""

    def __init__(self, work: Path, local: int, width: int) -> None:
        self.sep = np.array([sep_id(width)], dtype={1: "u1", 2: "<u2", 4: "<u4"}[width]).tobytes()
        self.files: list[BinaryIO] = [open(work / f"{stem}.{local}", "wb")
                                      for stem in ("tokenized", "offset", "metadata", "metaoff")]
        self.pos = 0
        self.meta_pos = 0
        self.docs = 0

    def add(self, tokens: np.ndarray, meta_line: bytes) -> None:
        tok, off, meta, metaoff = self.files
        off.write(self.pos.to_bytes(8, "little"))
        tok.write(self.sep)
        tok.write(tokens.tobytes())
        self.pos += len(self.sep) + tokens.nbytes
        metaoff.write(self.meta_pos.to_bytes(8, "little"))
        meta.write(meta_line)
        self.meta_pos += len(meta_line)
        self.docs += 1

    def close(self) -> None:
        for f in self.files:
            f.flush()
            os.fsync(f.fileno())
            f.close()


def _metadata_line(d: inp.Document) -> bytes:
    """The fields infini-gram's indexer writes, as compact UTF-8 JSON (a twentieth smaller than its spaced, escaped
    form); a metadata value holding a lone surrogate (a JSON \\ud800 escape) keeps the escaped form."""
    fields = {"path": d.source.rel, "linenum": d.linenum, "metadata": d.metadata}
    try:
        return (json.dumps(fields, separators=(",", ":"), ensure_ascii=False) + "\n").encode("utf-8")
    except UnicodeEncodeError:
        return (json.dumps(fields, separators=(",", ":")) + "\n").encode("ascii")


def _tokenize(o: BuildOptions, files: list[inp.InputFile], tok: Tokenizer, work: Path) -> dict[str, Any]:
    tok.threads = o.threads  # the native byte-level BPE encoder splits each batch over the threads
    local = o.local_shards()
    slot = {g: i for i, g in enumerate(local)}
    writers = [_ShardWriter(work, i, tok.width) for i in range(len(local))]
    stats = inp.ReadStats()
    batch: list[tuple[int, inp.Document]] = []
    batch_bytes = 0
    # With threads to spare, a batch is encoded in the background (encoders release the GIL) while the
    # next one is read; batches are still written in input order.
    background = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tokenize") if o.threads > 1 else None
    pending: tuple[list[tuple[int, inp.Document]], Future[list[np.ndarray]]] | None = None

    def encode(items: list[tuple[int, inp.Document]]) -> list[np.ndarray]:
        try:
            return tok.encode_batch([d.text for _, d in items])
        except Exception as e:  # tokenizers raises plain Exceptions
            first = items[0][1]
            raise BuildError(f"tokenizer failed on a batch starting at {first.source.path}:"
                             f"{first.linenum + 1}: {e}") from e

    def write(items: list[tuple[int, inp.Document]], arrays: list[np.ndarray]) -> None:
        for (w, d), ids in zip(items, arrays, strict=True):
            writers[w].add(ids, _metadata_line(d))

    def flush(last: bool = False) -> None:
        nonlocal batch, batch_bytes, pending
        if pending is not None:
            done, pending = pending, None
            write(done[0], done[1].result())
        if not batch:
            return
        items, batch, batch_bytes = batch, [], 0
        if background is None or last:
            write(items, encode(items))
        else:
            pending = (items, background.submit(encode, items))

    total_docs = 0
    try:
        with Progress("tokenize", inp.total_input_bytes(files), "B", o.quiet) as bar:
            for doc in inp.read_documents(files, o.text_field, o.skip_bad_lines, stats):
                g = total_docs % o.shards
                total_docs += 1
                if g in slot:
                    batch.append((slot[g], doc))
                    batch_bytes += len(doc.text)
                    if len(batch) >= o.batch_docs or batch_bytes >= o.batch_bytes:
                        flush()
                bar.update(stats.bytes_read)
            flush(last=True)
    finally:
        if background is not None:
            background.shutdown(wait=True, cancel_futures=True)
        for w in writers:
            w.close()
    if total_docs == 0:
        raise BuildError("the corpus is empty: no documents found in the inputs")
    for g, w in zip(local, writers, strict=True):
        if w.docs == 0:
            raise BuildError(f"shard {g} would be empty: {total_docs} documents for {o.shards} shards")
    if stats.bad_lines:
        note(f"skipped {stats.bad_lines} bad lines, e.g. {stats.bad_examples[0]}", o.quiet)
    return {"docs": [w.docs for w in writers], "tokens": [w.pos // tok.width for w in writers],
            "skipped_lines": stats.bad_lines, "total_docs": total_docs}


def _build_tables(o: BuildOptions, tok: Tokenizer, work: Path, state: _State) -> None:
    from native import suffix_array

    budget = int(o.memory_gb * (1 << 30)) if o.memory_gb else 0
    for local in range(len(o.local_shards())):
        phase = f"table.{local}"
        if phase in state.done:
            continue
        tokenized, table = work / f"tokenized.{local}", work / f"table.{local}"
        tmp_table = work / f"sorting.{local}"
        bar = Progress(f"sa {local}", 0, "", o.quiet)

        def show(stage: str, done: int, total: int, bar: Progress = bar, local: int = local) -> None:
            bar.label = f"sa.{local} {stage}"
            bar.set_total(total)
            bar.update(done)

        try:
            suffix_array.build(tokenized, tmp_table, tok.width, memory_budget=budget, threads=o.threads,
                               tmp_dir=work / f"parts.{local}", max_part_tokens=o.max_part_tokens,
                               progress=None if o.quiet else show)
        except Exception as e:
            raise BuildError(f"suffix array of shard {local} failed: {e}") from e
        finally:
            shutil.rmtree(work / f"parts.{local}", ignore_errors=True)
        bar.close()
        _fsync(tmp_table)
        os.replace(tmp_table, table)
        _fsync(work)
        state.done.append(phase)
        _save_state(work, state)


def _manifest(o: BuildOptions, tok: Tokenizer, work: Path, stats: dict[str, Any]) -> Manifest:
    shards = []
    for local, g in enumerate(o.local_shards()):
        shards.append(ShardEntry(local, g, stats["docs"][local], stats["tokens"][local],
                                 shard_file_sizes(work, local)))
    return Manifest(
        token_width=tok.width, token_dtype={1: "u8", 2: "u16", 4: "u32"}[tok.width],
        eos_token_id=tok.eos_token_id, sep_token_id=sep_id(tok.width), vocab_size=tok.vocab_size,
        tokenizer_file=tok.file_name, document_count=sum(stats["docs"]), token_count=sum(stats["tokens"]),
        shards=shards, total_shards=o.shards, workers=o.workers, worker_id=o.worker_id,
        text_field=o.text_field, skipped_lines=stats["skipped_lines"])


def build_index(o: BuildOptions) -> Manifest:
    """Build the index described by `o`; raises BuildError (or inputs.InputError) with a clear message."""
    _check_options(o)
    try:
        files = inp.discover(o.inputs)
    except inp.InputError as e:
        raise BuildError(str(e)) from e
    if not files:
        raise BuildError("the corpus is empty: no .jsonl, .jsonl.gz, .jsonl.zst or .txt files in the inputs")
    if o.tokenizer is not None and not o.tokenizer.is_file():
        raise BuildError(f"{o.tokenizer}: tokenizer file not found")
    clash = [w for w in ("tokenized", "table", "offset", "metadata", "metaoff", "unigram")
             if w in str(o.output.resolve())]
    if clash:  # infini-gram's engine assigns files to roles by substring of their full path
        note(f"warning: the output path contains {clash[0]!r}; infini-gram's own engine would "
             "misread this index", o.quiet)
    work, state = _prepare_workdir(o, _fingerprint(o, files))
    try:
        tok = _make_tokenizer(o, files, work, state)
        if tok.file_name and not (work / tok.file_name).exists():
            tok.save(work)
        if "tokenize" not in state.done:
            try:
                state.stats = _tokenize(o, files, tok, work)
            except inp.InputError as e:
                raise BuildError(str(e)) from e
            state.done.append("tokenize")
            _save_state(work, state)
        _build_tables(o, tok, work, state)
        manifest = _manifest(o, tok, work, state.stats)
        manifest.write(work)
        (work / STATE_FILE).unlink()
        for written in (MANIFEST_FILE, tok.file_name):
            if written:
                _fsync(work / written)
        _fsync(work)
        os.rename(work, o.output)
        _fsync(o.output.resolve().parent)
    except OSError as e:
        raise BuildError(f"build failed: {e}; the unfinished build is kept in {work} "
                         "(rerun with --resume, or delete it)") from e
    except BuildError as e:
        # an empty corpus or bad input cannot be resumed: remove the work directory entirely
        if "tokenize" not in state.done:
            shutil.rmtree(work, ignore_errors=True)
            raise
        raise BuildError(f"{e}; the finished phases are kept in {work} "
                         "(rerun with --resume, or delete it)") from e
    note(f"built {o.output}: {manifest.document_count} documents, {manifest.token_count} tokens, "
         f"{len(manifest.shards)} shard(s)", o.quiet)
    return manifest
