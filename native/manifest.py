"""`index.json`: what an index holds, so tools and the service need no guessing (no timestamps: builds are
byte-identical)."""

from __future__ import annotations

import gzip
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from native.errors import IndexFormatError

MANIFEST_FILE = "index.json"
FORMAT = "gramdex-index"
FORMAT_VERSION = 1
SHARD_FILES = ("tokenized", "table", "offset", "metadata", "metaoff")


class ManifestError(IndexFormatError):
    """index.json is missing, unreadable or not one this version understands."""


@dataclass
class ShardEntry:
    shard: int          # local number N of the files (tokenized.N, ...)
    global_shard: int   # number among all workers' shards of the corpus
    doc_count: int
    token_count: int    # separators included (= suffix-array entries)
    files: dict[str, int] = field(default_factory=dict)  # file name -> size in bytes


@dataclass
class Manifest:
    token_width: int
    token_dtype: str
    eos_token_id: int
    sep_token_id: int
    vocab_size: int
    tokenizer_file: str | None
    document_count: int
    token_count: int
    shards: list[ShardEntry]
    total_shards: int = 1          # across all workers
    workers: int = 1
    worker_id: int = 0
    text_field: str = "text"
    skipped_lines: int = 0
    index_version: int = 4          # infini-gram file layout
    format: str = FORMAT
    format_version: int = FORMAT_VERSION

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    def write(self, directory: Path) -> None:
        (directory / MANIFEST_FILE).write_text(self.to_json(), encoding="utf-8")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Manifest:
        if d.get("format") != FORMAT:
            raise ManifestError(f"not a gramdex index manifest (format={d.get('format')!r})")
        if d.get("format_version") != FORMAT_VERSION:
            raise ManifestError(f"unsupported manifest version {d.get('format_version')!r}")
        try:
            shards = [ShardEntry(**s) for s in d["shards"]]
            rest = {k: v for k, v in d.items() if k != "shards"}
            return cls(shards=shards, **rest)
        except (KeyError, TypeError) as e:
            raise ManifestError(f"malformed manifest: {e}") from e


def read_manifest(directory: Path) -> Manifest:
    path = directory / MANIFEST_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise ManifestError(f"{path}: missing (not a gramdex index?)") from e
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ManifestError(f"{path}: unreadable: {e}") from e
    if not isinstance(data, dict):
        raise ManifestError(f"{path}: not a JSON object")
    return Manifest.from_dict(data)


def shard_file_sizes(directory: Path, shard: int) -> dict[str, int]:
    sizes: dict[str, int] = {}
    for stem in SHARD_FILES:
        p = directory / f"{stem}.{shard}"
        if p.exists():
            sizes[p.name] = p.stat().st_size
    return sizes


def check_file_sizes(directory: Path, manifest: Manifest) -> None:
    """Every file the manifest lists exists with the recorded size: a truncated or replaced file is refused."""
    for entry in manifest.shards:
        for name, size in entry.files.items():
            actual = directory / name
            if not actual.exists():
                raise ManifestError(f"{actual}: missing (listed in {MANIFEST_FILE})")
            if actual.stat().st_size != size:
                raise ManifestError(f"{actual}: size {actual.stat().st_size} differs from {size} recorded in "
                                    f"{MANIFEST_FILE} (truncated or replaced)")


def read_tokenizer_text(path: Path) -> str:
    """A `tokenizers` JSON file's text, gunzipped when its name ends in .gz (as an index stores its tokenizer)."""
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as f:  # type: ignore[operator]
        return str(f.read())
