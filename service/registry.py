"""The loaded indexes by name, and reloading them from fresh settings without a restart.

Removed or replaced indexes are not closed explicitly: a request that is still using one holds a
reference to it, and the engine unmaps its files when the last reference goes.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from native.engine import Engine
from native.errors import GramdexError
from service.errors import Problem
from service.settings import IndexSettings
from service.tokenization import BytesCodec, Codec, load_codec


@dataclass(frozen=True)
class LoadedIndex:
    name: str
    settings: IndexSettings
    engine: Engine
    codec: Codec | None  # None: the index has no tokenizer, so only id queries work

    def describe(self) -> dict[str, Any]:
        e = self.engine
        return {"name": self.name, "documents": e.doc_cnt, "tokens": e.tok_cnt, "shards": e.num_shards,
                "token_width": e.token_width, "eos_token_id": e.eos_token_id, "vocab_size": e.vocab_size,
                "tokenizer": self.codec.name if self.codec else None}


def open_index(name: str, cfg: IndexSettings) -> LoadedIndex:
    engine = Engine(cfg.path, token_width=cfg.token_width, eos_token_id=cfg.eos_token_id,
                    vocab_size=cfg.vocab_size)
    tokenizer = cfg.tokenizer
    manifest = engine.manifest or {}
    if tokenizer is None and manifest.get("tokenizer_file"):
        tokenizer = Path(cfg.path) / manifest["tokenizer_file"]
    codec: Codec | None
    if tokenizer is not None:
        codec = load_codec(tokenizer, cfg.add_prefix_space)
    elif engine.token_width == 1:
        codec = BytesCodec()
    else:
        codec = None
    return LoadedIndex(name, cfg, engine, codec)


class Registry:
    def __init__(self) -> None:
        self._indexes: dict[str, LoadedIndex] = {}
        self._lock = threading.Lock()  # reloads run one at a time; readers take the dict without locking

    def get(self, name: str) -> LoadedIndex:
        index = self._indexes.get(name)
        if index is None:
            raise Problem("unknown-index", f"no index named {name!r} is served here", field="index")
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
                if old is not None and old.settings == cfg:
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
