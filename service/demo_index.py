"""The demo index: built on first use from the Python standard library's own sources, which every Python install
carries, so `gramdex serve` works on a fresh machine with nothing downloaded. Cached per user, built atomically.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import sys
import sysconfig
import tempfile
from collections.abc import Iterator
from pathlib import Path

DEMO_VERSION = 1
MAX_BYTES = 12 << 20     # enough text for interesting counts, small enough to build in seconds
VOCAB_SIZE = 8000
SKIP_DIRS = {"site-packages", "dist-packages", "test", "tests", "idlelib", "__pycache__", "lib2to3"}


def cache_dir() -> Path:
    base = os.environ.get("GRAMDEX_CACHE_DIR") or os.environ.get("XDG_CACHE_HOME")
    root = Path(base) if base else Path.home() / ".cache"
    return root / "gramdex" if not os.environ.get("GRAMDEX_CACHE_DIR") else root


def demo_path() -> Path:
    return cache_dir() / f"demo-py{sys.version_info[0]}{sys.version_info[1]}-v{DEMO_VERSION}"


def stdlib_documents(limit: int | None = None) -> Iterator[dict[str, str]]:
    """Standard-library modules (docstrings included) in a fixed order, up to `limit` bytes of text."""
    root = Path(sysconfig.get_paths()["stdlib"])
    limit = MAX_BYTES if limit is None else limit
    total = 0
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS)
        for name in sorted(filenames):
            if not name.endswith(".py"):
                continue
            path = Path(dirpath) / name
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                continue
            if not text.strip():
                continue
            yield {"text": text, "module": str(path.relative_to(root))}
            total += len(text)
            if total >= limit:
                return


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    # two servers started at once must not both build: the second waits and then finds the cache
    with open(directory / ".demo.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def demo_index(quiet: bool = True) -> Path:
    """The demo index directory, building it first if this user has none yet."""
    target = demo_path()
    if (target / "index.json").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with _locked(target.parent):
        if (target / "index.json").exists():
            return target
        from index_tools.build import BuildOptions, build_index

        if not quiet:
            print(f"gramdex: building the demo index from the standard library into {target} (once)",
                  file=sys.stderr)
        work = Path(tempfile.mkdtemp(prefix=".demo-build-", dir=target.parent))
        try:
            corpus = work / "stdlib.jsonl"
            with corpus.open("w", encoding="utf-8") as f:
                for doc in stdlib_documents():
                    f.write(json.dumps(doc) + "\n")
            built = work / "index"
            build_index(BuildOptions(inputs=[corpus], output=built, train_tokenizer=True, vocab_size=VOCAB_SIZE,
                                     threads=os.cpu_count() or 1, quiet=quiet))
            os.replace(built, target)  # the cache entry appears complete or not at all
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return target
