"""Access to the peer (`pip install infini-gram`): its Rust suffix-array builder and its engine.

Used as the oracle in tests and as the competitor in benchmarks; nothing here is shipped code.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

# Overlap infini-gram's indexer gives each part so suffixes near a cut compare correctly.
_PEER_OVERLAP = 100_000


def peer_available() -> bool:
    try:
        import infini_gram  # noqa: F401
    except ImportError:
        return False
    return True


def _rust_indexer() -> Path:
    import infini_gram

    return Path(infini_gram.__file__).with_name("rust_indexing")


def peer_build_table(tokenized: Path, table: Path, token_width: int, cpus: int = 2) -> None:
    """Write `table` for `tokenized` with infini-gram's own Rust indexer (one part per cpu)."""
    ds_size = tokenized.stat().st_size
    ratio = max(1, math.ceil(math.log2(max(ds_size, 2)) / 8))
    jobs = max(1, cpus)
    part = ds_size // jobs
    part += (-part) % token_width
    exe = str(_rust_indexer())
    with tempfile.TemporaryDirectory(dir=table.parent) as tmp:
        parts, merged = os.path.join(tmp, "parts"), os.path.join(tmp, "merged")
        os.makedirs(parts)
        os.makedirs(merged)
        procs = []
        for i in range(jobs):
            start, end = i * part, min((i + 1) * part + _PEER_OVERLAP, ds_size)
            if start >= ds_size:
                break
            procs.append(subprocess.Popen(
                [exe, "make-part", "--data-file", str(tokenized), "--parts-dir", parts,
                 "--start-byte", str(start), "--end-byte", str(end), "--ratio", str(ratio),
                 "--token-width", str(token_width)], stdout=subprocess.DEVNULL))
        for p in procs:
            if p.wait() != 0:
                raise RuntimeError("infini-gram make-part failed")
        common = ["--data-file", str(tokenized), "--num-threads", str(jobs), "--ratio", str(ratio),
                  "--token-width", str(token_width)]
        subprocess.run([exe, "merge", "--parts-dir", parts, "--merged-dir", merged,
                        "--hacksize", str(_PEER_OVERLAP), *common], check=True, stdout=subprocess.DEVNULL)
        subprocess.run([exe, "concat", "--merged-dir", merged, "--merged-file", str(table), *common],
                       check=True, stdout=subprocess.DEVNULL)
    shutil.rmtree(Path(tmp), ignore_errors=True)
