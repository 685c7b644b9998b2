"""The loaded indexes by name, and reloading them from fresh settings without a restart.

Removed or replaced indexes are not closed explicitly: a request that is still using one holds a
reference to it, and the engine unmaps its files when the last reference goes.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from native.engine import Engine
from native.errors import GramdexError
from service.errors import Problem
from service.settings import IndexSettings
from service.tokenization import BytesCodec, Codec, load_codec

SHARD_FILES = ("tokenized", "table", "offset", "metadata", "metaoff")


@dataclass(frozen=True)
class FileStamp:
    path: str
    dev: int
    ino: int
    size: int
    mtime_ns: int


def stamp_files(engine: Engine) -> tuple[FileStamp, ...]:
    """What the engine mapped, as it was when mapped: every shard file of every index directory."""
    stamps = []
    for tokenized in engine._shard_paths:
        shard = tokenized.suffix  # ".N"
        for stem in SHARD_FILES:
            path = tokenized.with_name(stem + shard)
            try:
                st = os.stat(path)
            except FileNotFoundError:
                continue  # metadata files are optional
            stamps.append(FileStamp(str(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns))
    return tuple(stamps)


def file_change(stamps: tuple[FileStamp, ...]) -> tuple[str, bool] | None:
    """None while the mapped files are as mapped, else (what changed, whether reading the mapping is unsafe).

    The engine maps the files: a file truncated or rewritten in place makes reads past its new end raise SIGBUS
    and kill the process, so such an index must not be read again. A file deleted or replaced by another
    (rename, a rebuilt index moved in) leaves the mapped inode intact: the old, consistent index keeps
    answering until a reload maps the new one.
    """
    stale = None
    for s in stamps:
        try:
            st = os.stat(s.path)
        except OSError:
            stale = stale or f"{os.path.basename(s.path)} deleted"
            continue
        if (st.st_dev, st.st_ino) != (s.dev, s.ino):
            stale = stale or f"{os.path.basename(s.path)} replaced"
        elif st.st_size != s.size or st.st_mtime_ns != s.mtime_ns:
            what = "truncated" if st.st_size < s.size else "modified in place"
            return f"{os.path.basename(s.path)} {what}", True
    return (stale, False) if stale else None


@dataclass(frozen=True)
class LoadedIndex:
    name: str
    settings: IndexSettings
    engine: Engine
    codec: Codec | None  # None: the index has no tokenizer, so only id queries work
    files: tuple[FileStamp, ...] = field(default=(), compare=False)

    def changed(self) -> tuple[str, bool] | None:
        return file_change(self.files)

    def check(self) -> None:
        """Refuses (503) an index whose mapped files were truncated or rewritten in place: reading it could crash
        the process. Costs one stat per file (microseconds)."""
        change = self.changed()
        if change is not None and change[1]:
            raise Problem("index-unavailable", f"the files of index {self.name!r} changed on disk under the "
                          "server; an operator must reload it", field="index")

    def describe(self) -> dict[str, Any]:
        e = self.engine
        return {"name": self.name, "documents": e.doc_cnt, "tokens": e.tok_cnt, "shards": e.num_shards,
                "token_width": e.token_width, "eos_token_id": e.eos_token_id, "vocab_size": e.vocab_size,
                "tokenizer": self.codec.name if self.codec else None}


def open_index(name: str, cfg: IndexSettings) -> LoadedIndex:
    engine = Engine(cfg.path, token_width=cfg.token_width, eos_token_id=cfg.eos_token_id,
                    vocab_size=cfg.vocab_size)
    tokenizer = cfg.tokenizer
    if tokenizer is None and engine.manifest is not None and engine.manifest.tokenizer_file:
        tokenizer = Path(cfg.path) / engine.manifest.tokenizer_file
    codec: Codec | None
    if tokenizer is not None:
        codec = load_codec(tokenizer, cfg.add_prefix_space)
    elif engine.token_width == 1:
        codec = BytesCodec()
    else:
        codec = None
    return LoadedIndex(name, cfg, engine, codec, stamp_files(engine))


class Registry:
    def __init__(self) -> None:
        self._indexes: dict[str, LoadedIndex] = {}
        self._lock = threading.Lock()  # reloads run one at a time; readers take the dict without locking

    def get(self, name: str) -> LoadedIndex:
        index = self._indexes.get(name)
        if index is None:
            raise Problem("unknown-index", f"no index named {name!r} is served here", field="index")
        index.check()
        return index

    def has(self, name: str) -> bool:
        return name in self._indexes

    def all(self) -> list[LoadedIndex]:
        return list(self._indexes.values())

    def names(self) -> list[str]:
        return list(self._indexes)

    def load(self, configs: dict[str, IndexSettings]) -> dict[str, list[str]]:
        """Make the served set equal `configs`; indexes whose settings did not change stay mapped.

        All new indexes are opened before any is swapped in, so a bad directory leaves the old set served.
        """
        with self._lock:
            current = self._indexes
            fresh: dict[str, LoadedIndex] = {}
            for name, cfg in configs.items():
                old = current.get(name)
                if old is not None and old.settings == cfg and old.changed() is None:
                    fresh[name] = old
                    continue
                try:
                    fresh[name] = open_index(name, cfg)
                except (GramdexError, OSError, ValueError) as exc:
                    raise IndexLoadError(name, exc) from exc
            self._indexes = fresh
            return {"added": sorted(set(fresh) - set(current)), "removed": sorted(set(current) - set(fresh)),
                    "reloaded": sorted(n for n in fresh if n in current and fresh[n] is not current[n])}


class IndexLoadError(Exception):
    def __init__(self, name: str, exc: Exception) -> None:
        super().__init__(f"index {name!r} could not be opened: {type(exc).__name__}")
        self.name = name
        self.cause = exc
