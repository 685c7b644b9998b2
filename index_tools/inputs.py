"""Streaming reader of the corpus: .jsonl, .jsonl.gz, .jsonl.zst and .txt files, one document at a time."""

from __future__ import annotations

import gzip
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

JSONL_SUFFIXES = (".jsonl", ".jsonl.gz", ".jsonl.zst")
TEXT_SUFFIXES = (".txt",)


class InputError(Exception):
    """An input file or line cannot be used; the message names the file (and line)."""


@dataclass(frozen=True)
class InputFile:
    path: Path
    rel: str  # as stored in metadata.N: relative to the input directory, or the file name


@dataclass(frozen=True)
class Document:
    source: InputFile
    linenum: int  # 0-based line of the file (0 for .txt)
    text: str
    metadata: dict[str, Any]


@dataclass
class ReadStats:
    bytes_read: int = 0  # bytes of input files read from disk so far (compressed bytes)
    documents: int = 0
    bad_lines: int = 0
    bad_examples: list[str] = field(default_factory=list)


def _kind(path: Path) -> str | None:
    name = path.name
    if name.endswith(JSONL_SUFFIXES):
        return "jsonl"
    if name.endswith(TEXT_SUFFIXES):
        return "txt"
    return None


def discover(inputs: list[Path]) -> list[InputFile]:
    """Input files in a deterministic order: arguments in order, directories recursively sorted."""
    found: list[InputFile] = []
    for root in inputs:
        if root.is_dir():
            for p in sorted(root.rglob("*")):
                if p.is_file() and _kind(p):
                    found.append(InputFile(p, p.relative_to(root).as_posix()))
        elif root.is_file():
            if not _kind(root):
                kinds = ", ".join(JSONL_SUFFIXES + TEXT_SUFFIXES)
                raise InputError(f"{root}: unsupported input type (use {kinds})")
            found.append(InputFile(root, root.name))
        else:
            raise InputError(f"{root}: no such file or directory")
    return found


class _CountingReader(io.RawIOBase):
    """Counts the bytes read from disk, so progress can be shown for compressed inputs."""

    def __init__(self, raw: BinaryIO, stats: ReadStats) -> None:
        self._raw = raw
        self._stats = stats

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        n = self._raw.readinto(b)  # type: ignore[attr-defined]
        self._stats.bytes_read += n or 0
        return n or 0

    def close(self) -> None:
        self._raw.close()
        super().close()


def _open_binary(path: Path, stats: ReadStats) -> BinaryIO:
    raw = _CountingReader(open(path, "rb"), stats)
    buffered = io.BufferedReader(raw, 1 << 20)
    if path.name.endswith(".gz"):
        return gzip.GzipFile(fileobj=buffered, mode="rb")  # type: ignore[return-value]
    if path.name.endswith(".zst"):
        import zstandard

        # multi-frame files (pzstd, concatenated streams) must be read to the end
        reader = zstandard.ZstdDecompressor().stream_reader(buffered, closefd=True, read_across_frames=True)
        return io.BufferedReader(reader, 1 << 20)  # type: ignore[arg-type, return-value]
    return buffered  # type: ignore[return-value]


def _bad(stats: ReadStats, skip: bool, where: str, why: str) -> None:
    message = f"{where}: {why}"
    if not skip:
        raise InputError(message + " (use --skip-bad-lines to skip such lines)")
    stats.bad_lines += 1
    if len(stats.bad_examples) < 10:
        stats.bad_examples.append(message)


def _read_jsonl(src: InputFile, text_field: str, skip_bad: bool, stats: ReadStats) -> Iterator[Document]:
    try:
        f = _open_binary(src.path, stats)
    except OSError as e:
        raise InputError(f"{src.path}: cannot open: {e}") from e
    with f:
        linenum = -1
        while True:
            try:
                raw = f.readline()
            except (OSError, EOFError, ValueError) as e:  # truncated/corrupt compressed stream
                raise InputError(f"{src.path}: cannot read after line {linenum + 1}: {e}") from e
            if not raw:
                return
            linenum += 1
            where = f"{src.path}:{linenum + 1}"
            if not raw.strip():
                continue  # blank lines (e.g. a trailing one) are not documents
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                _bad(stats, skip_bad, where, f"invalid UTF-8 ({e.reason} at byte {e.start})")
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                _bad(stats, skip_bad, where, f"bad JSON ({e.msg})")
                continue
            if not isinstance(obj, dict):
                _bad(stats, skip_bad, where, "line is not a JSON object")
                continue
            text = obj.pop(text_field, None)
            if not isinstance(text, str):
                why = "missing" if text is None else "not a string"
                _bad(stats, skip_bad, where, f"text field {text_field!r} {why}")
                continue
            stats.documents += 1
            yield Document(src, linenum, text, obj)


def _read_txt(src: InputFile, skip_bad: bool, stats: ReadStats) -> Iterator[Document]:
    try:
        data = src.path.read_bytes()  # one document per file: the document is held anyway
    except OSError as e:
        raise InputError(f"{src.path}: cannot read: {e}") from e
    stats.bytes_read += len(data)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        _bad(stats, skip_bad, str(src.path), f"invalid UTF-8 ({e.reason} at byte {e.start})")
        return
    stats.documents += 1
    yield Document(src, 0, text, {})


def read_documents(files: list[InputFile], text_field: str = "text", skip_bad_lines: bool = False,
                   stats: ReadStats | None = None) -> Iterator[Document]:
    """Every document of `files` in order; bad lines raise InputError or are counted in `stats`."""
    stats = stats if stats is not None else ReadStats()
    for src in files:
        if _kind(src.path) == "txt":
            yield from _read_txt(src, skip_bad_lines, stats)
        else:
            yield from _read_jsonl(src, text_field, skip_bad_lines, stats)


def total_input_bytes(files: list[InputFile]) -> int:
    return sum(f.path.stat().st_size for f in files)
