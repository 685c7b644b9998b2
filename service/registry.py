"""The loaded indexes by name, and reloading them from fresh settings without a restart.

Every mapped file is leased (service/file_leases.py) where the process can: another process's truncate or write
then waits until the index is marked broken, the engine calls already running on it have returned, and it is
unmapped. Removed or replaced indexes give their leases up once their last running call returns; their mapping
goes when the last reference does (a request that is still using one holds a reference to it).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from native.engine import Engine
from native.errors import GramdexError
from native.jobs import Call
from service.errors import Problem
from service.file_leases import Leases, watcher
from service.settings import IndexSettings
from service.tokenization import BytesCodec, Codec, load_codec

log = logging.getLogger("gramdex.service")
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


class Lifetime:
    """The engine calls running on one loaded index, and its end. Once the index is retired (a reload replaced it,
    shutdown) or broken (another process is about to write one of its leased files), the last call out gives the
    leases up; a broken index is also unmapped first, and refuses calls from then on."""

    def __init__(self, name: str, engine: Engine) -> None:
        self.name = name
        self.engine = engine
        self.leases: Leases | None = None
        self.broken: str | None = None
        self.calls = 0
        self._retired = self._ended = False
        self._lock = threading.Lock()

    def enter(self) -> None:
        with self._lock:
            if self.broken is not None:
                raise unavailable(self.name)
            self.calls += 1

    def exit(self) -> None:
        with self._lock:
            self.calls -= 1
            end = self._ending()
        if end:
            self._end()

    def break_(self, reason: str) -> None:
        """Called by the lease watcher (on the event loop, or its own thread): refuse now, unmap when idle."""
        with self._lock:
            first, self.broken = self.broken is None, self.broken or reason
            running, end = self.calls, self._ending()
        if first:
            log.warning("index %r: %s; refused from now on, unmapped after its %d running call(s)", self.name,
                        reason, running)
        if end:
            self._end()

    def retire(self) -> None:
        with self._lock:
            self._retired = True
            end = self._ending()
        if end:
            self._end()

    def _ending(self) -> bool:
        if self._ended or self.calls or not (self._retired or self.broken is not None):
            return False
        self._ended = True
        return True

    def _end(self) -> None:
        if self.broken is not None:
            self.engine.close()  # no call is running and none can start: the writer may now shrink the files
        if self.leases is not None:
            self.leases.release()


class GuardedEngine:
    """The engine as routes see it: every method call is counted on the index's Lifetime (refused once broken)."""

    def __init__(self, engine: Engine, life: Lifetime) -> None:
        self._raw = engine
        self._life = life

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._raw, name)
        if name.startswith("_"):
            return value
        if callable(value):
            value = _counted(value, self._life)
        setattr(self, name, value)  # looked up once per name
        return value


def _counted(fn: Callable[..., Any], life: Lifetime) -> Callable[..., Any]:
    def call(*args: Any, **kwargs: Any) -> Any:
        life.enter()
        try:
            result = fn(*args, **kwargs)
        except BaseException:
            life.exit()
            raise
        if isinstance(result, Call):
            result.when_done(life.exit)  # it runs later on a native pool: the index stays mapped until it is done
        else:
            life.exit()
        return result
    return call


def unavailable(name: str) -> Problem:
    return Problem("index-unavailable", f"the files of index {name!r} changed on disk under the server; an operator "
                   "must reload it", field="index")


@dataclass(frozen=True)
class LoadedIndex:
    name: str
    settings: IndexSettings
    engine: Engine
    codec: Codec | None  # None: the index has no tokenizer, so only id queries work
    files: tuple[FileStamp, ...] = field(default=(), compare=False)
    life: Lifetime | None = field(default=None, compare=False)

    def changed(self) -> tuple[str, bool] | None:
        change = file_change(self.files)
        broken = self.life.broken if self.life is not None else None
        if broken is not None and (change is None or not change[1]):
            return broken, True  # a lease broke: unmapped, whatever the files look like now
        return change

    @property
    def lease_error(self) -> str | None:
        """Why the files are not leased (then only the stamps guard them); None where they are, or were."""
        leases = self.life.leases if self.life is not None else None
        return leases.error if leases is not None else "not leased"

    def check(self) -> None:
        """Refuses (503) an index whose mapped files were truncated or rewritten in place, or are about to be (a
        lease broke): reading it could crash the process. With the files leased no stat is needed (a writer waits
        until the lease break has marked the index broken); unleased, one stat per file."""
        life = self.life
        if life is not None and life.leases is not None and life.leases.held and life.broken is None:
            return
        change = self.changed()
        if change is not None and change[1]:
            raise unavailable(self.name)

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
    stamps = stamp_files(engine)
    life = Lifetime(name, engine)
    life.leases = watcher.take([s.path for s in stamps], life.break_)
    if life.leases.held and stamp_files(engine) != stamps:  # changed before the leases held
        life.break_("files changed while the index was opened")
    return LoadedIndex(name, cfg, cast(Engine, GuardedEngine(engine, life)), codec, stamps, life)


def retire(index: LoadedIndex) -> None:
    if index.life is not None:
        index.life.retire()


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
                    kept = set(map(id, current.values()))
                    for opened in fresh.values():
                        if id(opened) not in kept:
                            retire(opened)
                    raise IndexLoadError(name, exc) from exc
            self._indexes = fresh
            for old in current.values():
                if old is not fresh.get(old.name):
                    retire(old)
            return {"added": sorted(set(fresh) - set(current)), "removed": sorted(set(current) - set(fresh)),
                    "reloaded": sorted(n for n in fresh if n in current and fresh[n] is not current[n])}


    def close(self) -> None:
        """Shutdown: every index gives its leases up once its running calls have returned."""
        with self._lock:
            for index in self._indexes.values():
                retire(index)


class IndexLoadError(Exception):
    def __init__(self, name: str, exc: Exception) -> None:
        super().__init__(f"index {name!r} could not be opened: {type(exc).__name__}")
        self.name = name
        self.cause = exc
