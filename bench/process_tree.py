"""A process and its descendants, from /proc (Linux), for the benchmarks' RSS and file-descriptor figures."""

from __future__ import annotations

from pathlib import Path


def process_tree(pid: int) -> list[int]:
    """pid and every live descendant (children of any of its threads, recursively)."""
    out = [pid]
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return out
    for task in tasks:
        try:
            children = (task / "children").read_text().split()
        except OSError:
            continue
        for child in children:
            out += process_tree(int(child))
    return out
